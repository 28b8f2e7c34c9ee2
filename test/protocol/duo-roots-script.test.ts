/**
 * scripts/duo-roots.mjs regenerates src/protocol/duo-roots.ts from Duo's CA
 * bundle. Duo's bundle is not in this repository (no PEM is copied), so the
 * test builds a small bundle in Duo's format from two of the pinned roots this
 * Node ships and checks that the script writes them as the committed list does.
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { DUO_PINNED_ROOTS } from '../../src/protocol/duo-roots.js';
import { pinnedRootCertificates } from '../../src/protocol/http.js';

const SCRIPT = fileURLToPath(new URL('../../scripts/duo-roots.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'duo-roots-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [SCRIPT, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('scripts/duo-roots.mjs', () => {
  it('writes each certificate of a bundle with the subject, fingerprint and source the committed list uses, and whether this Node ships it', () => {
    const [first, second] = pinnedRootCertificates();
    const bundle = join(dir, 'ca_certs.pem');
    writeFileSync(bundle, `# Source URL: https://ca.example/first.cer\n# Subject: ...\n\n${first}\n\n# Source URL: https://ca.example/second.cer\n${second}\n`);
    const { status, stdout, stderr } = run(bundle, '--bundle-version=1.0', '--source=a test bundle');
    expect(status, stderr).toBe(0);
    expect(stdout).toContain("export const DUO_CA_BUNDLE_VERSION = '1.0';");
    expect(stdout).toContain('// - a test bundle');
    for (const [pem, source] of [
      [first!, 'https://ca.example/first.cer'],
      [second!, 'https://ca.example/second.cer'],
    ] as const) {
      const sha256 = new X509Certificate(pem).fingerprint256;
      const listed = DUO_PINNED_ROOTS.find((root) => root.sha256 === sha256)!;
      const quoted = listed.subject.replaceAll('\\', '\\\\');
      expect(stdout).toContain(`{ subject: '${quoted}', sha256: '${sha256}', source: '${source}' }`);
    }
    expect(stdout).toContain(`in Node ${process.version}.`);
    expect(stderr).toContain(`Node ${process.version}: 2 of 2 of Duo's roots are in tls.rootCertificates`);
  });

  it('fails with a message for a file that holds no certificate, and for a bad --bundle-version', () => {
    const empty = join(dir, 'empty.pem');
    writeFileSync(empty, '# nothing here\n');
    const none = run(empty);
    expect(none.status).toBe(1);
    expect(none.stderr).toContain('holds no PEM certificate');
    const badVersion = run(empty, '--bundle-version=one');
    expect(badVersion.status).toBe(1);
    expect(badVersion.stderr).toContain('--bundle-version');
  });
});
