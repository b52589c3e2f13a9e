// The auth file's format, the roles each route needs, and the token lookup's constant-time shape.
import { describe, expect, it } from 'vitest';
import { AuthTokens, requiredRole } from './auth';

const FILE = `# tokens
aaaaaaaaaaaaaaaa-read   read
bbbbbbbbbbbbbbbb-write  write

cccccccccccccccc-admin\tadmin
`;

describe('AuthTokens', () => {
  it('reads one token and role per line, comments and blank lines aside', () => {
    const t = AuthTokens.parse(FILE, 'f');
    expect(t.size).toBe(3);
    expect(t.lookup('aaaaaaaaaaaaaaaa-read')).toBe('read');
    expect(t.lookup('bbbbbbbbbbbbbbbb-write')).toBe('write');
    expect(t.lookup('cccccccccccccccc-admin')).toBe('admin');
    expect(t.lookup('cccccccccccccccc-admiN')).toBeUndefined();
    expect(t.lookup('')).toBeUndefined();
    expect(t.ownToken).toBe('aaaaaaaaaaaaaaaa-read');
  });

  it.each([
    ['tok read extra\n', /f:1: expected 'token role', got 3 fields/],
    ['aaaaaaaaaaaaaaaa owner\n', /f:1: role must be read, write or admin, got 'owner'/],
    ['short read\n', /f:1: a token is at least 16/],
    ['aaaaaaaaaaaaaaaa read\naaaaaaaaaaaaaaaa admin\n', /f:2: the token is given twice/],
    ['# nothing\n\n', /f: no tokens/],
  ])('refuses %j', (text, message) => {
    expect(() => AuthTokens.parse(text, 'f')).toThrow(message);
  });

  it('compares a token with every entry, wherever it matches or differs', () => {
    // A lookup that stopped at the first match, or compared strings byte by byte, would take
    // longer for later entries or longer common prefixes: each lookup here makes exactly one
    // fixed-size digest comparison per entry (timingSafeEqual on SHA-256 digests).
    const t = AuthTokens.parse(FILE, 'f');
    for (const token of [
      'aaaaaaaaaaaaaaaa-read',
      'cccccccccccccccc-admin',
      'cccccccccccccccc-admiX',
      'x',
      'y'.repeat(10_000),
    ]) {
      const before = t.comparisons;
      t.lookup(token);
      expect(t.comparisons - before, token.slice(0, 20)).toBe(3);
    }
  });
});

describe('requiredRole', () => {
  it.each([
    ['GET', '/kv/*', false, 'read'],
    ['HEAD', '/kv/*', false, 'read'],
    ['GET', '/kv', false, 'read'],
    ['PUT', '/kv/*', false, 'write'],
    ['DELETE', '/kv/*', false, 'write'],
    ['POST', '/admin/checkpoint', false, 'admin'],
    ['GET', '/admin/members', false, 'admin'],
    ['GET', '/metrics', false, undefined],
    ['GET', '/readyz', false, undefined],
    ['GET', '/metrics', true, 'read'],
    ['GET', '/status', true, 'read'],
    ['GET', '/livez', true, 'read'],
    ['GET', '/', true, undefined],
    // No route matched (the 404/405 answer): any valid token; a route not listed: admin.
    ['OPTIONS', undefined, false, 'read'],
    ['POST', undefined, false, 'read'],
    ['GET', '/some-new-route', false, 'admin'],
  ] as const)('%s %s (--auth-metrics %s): %s', (method, route, protect, role) => {
    expect(requiredRole(method, route, protect)).toBe(role);
  });
});

