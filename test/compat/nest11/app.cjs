'use strict';
// A small NestJS 11 app in plain CommonJS JavaScript: nestjs-duo (an ES module)
// is loaded with require(), which Node 20.19+ supports (require(esm)).
// Decorators are applied with Reflect.decorate, as TypeScript's __decorate does.

require('reflect-metadata');
const { Body, Controller, Get, Module, Post, Req } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const session = require('express-session');
const { DuoCallback, DuoCallbackResult, DuoModule, RequireSecondFactor } = require('nestjs-duo');

/** `@Decorator() class X {}` */
function decorateClass(Class, ...decorators) {
  return Reflect.decorate(decorators, Class);
}

/** `@Decorator() method() {}` */
function decorateMethod(Class, name, ...decorators) {
  const descriptor = Object.getOwnPropertyDescriptor(Class.prototype, name);
  Object.defineProperty(Class.prototype, name, Reflect.decorate(decorators, Class.prototype, name, descriptor));
}

/** `method(@Decorator() arg)`: a parameter decorator at position `index`. */
function param(index, decorator) {
  return (target, key) => decorator(target, key, index);
}

/** The app's primary login: whatever puts the user in the session (here, trusts the posted name). */
class PrimaryLoginController {
  login(req, body) {
    req.session.user = { username: body.username };
    return { ok: true };
  }
}
decorateMethod(PrimaryLoginController, 'login', Post('login'), param(0, Req()), param(1, Body()));
decorateClass(PrimaryLoginController, Controller());

class PagesController {
  home() {
    return 'home';
  }

  account(req) {
    return `account of ${req.user.username}`;
  }

  data() {
    return { data: [1, 2, 3] };
  }

  callback(outcome) {
    // The default is a 303 back to the page that started the login; only check the outcome arrived.
    if (!outcome || typeof outcome.returnTo !== 'string') throw new Error('callback outcome missing');
    return undefined;
  }
}
decorateMethod(PagesController, 'home', Get());
decorateMethod(PagesController, 'account', Get('account'), RequireSecondFactor(), param(0, Req()));
decorateMethod(PagesController, 'data', Get('api/data'), RequireSecondFactor());
decorateMethod(PagesController, 'callback', Get('duo/callback'), DuoCallback(), param(0, DuoCallbackResult()));
decorateClass(PagesController, Controller());

/** Builds the app module around Duo's options (the emulator's, in the test). */
function createAppModule(duoOptions) {
  class AppModule {}
  return decorateClass(
    AppModule,
    Module({
      imports: [DuoModule.forRoot({ ...duoOptions, isGlobal: true })],
      controllers: [PrimaryLoginController, PagesController],
    }),
  );
}

/** Creates and starts the app on 127.0.0.1 (a free port). */
async function startApp(duoOptions, { logger = ['error', 'warn'] } = {}) {
  const app = await NestFactory.create(createAppModule(duoOptions), { logger });
  app.use(
    session({
      secret: 'nest11-compat-session-secret',
      resave: false,
      saveUninitialized: false,
      cookie: { httpOnly: true, sameSite: 'lax', secure: false },
    }),
  );
  app.use((req, _res, next) => {
    if (req.session && req.session.user) req.user = req.session.user;
    next();
  });
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address();
  return { app, baseUrl: `http://127.0.0.1:${port}` };
}

module.exports = { createAppModule, startApp };
