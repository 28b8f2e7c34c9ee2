import type { VerifiedMarker } from 'nestjs-duo';
import { DEMO_USERS } from '../users.service.js';
import { html, type SafeHtml } from './html.js';
import { formatAge, formatTime, layout, secondFactorPill, type PageStatus } from './layout.js';

/** The rows of a facts list about the second factor. */
function secondFactorRows(status: PageStatus): SafeHtml {
  const { verification, bypass, now } = status;
  if (verification) {
    return html`<dt>Status</dt><dd>${secondFactorPill(status)}</dd>
  <dt>Passed at</dt><dd data-testid="verified-at" data-ms="${verification.at}">${formatTime(verification.at)} (${formatAge(now - verification.at)})</dd>
  <dt>Factor</dt><dd data-testid="factor">${verification.factor ?? 'not reported'}</dd>
  ${verification.amr?.length ? html`<dt>Methods (amr)</dt><dd>${verification.amr.join(', ')}</dd>` : ''}
  ${verification.reason ? html`<dt>Duo's reason</dt><dd><code>${verification.reason}</code></dd>` : ''}
  <dt>Fail-open</dt><dd>no: Duo checked this session</dd>`;
  }
  if (bypass) {
    return html`<dt>Status</dt><dd>${secondFactorPill(status)}</dd>
  <dt>Fail-open</dt><dd data-testid="bypass">yes: Duo was unavailable (<code>${bypass.reason}</code>), so fail mode "open" let this session through without a second factor</dd>
  <dt>Since</dt><dd>${formatTime(bypass.at)} (${formatAge(now - bypass.at)})</dd>
  <dt>Duo is tried again</dt><dd>after ${formatTime(bypass.until)}</dd>`;
  }
  return html`<dt>Status</dt><dd>${secondFactorPill(status)}</dd>`;
}

function secondFactorFacts(status: PageStatus): SafeHtml {
  return html`<dl class="facts" data-testid="second-factor">${secondFactorRows(status)}</dl>`;
}

export function homePage(status: PageStatus, notice?: string): string {
  const session = status.user
    ? html`<dl class="facts" data-testid="second-factor">
  <dt>Signed in as</dt><dd>${status.user.displayName} (<code>${status.user.username}</code>)</dd>
  ${secondFactorRows(status)}
</dl>`
    : html`<p>You are not signed in. <a href="/login">Sign in</a> with one of the demo users, then open a protected page.</p>`;
  return layout(
    'Home',
    status,
    'home',
    html`${notice ? html`<p class="notice info" role="status">${notice}</p>` : ''}
<h1>Duo second factor for NestJS</h1>
<p class="lead">This app signs people in with a password, then asks Duo's Universal Prompt for a second factor on the pages that need one. The home page is public.</p>
<section class="card"><h2>Your session</h2>${session}</section>
<section class="card"><h2>Pages</h2>
<table class="pages">
  <tr><th scope="row"><a href="/account">Account</a></th><td>Needs a passed second factor.</td><td><code>@RequireSecondFactor()</code></td></tr>
  <tr><th scope="row"><a href="/sensitive">Sensitive</a></th><td>Step-up: needs a second factor from the last ${status.stepUpSeconds} seconds.</td><td><code>@RequireSecondFactor({ maxAge: ${status.stepUpSeconds} })</code></td></tr>
  <tr><th scope="row"><a href="/api/me">/api/me</a></th><td>JSON. API clients get <code>401</code> with a <code>location</code> to open, not a redirect.</td><td><code>@RequireSecondFactor()</code></td></tr>
</table>
</section>`,
  );
}

export interface LoginForm {
  returnTo: string;
  username?: string;
  error?: string;
}

export function loginPage(status: PageStatus, form: LoginForm): string {
  return layout(
    'Sign in',
    status,
    'login',
    html`<h1>Sign in</h1>
<p class="lead">First the password; Duo's second factor follows when you open a protected page.</p>
<section class="card narrow">
  ${form.error ? html`<p class="notice error" role="alert">${form.error}</p>` : ''}
  <form class="stack" method="post" action="/login">
    <input type="hidden" name="returnTo" value="${form.returnTo}">
    <label>Username <input type="text" name="username" value="${form.username ?? ''}" autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus></label>
    <label>Password <input type="password" name="password" autocomplete="current-password" required></label>
    <button type="submit">Sign in</button>
  </form>
</section>
<section class="card narrow hint">
  Demo users (in memory, scrypt-hashed):
  <table>${DEMO_USERS.map((user) => html`<tr><td><code>${user.username}</code></td><td><code>${user.password}</code></td></tr>`)}</table>
</section>`,
  );
}

export function accountPage(status: PageStatus): string {
  const user = status.user!;
  return layout(
    'Account',
    status,
    'account',
    html`<h1>Your account</h1>
<p class="lead">This page is behind <code>@RequireSecondFactor()</code>: you see it because ${
      status.verification
        ? html`this session passed Duo for <code>${user.username}</code>`
        : html`Duo was unavailable and fail mode "open" let this session through`
    }.</p>
<section class="card"><h2>Who</h2><dl class="facts">
  <dt>Name</dt><dd>${user.displayName}</dd>
  <dt>Username (as Duo knows it)</dt><dd><code>${user.username}</code></dd>
</dl></section>
<section class="card"><h2>Second factor</h2>${secondFactorFacts(status)}</section>`,
  );
}

export function sensitivePage(status: PageStatus): string {
  const verification = status.verification!;
  const until = verification.at + status.stepUpSeconds * 1000;
  return layout(
    'Sensitive',
    status,
    'sensitive',
    html`<h1>Sensitive page</h1>
<p class="lead">Step-up: <code>@RequireSecondFactor({ maxAge: ${status.stepUpSeconds} })</code>. A second factor older than ${status.stepUpSeconds} seconds does not count here; Duo is asked again, with <code>max_age</code>.</p>
<p class="notice info" data-testid="step-up">Your second factor was passed ${formatAge(status.now - verification.at)}. From ${formatTime(until)} on, opening this page asks Duo again.</p>
<section class="card"><h2>Second factor</h2>${secondFactorFacts(status)}</section>`,
  );
}

/** The admin area: the admin application's marker, beside the staff one the other pages use. */
export function adminPage(status: PageStatus, admin: VerifiedMarker, application: string): string {
  return layout(
    'Admin',
    status,
    'admin',
    html`<h1>Admin area</h1>
<p class="lead">This page is on a second Duo application: <code>@RequireSecondFactor({ application: 'admin', requireInteraction: true })</code>. Passing Duo for the account pages does not count here, and Duo must have asked you (no remembered device, no bypass).</p>
<section class="card"><h2>Admin second factor</h2><dl class="facts" data-testid="admin-second-factor">
  <dt>Duo application</dt><dd data-testid="admin-app"><code>${application}</code> (the marker names it <code>${admin.app}</code>)</dd>
  <dt>Passed at</dt><dd data-testid="admin-verified-at" data-ms="${admin.at}">${formatTime(admin.at)} (${formatAge(status.now - admin.at)})</dd>
  <dt>Factor</dt><dd data-testid="admin-factor">${admin.factor ?? 'not reported'}</dd>
  <dt>Reason</dt><dd>${admin.reason ?? 'not reported'}</dd>
</dl></section>
<section class="card"><h2>Account second factor</h2>${secondFactorFacts(status)}</section>`,
  );
}
