import { NestFactory } from '@nestjs/core';
import { AppModule, configureApp } from './app.module';

async function bootstrap() {
  const app = await NestFactory.create(
    AppModule.register({
      clientId: process.env.DUO_CLIENT_ID ?? '',
      clientSecret: process.env.DUO_CLIENT_SECRET ?? '',
      apiHost: process.env.DUO_API_HOST ?? '',
      redirectUri: process.env.DUO_REDIRECT_URI ?? '',
    }),
  );
  configureApp(app);
  await app.listen(process.env.PORT ?? 3000);
}
void bootstrap();
