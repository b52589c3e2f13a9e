// A test CA and certificates made with `openssl` in a temporary directory: `ca` signs the
// cluster's certificates (each valid for 127.0.0.1 and localhost, usable by servers and
// clients), `other-ca` signs the ones that must be refused.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir } from './helpers';

export interface Certs {
  dir: string;
  /** Path of `<name>.pem` / `<name>.key` / a CA's `<ca>.pem`. */
  pem(name: string): string;
  key(name: string): string;
  read(file: string): Buffer;
  remove(): void;
}

/** `names` signed by `ca`, `rogues` signed by `other-ca`. */
export function makeCerts(names: string[], rogues: string[] = []): Certs {
  const dir = tempDir('certs');
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  fs.writeFileSync(
    path.join(dir, 'ext.cnf'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n',
  );
  for (const ca of ['ca', 'other-ca'])
    ssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${ca}.key`,
      '-out',
      `${ca}.pem`,
      '-days',
      '1',
      '-subj',
      `/CN=tspaxos-test-${ca}`,
    );
  const sign = (name: string, ca: string) => {
    ssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      `/CN=${name}`,
    );
    ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.pem`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '1',
      '-extfile',
      'ext.cnf',
    );
  };
  for (const name of names) sign(name, 'ca');
  for (const name of rogues) sign(name, 'other-ca');
  return {
    dir,
    pem: (name) => path.join(dir, `${name}.pem`),
    key: (name) => path.join(dir, `${name}.key`),
    read: (file) => fs.readFileSync(path.join(dir, file)),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
