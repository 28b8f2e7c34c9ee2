/** The one stylesheet, served at /assets/sample.css (no build step, no external resource). */
export const STYLESHEET = `
*{box-sizing:border-box}
:root{--ink:#1f2933;--muted:#5f6b76;--line:#dde3e8;--bg:#f4f6f8;--card:#fff;--brand:#1f6f43;--brand-ink:#fff;--warn:#8a5a00;--warn-bg:#fff5db;--ok:#1f6f43;--ok-bg:#e3f4e9;--no:#a1321f;--no-bg:#fbe8e4}
html{background:var(--bg)}
body{margin:0;color:var(--ink);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
a{color:#0b5cad}
header.top{background:#17324d;color:#fff}
header.top .bar{max-width:960px;margin:0 auto;padding:12px 24px;display:flex;flex-wrap:wrap;align-items:center;gap:10px 20px}
header.top .brand{white-space:nowrap;color:#fff;text-decoration:none;font-weight:700;letter-spacing:.01em}
header.top nav{display:flex;gap:18px;flex:1}
header.top nav a{color:#cfe0f1;text-decoration:none;white-space:nowrap}
header.top nav a:hover,header.top nav a[aria-current=page]{color:#fff;text-decoration:underline;text-underline-offset:4px}
header.top .who{display:flex;align-items:center;gap:12px;font-size:14px;color:#cfe0f1;white-space:nowrap}
header.top .who a{color:#fff}
header.top form{margin:0}
.banner{background:var(--warn-bg);color:var(--warn);border-bottom:1px solid #f0dca6;font-size:14px}
.banner div{max-width:960px;margin:0 auto;padding:8px 24px}
main{max-width:960px;margin:32px auto;padding:0 24px}
h1{font-size:28px;line-height:1.25;margin:0 0 8px}
h2{font-size:18px;margin:0 0 12px}
p.lead{color:var(--muted);margin:0 0 24px;max-width:44rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:22px 24px;margin:0 0 20px;box-shadow:0 1px 2px rgba(16,24,32,.04)}
.narrow{max-width:420px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:8px 20px;margin:0}
dl.facts dt{color:var(--muted)}
dl.facts dd{margin:0;font-weight:600;overflow-wrap:anywhere}
code{font:14px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#eef1f4;border-radius:4px;padding:1px 5px}
.pill{display:inline-block;border-radius:999px;padding:1px 10px;font-size:13px;font-weight:600;white-space:nowrap}
.pill.ok{background:var(--ok-bg);color:var(--ok)}
.pill.no{background:var(--no-bg);color:var(--no)}
.pill.warn{background:var(--warn-bg);color:var(--warn)}
.pill.off{background:#e9edf1;color:var(--muted)}
header.top .pill.ok{background:#2f8f5b;color:#fff}
header.top .pill.off{background:#34506b;color:#cfe0f1}
header.top .pill.warn{background:#f0c048;color:#3a2a00}
.notice{border-radius:8px;padding:10px 14px;margin:0 0 20px;font-size:15px}
.notice.info{background:#e6f0fa;color:#12457a}
.notice.error{background:var(--no-bg);color:var(--no)}
table.pages{border-collapse:collapse;width:100%}
table.pages th,table.pages td{text-align:left;vertical-align:top;padding:10px 16px 10px 0;border-top:1px solid var(--line)}
table.pages tr:first-child th,table.pages tr:first-child td{border-top:0}
table.pages th{font-weight:600;white-space:nowrap}
table.pages td:last-child{white-space:nowrap;padding-right:0}
.card p:last-child{margin-bottom:0}
form.stack{display:grid;gap:14px}
label{display:grid;gap:4px;font-weight:600;font-size:14px}
input[type=text],input[type=password]{font:inherit;font-weight:400;padding:9px 11px;border:1px solid #b9c3cc;border-radius:6px;width:100%}
input:focus-visible,button:focus-visible,a:focus-visible{outline:3px solid #7aa7ff;outline-offset:2px}
button{font:inherit;font-weight:600;border:0;border-radius:6px;padding:10px 16px;cursor:pointer;background:var(--brand);color:var(--brand-ink)}
button.link{background:none;color:#fff;padding:0;font-weight:400;text-decoration:underline;text-underline-offset:3px;font-size:14px}
.hint{font-size:14px;color:var(--muted)}
.hint table{border-collapse:collapse;margin-top:6px}
.hint td{padding:2px 16px 2px 0}
footer{max-width:960px;margin:40px auto 32px;padding:0 24px;color:var(--muted);font-size:13px}
`;
