import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface LocalTls {
  /** The throw-away CA's certificate (PEM): what clients must trust. */
  caPem: string;
  /** The server's key and certificate (PEM), signed by the CA, for IP 127.0.0.1 and localhost. */
  keyPem: string;
  certPem: string;
  dispose(): void;
}

/**
 * A throw-away CA and a server certificate for 127.0.0.1, made with the
 * `openssl` CLI in a temporary folder, valid for one day, removed by dispose().
 */
export function createLocalTls(): LocalTls {
  const dir = mkdtempSync(join(tmpdir(), 'nestjs-duo-bench-tls-'));
  const path = (name: string): string => join(dir, name);
  const openssl = (args: string[]): void => {
    execFileSync('openssl', args, { stdio: 'ignore' });
  };
  try {
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    openssl([
      'req', '-x509', ...ec, '-keyout', path('ca.key'), '-out', path('ca.pem'), '-days', '1', '-subj', '/CN=nestjs-duo bench CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    openssl(['req', ...ec, '-keyout', path('server.key'), '-out', path('server.csr'), '-subj', '/CN=127.0.0.1']);
    writeFileSync(
      path('server.ext'),
      'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n',
    );
    openssl([
      'x509', '-req', '-in', path('server.csr'), '-CA', path('ca.pem'), '-CAkey', path('ca.key'), '-CAcreateserial',
      '-out', path('server.pem'), '-days', '1', '-extfile', path('server.ext'),
    ]);
    return {
      caPem: readFileSync(path('ca.pem'), 'utf8'),
      keyPem: readFileSync(path('server.key'), 'utf8'),
      certPem: readFileSync(path('server.pem'), 'utf8'),
      dispose: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`Could not make a local CA with the openssl CLI (${(error as Error).message}). Is openssl installed?`);
  }
}
