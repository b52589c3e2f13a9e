// The client side of the HTTP API for the `tspaxos` client commands: one request tried against
// each endpoint in turn until one answers (a connection that fails moves on to the next; an
// answer, even an error, is final), with a bearer token and TLS files.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';

/** How long one endpoint may take to answer before the next is tried (ours). */
export const CLIENT_TIMEOUT_MS = 15_000;

export interface ClientOptions {
  endpoints: string[];
  token?: string;
  cacert?: string;
  cert?: string;
  key?: string;
  timeoutMs?: number;
}

export interface ClientResponse {
  endpoint: string;
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A failure the CLI prints as one line and exits 1 with. */
export class ClientError extends Error {
  override readonly name = 'ClientError';
  constructor(
    message: string,
    /** The server's error code (E_NOT_FOUND …), when it answered one. */
    readonly code?: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Connection-level failures: the endpoint did not answer, so another may. */
const CONNECT_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EPIPE',
]);

/**
 * The token of a token file: its first line that is not blank or a `#` comment, up to the first
 * space (so a `token role` line copied from an --auth-file does too). Kept in a file, a token
 * stays out of `ps` and shell history.
 */
export function readTokenFile(flag: string, file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new ClientError(
      `${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  const line = text
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l !== '' && !l.startsWith('#'));
  if (line === undefined) throw new ClientError(`${flag} ${file}: no token in it`);
  return line.split(/\s+/)[0]!;
}

export function parseEndpoints(list: string): string[] {
  const endpoints = list
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)
    .map((e) => (/^https?:\/\//.test(e) ? e : `http://${e}`).replace(/\/+$/, ''));
  for (const e of endpoints) {
    try {
      new URL(e);
    } catch {
      throw new ClientError(`--endpoints: '${e}' is not a URL`);
    }
  }
  if (endpoints.length === 0) throw new ClientError('--endpoints is empty');
  return endpoints;
}

export class Client {
  private readonly tls: https.AgentOptions;

  constructor(readonly opts: ClientOptions) {
    const read = (flag: string, file: string | undefined) => {
      if (file === undefined) return undefined;
      try {
        return fs.readFileSync(file);
      } catch (error) {
        throw new ClientError(
          `${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
        );
      }
    };
    this.tls = {
      ca: read('--cacert', opts.cacert),
      cert: read('--cert', opts.cert),
      key: read('--key', opts.key),
    };
  }

  /**
   * Sends the request to the endpoints in order until one answers. `headers` are sent to every
   * endpoint alike (a write's Idempotency-Key stays the same across its retries).
   */
  async request(
    method: string,
    pathAndQuery: string,
    body?: Uint8Array,
    headers: Record<string, string> = {},
  ): Promise<ClientResponse> {
    const failures: string[] = [];
    for (const endpoint of this.opts.endpoints) {
      try {
        return await this.once(endpoint, method, pathAndQuery, body, headers);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? '';
        if (!CONNECT_ERRORS.has(code)) {
          if (error instanceof ClientError) throw error;
          throw new ClientError(`${endpoint}: ${oneLine((error as Error).message)}`);
        }
        failures.push(`${endpoint}: ${code}`);
      }
    }
    throw new ClientError(`no endpoint answered (${failures.join('; ')})`, 'E_UNREACHABLE');
  }

  /** Like request, but an answer other than 2xx becomes a ClientError with the server's message. */
  async call(
    method: string,
    pathAndQuery: string,
    body?: Uint8Array,
    headers: Record<string, string> = {},
  ): Promise<ClientResponse> {
    const res = await this.request(method, pathAndQuery, body, headers);
    if (res.status >= 200 && res.status < 300) return res;
    throw errorOf(res);
  }

  private once(
    endpoint: string,
    method: string,
    pathAndQuery: string,
    body: Uint8Array | undefined,
    headers: Record<string, string>,
  ): Promise<ClientResponse> {
    const url = new URL(pathAndQuery, `${endpoint}/`);
    const all: Record<string, string> = { ...headers };
    if (this.opts.token !== undefined) all.authorization = `Bearer ${this.opts.token}`;
    if (body !== undefined) {
      all['content-type'] ??= 'application/octet-stream';
      all['content-length'] = String(body.length);
    }
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = lib.request(
        url,
        {
          method,
          headers: all,
          timeout: this.opts.timeoutMs ?? CLIENT_TIMEOUT_MS,
          ...(url.protocol === 'https:' ? this.tls : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () =>
            resolve({
              endpoint,
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks),
            }),
          );
        },
      );
      req.on('timeout', () =>
        req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })),
      );
      req.on('error', reject);
      req.end(body);
    });
  }
}

/**
 * An error message as one line: OpenSSL's (`…:SSL routines:ssl3_read_bytes:tlsv13 alert
 * certificate required:../deps/…:SSL alert number 116\n`) shortened to its reason.
 */
function oneLine(message: string): string {
  const ssl = /SSL routines:[^:]*:([^:]+):/.exec(message);
  return (ssl ? ssl[1]! : message).replace(/\s*\n\s*/g, ' ').trim();
}

/** The server's `{ error: { code, message } }` as one line. */
export function errorOf(res: ClientResponse): ClientError {
  let code = `HTTP_${res.status}`;
  let message = res.body.toString('utf8').slice(0, 200);
  try {
    const parsed = JSON.parse(res.body.toString('utf8')) as {
      error?: { code?: string; message?: string };
    };
    if (parsed.error?.code) code = parsed.error.code;
    if (parsed.error?.message) message = parsed.error.message;
  } catch {
    // Not our error shape (a proxy's page): its first bytes are the message.
  }
  return new ClientError(`${code}: ${message}`.split('\n')[0]!, code, res.status);
}
