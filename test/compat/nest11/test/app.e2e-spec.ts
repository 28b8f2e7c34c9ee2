// @ts-nocheck -- for the repository's typecheck only, which has no Jest types; run-nest11.mjs removes this line, and the compat app type-checks this file against NestJS 11 and @types/jest.
import { Test, TestingModule } from '@nestjs/testing';
import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { App } from 'supertest/types';
import { DuoModule } from 'nestjs-duo';
import { DuoEmulator } from 'nestjs-duo/testing';
import { AppModule, configureApp } from './../src/app.module';

const REDIRECT_URI = 'http://127.0.0.1/duo/callback';

describe('AppController (e2e)', () => {
  let app: INestApplication<App>;
  let duo: DuoEmulator;

  beforeAll(async () => {
    duo = await DuoEmulator.start();
  });

  beforeEach(async () => {
    duo.reset();
    const moduleFixture: TestingModule = await Test.createTestingModule({
      imports: [AppModule.register(duo.clientOptions(REDIRECT_URI))],
    }).compile();

    app = moduleFixture.createNestApplication();
    configureApp(app);
    await app.init();
  });

  it('/ (GET)', () => {
    return request(app.getHttpServer()).get('/').expect(200).expect('Hello World!');
  });

  it('loads nestjs-duo and nestjs-duo/testing', () => {
    expect(typeof DuoModule.forRoot).toBe('function');
    expect(duo.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('walks a login: primary login, 303 to Duo, Duo approves, callback, the protected page', async () => {
    const agent = request.agent(app.getHttpServer());
    await agent.post('/login').send({ username: 'alice' }).expect(201);

    const start = await agent.get('/account?tab=1').set('accept', 'text/html').expect(303);
    const authorizeUrl = new URL(start.headers.location);
    expect(`${authorizeUrl.origin}${authorizeUrl.pathname}`).toBe(`${duo.baseUrl}/oauth/v1/authorize`);

    const back = new URL(await duo.authorize(authorizeUrl.href));
    expect(`${back.origin}${back.pathname}`).toBe(REDIRECT_URI);

    await agent.get(`${back.pathname}${back.search}`).set('accept', 'text/html').expect(303).expect('location', '/account?tab=1');
    await agent.get('/account').set('accept', 'text/html').expect(200).expect('account of alice');
    expect(duo.stats.tokenExchanges).toBe(1);
  });

  it('answers a JSON client without a second factor with 401 second_factor_required', async () => {
    const agent = request.agent(app.getHttpServer());
    await agent.post('/login').send({ username: 'bob' }).expect(201);
    const res = await agent.get('/account').set('accept', 'application/json').expect(401);
    expect(res.body.error).toBe('second_factor_required');
  });

  afterEach(async () => {
    await app.close();
  });

  afterAll(async () => {
    await duo.close();
  });
});
