// Who may do what over HTTP: bearer tokens with a role (--auth-file) and CORS for the origins
// the node was given (--cors-origin, plus its own and its --http-peers' origins, so the dashboard
// a node serves can poll the others). Both run in the onRequest hook of app.ts, after the router
// matched a route and before its handler: the role is the matched route's.
import { createHash, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ServerError } from '../errors';

export type Role = 'read' | 'write' | 'admin';
/** Each role can do what the roles below it can. */
const RANK: Record<Role, number> = { read: 1, write: 2, admin: 3 };
/** Shortest token accepted in the file (ours: 16 random characters are far beyond guessing). */
export const MIN_TOKEN_CHARS = 16;
/** Routes for operators' tools: open unless --auth-metrics, then they need a read token. */
export const OBSERVABILITY_ROUTES = new Set([
  '/livez',
  '/readyz',
  '/version',
  '/metrics',
  '/status',
]);
/** The key-value routes: reads need a read token, writes a write token. */
export const KV_ROUTES = new Set(['/kv', '/kv/*']);
/** The request headers a browser may send cross-origin (the shared KV headers of issue 18 too). */
const CORS_ALLOW_HEADERS = 'authorization, content-type, if-match, if-none-match, idempotency-key';
const CORS_EXPOSE_HEADERS = 'x-tspaxos-instance-id, etag, retry-after';
/** How long a browser may cache a preflight answer (ours). */
const CORS_MAX_AGE_SECONDS = 600;

interface Entry {
  digest: Buffer;
  role: Role;
}

/**
 * The tokens of an auth file. The file has one `token role` pair per line (role: read, write or
 * admin); blank lines and lines starting with `#` are ignored. A presented token is hashed
 * (SHA-256) and compared with every entry's hash by timingSafeEqual, without stopping at a
 * match: the time taken does not depend on which entry or which byte differs.
 */
export class AuthTokens {
  /** Digest comparisons made (a test checks each lookup compares against every entry). */
  comparisons = 0;

  private constructor(
    private readonly entries: Entry[],
    /** The file's first token: what this node sends to its peers' protected routes (every role reads). */
    readonly ownToken: string,
  ) {}

  get size(): number {
    return this.entries.length;
  }

  static parse(text: string, where: string): AuthTokens {
    const entries: Entry[] = [];
    const seen = new Set<string>();
    let first: string | undefined;
    text.split('\n').forEach((raw, i) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const at = `${where}:${i + 1}`;
      const parts = line.split(/\s+/);
      if (parts.length !== 2)
        throw new Error(`${at}: expected 'token role', got ${parts.length} fields`);
      const [token, role] = parts as [string, string];
      if (!(role in RANK))
        throw new Error(`${at}: role must be read, write or admin, got '${role}'`);
      if (token.length < MIN_TOKEN_CHARS || !/^[\x21-\x7e]+$/.test(token))
        throw new Error(`${at}: a token is at least ${MIN_TOKEN_CHARS} printable ASCII characters`);
      if (seen.has(token)) throw new Error(`${at}: the token is given twice`);
      seen.add(token);
      first ??= token;
      entries.push({ digest: digest(token), role: role as Role });
    });
    if (entries.length === 0) throw new Error(`${where}: no tokens`);
    return new AuthTokens(entries, first!);
  }

  static load(file: string): AuthTokens {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (error) {
      throw new Error(`--auth-file ${file}: ${(error as Error).message}`);
    }
    return AuthTokens.parse(text, `--auth-file ${file}`);
  }

  /** The role of `token`, or undefined. */
  lookup(token: string): Role | undefined {
    const presented = digest(token);
    let found: Role | undefined;
    for (const entry of this.entries) {
      this.comparisons++;
      if (timingSafeEqual(presented, entry.digest) && found === undefined) found = entry.role;
    }
    return found;
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/**
 * The role a request needs, from the route the router matched (its pattern: `/kv/*`,
 * `/admin/members`), never from the URL as sent: the router decodes the path, so a check on the
 * raw URL let `POST /%61dmin/compact` reach /admin/compact with a write token. `route`
 * undefined: no route matched and the 404/405 handler answers, with any valid token. A route not
 * listed here needs admin (a test checks every route the app has is listed).
 */
export function requiredRole(
  method: string,
  route: string | undefined,
  protectObservability: boolean,
): Role | undefined {
  if (route === undefined) return 'read';
  if (route === '/') return undefined; // the dashboard page
  if (OBSERVABILITY_ROUTES.has(route)) return protectObservability ? 'read' : undefined;
  if (KV_ROUTES.has(route)) return method === 'GET' || method === 'HEAD' ? 'read' : 'write';
  return 'admin';
}

export interface Access {
  /** Undefined: no --auth-file, every route is open. */
  tokens: AuthTokens | undefined;
  /** --auth-metrics: /livez, /readyz, /version, /metrics and /status need a read token too. */
  protectObservability: boolean;
  /** Origins answered with CORS headers (exact match: scheme, host and port). */
  corsOrigins: ReadonlySet<string>;
}

/**
 * CORS, then the token check. Returns true when it answered the request itself (a preflight);
 * throws ServerError 401/403 (the error handler writes the body) when the token does not do.
 */
export function checkAccess(access: Access, req: FastifyRequest, reply: FastifyReply): boolean {
  const origin = req.headers.origin;
  if (origin !== undefined) {
    reply.header('vary', 'Origin');
    const allowed = access.corsOrigins.has(origin);
    if (allowed) {
      reply.header('access-control-allow-origin', origin);
      reply.header('access-control-expose-headers', CORS_EXPOSE_HEADERS);
    }
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
      if (!allowed)
        throw new ServerError('E_FORBIDDEN', `origin ${origin} is not allowed (--cors-origin)`);
      void reply
        .code(204)
        .header('access-control-allow-methods', 'GET, HEAD, PUT, DELETE, POST')
        .header('access-control-allow-headers', CORS_ALLOW_HEADERS)
        .header('access-control-max-age', String(CORS_MAX_AGE_SECONDS))
        .send();
      return true;
    }
  }
  if (access.tokens === undefined) return false;
  // onRequest runs after the router matched: routeOptions.url is the route's pattern.
  const route = req.routeOptions.url;
  const need = requiredRole(req.method, route, access.protectObservability);
  if (need === undefined) return false;
  const header = req.headers.authorization;
  const m = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header);
  const role = m === null ? undefined : access.tokens.lookup(m[1]!);
  if (role === undefined) {
    reply.header('www-authenticate', 'Bearer realm="tspaxos"');
    throw new ServerError(
      'E_UNAUTHORIZED',
      header === undefined
        ? 'this route needs a token: Authorization: Bearer <token>'
        : m === null
          ? 'the Authorization header must be Bearer <token>'
          : 'unknown token',
    );
  }
  if (RANK[role] < RANK[need])
    throw new ServerError(
      'E_FORBIDDEN',
      `a ${role} token cannot ${req.method} ${route ?? req.url.split('?')[0]} (it needs ${need})`,
    );
  return false;
}
