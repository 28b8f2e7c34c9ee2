import type { BypassMarker, VerifiedMarker } from 'nestjs-duo';
import type { SessionUser } from '../users.service.js';
import { html, type SafeHtml } from './html.js';

/** Everything a page shows about the current session, read once per request. */
export interface PageStatus {
  user?: SessionUser;
  /** The session's Duo marker for this user (DuoService.verification). */
  verification?: VerifiedMarker;
  /** Set when fail mode "open" let this session through without Duo. */
  bypass?: BypassMarker;
  backend: { kind: 'emulator' | 'duo'; where: string; failMode: string };
  stepUpSeconds: number;
  /** Cluster mode (REDIS_URL): which instance served this page, so a login can be seen moving between them. */
  cluster?: { instance: number; port: number; instances: number; redis: string };
  now: number;
}

type NavTarget = 'home' | 'account' | 'sensitive' | 'admin' | 'login' | 'none';

export function formatTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

export function formatAge(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds} second${seconds === 1 ? '' : 's'} ago`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} minute${minutes === 1 ? '' : 's'} ago`;
  const hours = Math.round(minutes / 60);
  return `${hours} hour${hours === 1 ? '' : 's'} ago`;
}

/** The second factor's state as a coloured label. */
export function secondFactorPill(status: PageStatus): SafeHtml {
  if (status.verification) return html`<span class="pill ok">Duo passed</span>`;
  if (status.bypass) return html`<span class="pill warn">Duo skipped (fail-open)</span>`;
  if (status.user) return html`<span class="pill off">Duo not yet passed</span>`;
  return html`<span class="pill off">Not signed in</span>`;
}

function userBox(status: PageStatus): SafeHtml {
  if (!status.user) return html`<div class="who"><a href="/login">Sign in</a></div>`;
  return html`<div class="who">
  <span>Signed in as <strong data-testid="username">${status.user.username}</strong></span>
  ${secondFactorPill(status)}
  <form method="post" action="/logout"><button class="link" type="submit">Sign out</button></form>
</div>`;
}

function navLink(href: string, label: string, target: NavTarget, current: NavTarget): SafeHtml {
  return html`<a href="${href}"${target === current ? html` aria-current="page"` : ''}>${label}</a>`;
}

function clusterNote(status: PageStatus): SafeHtml | '' {
  const cluster = status.cluster;
  if (!cluster) return '';
  return html`<br><span data-testid="served-by">served by instance ${cluster.instance} (port ${cluster.port})</span> of ${cluster.instances} · cluster mode: sessions and pending logins in Redis at <code>${cluster.redis}</code>`;
}

export function layout(title: string, status: PageStatus, current: NavTarget, body: SafeHtml): string {
  const banner =
    status.backend.kind === 'emulator'
      ? html`<div class="banner" role="note"><div><strong>Local Duo emulator.</strong> No DUO_* variables are set, so Duo's prompt is played by the emulator built into nestjs-duo/testing. Set them to use real Duo.</div></div>`
      : '';
  return `<!doctype html>
${html`<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · nestjs-duo sample</title>
<link rel="stylesheet" href="/assets/sample.css">
<link rel="icon" href="data:,">
</head>
<body>
<header class="top"><div class="bar">
  <a class="brand" href="/">nestjs-duo sample</a>
  <nav>
    ${navLink('/', 'Home', 'home', current)}
    ${navLink('/account', 'Account', 'account', current)}
    ${navLink('/sensitive', 'Sensitive', 'sensitive', current)}
    ${navLink('/admin', 'Admin', 'admin', current)}
    <a href="/api/me">/api/me</a>
  </nav>
  ${userBox(status)}
</div></header>
${banner}
<main>
${body}
</main>
<footer>Duo: ${status.backend.where} · fail mode <code>${status.backend.failMode}</code> · step-up age ${status.stepUpSeconds} s${clusterNote(status)}</footer>
</body>
</html>`}
`;
}
