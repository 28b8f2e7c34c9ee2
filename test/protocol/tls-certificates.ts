/**
 * Throwaway certificates for the TLS failure tests, made at test time with the
 * openssl CLI: a private root CA and leaves it signs (good, expired, for another
 * host), so that each failure differs from a working setup in one thing only.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface KeyAndCertificate {
  key: string;
  cert: string;
}

export interface TestPki {
  /** The root CA's certificate (PEM): pass it as `ca` to trust the leaves. */
  rootCa: string;
  /** For 127.0.0.1, valid now. */
  good: KeyAndCertificate;
  /** For 127.0.0.1, valid only on 1-2 January 2020. */
  expired: KeyAndCertificate;
  /** Valid now, but for other.example only. */
  otherHost: KeyAndCertificate;
}

const CA_CONFIG = `[ ca ]
default_ca = test_ca
[ test_ca ]
dir = .
database = ./index.txt
serial = ./serial
new_certs_dir = .
default_md = sha256
policy = any
unique_subject = no
copy_extensions = copy
email_in_dn = no
[ any ]
commonName = supplied
`;

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'duo-pki-'));
  const run = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  const read = (name: string): string => readFileSync(join(dir, name), 'utf8');
  try {
    writeFileSync(join(dir, 'ca.cnf'), CA_CONFIG);
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'serial'), '1000\n');
    run(['req', '-x509', ...EC, '-keyout', 'root.key', '-out', 'root.pem', '-days', '2', '-subj', '/CN=nestjs-duo test root']);
    const leaf = (name: string, san: string, dates: string[]): KeyAndCertificate => {
      run(['req', '-new', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`, '-addext', `subjectAltName=${san}`]);
      run(['ca', '-config', 'ca.cnf', '-batch', '-notext', '-cert', 'root.pem', '-keyfile', 'root.key', '-in', `${name}.csr`, '-out', `${name}.pem`, ...dates]);
      return { key: read(`${name}.key`), cert: read(`${name}.pem`) };
    };
    return {
      rootCa: read('root.pem'),
      good: leaf('good', 'IP:127.0.0.1', ['-days', '1']),
      expired: leaf('expired', 'IP:127.0.0.1', ['-startdate', '20200101000000Z', '-enddate', '20200102000000Z']),
      otherHost: leaf('other', 'DNS:other.example', ['-days', '1']),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
