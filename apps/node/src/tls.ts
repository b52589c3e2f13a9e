// The TLS material of the flags: mutual TLS between peers (--peer-cert, --peer-key, --peer-ca:
// the transport's TcpNetwork then refuses any peer without a certificate the CA signed, plain
// TCP included) and HTTPS for clients (--cert, --key, and with --client-ca a client certificate
// that CA signed is required). Files are read and checked once at start.
import * as fs from 'node:fs';
import * as tls from 'node:tls';
import { StartError } from './start-error';

export interface TlsFlags {
  peerCert?: string;
  peerKey?: string;
  peerCa?: string;
  cert?: string;
  key?: string;
  clientCa?: string;
}

export interface PeerTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

export interface HttpsOptions {
  cert: Buffer;
  key: Buffer;
  /** With it, clients must present a certificate it signed. */
  ca?: Buffer;
  requestCert: boolean;
  rejectUnauthorized: boolean;
}

/** A usage problem of the TLS flags (partial sets), or undefined. */
export function tlsFlagProblem(f: TlsFlags): string | undefined {
  const peer = [f.peerCert, f.peerKey, f.peerCa].filter((v) => v !== undefined).length;
  if (peer !== 0 && peer !== 3) return '--peer-cert, --peer-key and --peer-ca go together';
  if ((f.cert === undefined) !== (f.key === undefined)) return '--cert and --key go together';
  if (f.clientCa !== undefined && f.cert === undefined) return '--client-ca needs --cert and --key';
  return undefined;
}

function read(flag: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (error) {
    throw new StartError(`${flag} ${file}: ${(error as Error).message}`, 1);
  }
}

/** Fails at start, in one line, on a key that does not match its certificate or a bad PEM. */
function check(flags: string, options: tls.SecureContextOptions): void {
  try {
    tls.createSecureContext(options);
  } catch (error) {
    throw new StartError(`${flags}: ${(error as Error).message}`, 1);
  }
}

export function peerTls(f: TlsFlags): PeerTls | undefined {
  if (f.peerCert === undefined || f.peerKey === undefined || f.peerCa === undefined)
    return undefined;
  const out = {
    cert: read('--peer-cert', f.peerCert),
    key: read('--peer-key', f.peerKey),
    ca: read('--peer-ca', f.peerCa),
  };
  check('--peer-cert/--peer-key/--peer-ca', out);
  return out;
}

export function httpsOptions(f: TlsFlags): HttpsOptions | undefined {
  if (f.cert === undefined || f.key === undefined) return undefined;
  const cert = read('--cert', f.cert);
  const key = read('--key', f.key);
  const ca = f.clientCa === undefined ? undefined : read('--client-ca', f.clientCa);
  check('--cert/--key/--client-ca', { cert, key, ...(ca ? { ca } : {}) });
  return {
    cert,
    key,
    ...(ca ? { ca } : {}),
    requestCert: ca !== undefined,
    rejectUnauthorized: ca !== undefined,
  };
}

/**
 * The TLS files of a client (--join-ca, --join-cert, --join-key): readable PEMs, the key that of
 * the certificate. One line (exit 1, as the other TLS files) at start, not a failed join later.
 */
export function checkClientTls(ca?: string, cert?: string, key?: string): void {
  const files = {
    ...(ca !== undefined ? { ca: read('--join-ca', ca) } : {}),
    ...(cert !== undefined ? { cert: read('--join-cert', cert) } : {}),
    ...(key !== undefined ? { key: read('--join-key', key) } : {}),
  };
  check('--join-ca/--join-cert/--join-key', files);
}