// The real HTTP app (routes, hooks, 404/405) with every spelling of every route's path, each
// with no token and each role's token. A root preHandler stands in for the handlers: it runs
// after the access check and answers which route the request reached, so "reached" means "the
// handler would have run". The roles expected are written out here, not taken from auth.ts.
describe('the role check against the route the router matched', () => {
  const TOKEN = {
    read: 'aaaaaaaaaaaaaaaa-read',
    write: 'bbbbbbbbbbbbbbbb-write',
    admin: 'cccccccccccccccc-admin',
  } as const;
  const RANKS = { none: 0, read: 1, write: 2, admin: 3 } as const;
  /** What each route needs, by `METHOD pattern` (HEAD as GET). 0: open. */
  const need = (method: string, route: string, protect: boolean): number => {
    if (route === '/') return 0;
    if (['/livez', '/readyz', '/version', '/metrics', '/status'].includes(route))
      return protect ? 1 : 0;
    if (route.startsWith('/admin/')) return 3;
    if (route === '/kv' || route === '/kv/*') return method === 'GET' || method === 'HEAD' ? 1 : 2;
    throw new Error(`a route this test does not know: ${method} ${route}`);
  };
  const PATHS = [
    '/',
    '/kv',
    '/kv/a',
    '/status',
    '/metrics',
    '/livez',
    '/readyz',
    '/version',
    '/admin/checkpoint',
    '/admin/compact',
    '/admin/members',
    '/admin/backup',
  ];
  const encodeAll = (p: string) =>
    p.replace(/[^/]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  /** Spellings of a path: the router decodes some to the route, refuses or misses the others. */
  const SPELLINGS: [string, (p: string) => string][] = [
    ['as is', (p) => p],
    [
      'first letter encoded',
      (p) => p.replace(/^\/(\w)/, (_m, c: string) => `/%${c.charCodeAt(0).toString(16)}`),
    ],
    ['every letter encoded', encodeAll],
    ['upper-case hex', (p) => encodeAll(p).toUpperCase()],
    ['encoded slash', (p) => p.replace(/\/(?=[^/]*$)/, '%2F')],
    ['double slash first', (p) => `/${p}`],
    ['double slash inside', (p) => p.replace(/\/(?=[^/]*$)/, '//')],
    ['dot segment', (p) => `/.${p}`],
    ['dot-dot segment', (p) => `/x/..${p}`],
    ['encoded dot-dot', (p) => `/x/%2e%2e${p}`],
    ['upper case', (p) => p.toUpperCase()],
    ['trailing slash', (p) => `${p}/`],
    ['query', (p) => `${p}?x=/kv/a`],
    ['query of a path', (p) => `${p}?/admin/members`],
    ['semicolon', (p) => `${p};a=b`],
    ['hash', (p) => `${p}#x`],
    ['backslash', (p) => p.replace(/\//g, '\\')],
    ['null byte', (p) => `${p}%00`],
  ];
  const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'];

  async function appWith(protect: boolean, stopping = false) {
    const { buildHttp } = await import('./app');
    const { default: pino } = await import('pino');
    const failures: Error[] = [];
    const node = {
      access: {
        tokens: AuthTokens.parse(FILE, 'f'),
        protectObservability: protect,
        corsOrigins: new Set(),
      },
      stopping,
      log: pino({ level: 'silent' }),
      groupCount: 1,
      metrics: { httpRequests: { inc: () => {} } },
      recordTaskError: (_code: string, e: Error) => failures.push(e),
    };
    const app = buildHttp(node as unknown as Parameters<typeof buildHttp>[0]);
    const routes: string[] = [];
    app.addHook('onRoute', (r) => {
      for (const m of [r.method].flat()) routes.push(`${m} ${r.url}`);
    });
    app.addHook('preHandler', async (req, reply) => {
      if (req.routeOptions.url === undefined) return undefined; // the 404/405 handler answers
      // A header, not a body: HEAD answers have none.
      void reply.code(299).header('x-reached', req.routeOptions.url).send();
      return reply;
    });
    await app.ready();
    return { app, failures, routes };
  }

  it.each([false, true])(
    'no spelling reaches a route without its role (--auth-metrics %s)',
    async (protect) => {
      const { app, failures, routes } = await appWith(protect);
      try {
        const breaches: string[] = [];
        const reached = new Map<string, number>();
        const reachedRoutes = new Set<string>();
        let requests = 0;
        for (const p of PATHS)
          for (const [spelling, spell] of SPELLINGS)
            for (const method of METHODS)
              for (const who of ['none', 'read', 'write', 'admin'] as const) {
                const url = spell(p);
                const res = await app.inject({
                  method: method as 'GET',
                  url,
                  headers: who === 'none' ? {} : { authorization: `Bearer ${TOKEN[who]}` },
                  ...(method === 'POST' || method === 'PUT' ? { payload: 'x' } : {}),
                });
                requests++;
                const what = `${who} ${method} ${url}`;
                if (res.statusCode === 299) {
                  const route = String(res.headers['x-reached']);
                  reached.set(spelling, (reached.get(spelling) ?? 0) + 1);
                  reachedRoutes.add(`${method} ${route}`);
                  if (RANKS[who] < need(method, route, protect))
                    breaches.push(`${what} reached ${method} ${route}`);
                } else if (![400, 401, 403, 404, 405].includes(res.statusCode)) {
                  breaches.push(`${what} answered ${res.statusCode} ${res.body}`);
                }
              }
        expect(breaches).toEqual([]);
        expect(failures).toEqual([]);
        // Every route the app has was reached (a new route must join PATHS and `need`).
        expect(routes.length).toBeGreaterThan(15);
        expect(routes.filter((r) => !reachedRoutes.has(r))).toEqual([]);
        expect(requests).toBe(PATHS.length * SPELLINGS.length * METHODS.length * 4);
        // The router does decode some spellings to a route: those are the ones that matter.
        expect(reached.get('as is')).toBeGreaterThan(40);
        expect(reached.get('first letter encoded')).toBeGreaterThan(20);
        expect(reached.get('every letter encoded')).toBeGreaterThan(20);
      } finally {
        await app.close();
      }
    },
    120_000,
  );

  // A stopping node still says it is alive, whatever the spelling of /livez; every other route
  // answers 503 E_STOPPING (the rule looked at the raw URL: `/livez?x=1` answered 503).
  it('a stopping node answers /livez in every spelling the router matches, 503 elsewhere', async () => {
    const headers = { authorization: `Bearer ${TOKEN.admin}` };
    const reachedBy = async (stopping: boolean) => {
      const { app } = await appWith(false, stopping);
      try {
        const reached: string[] = [];
        for (const [spelling, spell] of SPELLINGS) {
          const res = await app.inject({ method: 'GET', url: spell('/livez'), headers });
          if (res.statusCode === 299) reached.push(spelling);
          else if (res.statusCode === 503) expect(res.json().error.code).toBe('E_STOPPING');
        }
        const kv = await app.inject({ method: 'GET', url: '/kv/a', headers });
        return { reached, kv: kv.statusCode };
      } finally {
        await app.close();
      }
    };
    const serving = await reachedBy(false);
    const stopping = await reachedBy(true);
    expect(serving.reached.length).toBeGreaterThanOrEqual(4); // as is, encoded, query, slash…
    expect(stopping.reached).toEqual(serving.reached);
    expect(stopping.kv).toBe(503);
  });
});
