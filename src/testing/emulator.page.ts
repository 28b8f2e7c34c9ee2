/**
 * The HTML the Duo emulator shows: its prompt page (mode `prompt`) and its
 * error page. Self-contained (inline CSS, no script, no external resource),
 * clearly labelled as an emulator, every dynamic value escaped.
 */

import { escapeHtml } from '../protocol/html.js';

const STYLE = `
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;background:#eef1f4;
font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1f2a33}
main{width:100%;max-width:420px;margin:24px;background:#fff;border-radius:10px;box-shadow:0 2px 14px rgba(0,0,0,.12);overflow:hidden}
.banner{background:#b3261e;color:#fff;font-size:13px;font-weight:600;letter-spacing:.02em;text-align:center;padding:6px 12px}
.content{padding:24px 28px 28px}
h1{font-size:20px;margin:0 0 16px}
dl{margin:0 0 22px;display:grid;grid-template-columns:auto 1fr;gap:6px 14px}
dt{color:#5b6670}
dd{margin:0;font-weight:600;overflow-wrap:anywhere}
.actions{display:flex;gap:12px}
button{flex:1;border:0;border-radius:6px;padding:11px 14px;font:inherit;font-weight:600;cursor:pointer}
button:focus-visible{outline:3px solid #7aa7ff;outline-offset:2px}
.approve{background:#2e7d32;color:#fff}
.deny{background:#e3e7eb;color:#1f2a33}
p.note{margin:18px 0 0;font-size:13px;color:#5b6670}
p.reason{margin:0 0 18px;padding:10px 12px;border-left:4px solid #1a73e8;background:#eef4fe;font-size:14px}
`;

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${escapeHtml(title)} · Duo emulator</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<div class="banner">Duo emulator — not real Duo</div>
<div class="content">
${body}
</div>
</main>
</body>
</html>
`;
}

export interface PromptPageInput {
  /** The name shown for the user: display_username when sent, else duo_uname. */
  username: string;
  /** dest_app_name, when sent. */
  appName?: string;
  /** The opaque, single-use transaction id of this prompt. */
  transactionId: string;
  /** Where the decision form is posted (a path on the emulator). */
  action: string;
  /** The factor the emulator pretends to use, e.g. duo_push. */
  factor: string;
  /** How long the prompt stays valid. */
  expiresInSeconds: number;
  /** The request JWT's max_age: the login needs an authentication at most this old (a step-up). */
  maxAgeSeconds?: number;
  /** The request JWT's prompt=login: the login asks for a fresh authentication. */
  promptLogin?: boolean;
}

/** Why Duo asks again although the user may have approved a login a moment ago: max_age or prompt=login. */
function freshnessReason(maxAgeSeconds: number | undefined, promptLogin: boolean): string | undefined {
  if (maxAgeSeconds === undefined && !promptLogin) return undefined;
  const asked = [...(maxAgeSeconds === undefined ? [] : [`max_age=${maxAgeSeconds}`]), ...(promptLogin ? ['prompt=login'] : [])].join(', ');
  const need =
    maxAgeSeconds === undefined || maxAgeSeconds === 0
      ? 'a fresh second factor'
      : `a second factor from the last ${duration(maxAgeSeconds)}`;
  return `This login needs ${need} (${asked}), so Duo asks again even if you approved one earlier.`;
}

function duration(seconds: number): string {
  const [count, unit] = seconds % 3600 === 0 ? [seconds / 3600, 'hour'] : seconds % 60 === 0 ? [seconds / 60, 'minute'] : [seconds, 'second'];
  return count === 1 ? unit : `${count} ${unit}s`;
}

/** The emulator's stand-in for Duo's prompt: who, for which application, and Approve / Deny. */
export function renderPromptPage(input: PromptPageInput): string {
  const app = input.appName === undefined ? '' : `<dt>Application</dt><dd>${escapeHtml(input.appName)}</dd>`;
  const minutes = Math.max(1, Math.round(input.expiresInSeconds / 60));
  const reason = freshnessReason(input.maxAgeSeconds, input.promptLogin ?? false);
  return layout(
    'Approve this login?',
    `<h1>Approve this login?</h1>
${reason === undefined ? '' : `<p class="reason">${escapeHtml(reason)}</p>\n`}<dl>
<dt>User</dt><dd>${escapeHtml(input.username)}</dd>
${app}<dt>Factor</dt><dd>${escapeHtml(input.factor)}</dd>
</dl>
<form method="post" action="${escapeHtml(input.action)}">
<input type="hidden" name="txn" value="${escapeHtml(input.transactionId)}">
<div class="actions">
<button class="approve" type="submit" name="decision" value="approve">Approve</button>
<button class="deny" type="submit" name="decision" value="deny">Deny</button>
</div>
</form>
<p class="note">This page is served by the local Duo emulator of nestjs-duo, for development and tests only. It expires in about ${minutes} minute${minutes === 1 ? '' : 's'}.</p>`,
  );
}

/** Duo answers a bad authorize request with an error page, never with a redirect to an unverified URI. */
export function renderErrorPage(title: string, detail: string): string {
  return layout(title, `<h1>${escapeHtml(title)}</h1>\n<p>${escapeHtml(detail)}</p>`);
}
