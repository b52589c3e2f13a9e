// TLS and tokens with real processes (issue 19). Nodes 1 and 2 link over mutual TLS with
// certificates of the test CA, serve HTTPS and check bearer tokens; node 3 is a plain voter and
// node 4 a follower whose certificate another CA signed: both are refused by the TLS peers and
// learn nothing, while nodes 1 and 2 choose writes on their own. Over HTTPS a client must trust
// the CA (another CA fails), node 2 also asks for a client certificate; a missing token is 401,
// a read token cannot write (403), only admin reaches /admin/*, whatever the spelling of the path;
// CORS answers only listed origins. Last, node 5 joins through node 2 with an admin token, the CA
// and a client certificate while writes go on, and learns every acknowledged write; a join with
// no token, a read token or another CA stops with one line.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeStatus } from '../src/status';
import { type Certs, makeCerts } from './certs';
import { CLI, freePorts, NodeProcess, tempDir, waitFor } from './helpers';

/** Runs the CLI to its end (without blocking the test's event loop). */
function runCli(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

const TOKENS = {
  read: 'read-token-0123456789',
  write: 'write-token-0123456789',
  admin: 'admin-token-0123456789',
};

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTPS request; `tls` picks what the client trusts and presents. */
function request(
  url: string,
  o: {
    method?: string;
    path?: string;
    body?: string;
    headers?: Record<string, string>;
    ca?: Buffer;
    cert?: Buffer;
    key?: Buffer;
  } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        // The path as given: in `url` it would be normalized (dot segments, backslashes).
        ...(o.path !== undefined ? { path: o.path } : {}),
        method: o.method ?? 'GET',
        headers: o.headers ?? {},
        ...(o.ca ? { ca: o.ca } : {}),
        ...(o.cert ? { cert: o.cert, key: o.key } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

describe('TLS between peers, HTTPS and tokens', () => {
  let certs: Certs;
  let dataRoot: string;
  const nodes: NodeProcess[] = [];
  let urls: string[];
  let ca: Buffer;
  let authFile: string;

  beforeAll(async () => {
    certs = makeCerts(['n1', 'n2', 'n5', 'client'], ['rogue']);
    ca = certs.read('ca.pem');
    dataRoot = tempDir('security');
    authFile = path.join(dataRoot, 'tokens');
    fs.writeFileSync(
      authFile,
      `# token role\n${TOKENS.read} read\n${TOKENS.write} write\n\n${TOKENS.admin}   admin\n`,
    );
    const ports = await freePorts(8);
    const cluster = [1, 2, 3].map((id) => `${id}=127.0.0.1:${ports[id - 1]}`).join(',');
    urls = [1, 2, 3, 4].map((id) => `${id <= 2 ? 'https' : 'http'}://127.0.0.1:${ports[3 + id]}`);
    const peerTls = (name: string, caFile: string) => [
      '--peer-cert',
      certs.pem(name),
      '--peer-key',
      certs.key(name),
      '--peer-ca',
      caFile,
    ];
    const base = (id: number) => [
      'node',
      '--id',
      String(id),
      '--cluster',
      cluster,
      '--http',
      `127.0.0.1:${ports[3 + id]}`,
      '--data',
      path.join(dataRoot, `node-${id}`),
      '--http-peers',
      `1=${urls[0]},2=${urls[1]}`,
    ];
    const args = [
      [
        ...base(1),
        ...peerTls('n1', certs.pem('ca')),
        ...['--cert', certs.pem('n1'), '--key', certs.key('n1')],
        ...['--auth-file', authFile, '--cors-origin', 'https://app.example'],
      ],
      [
        ...base(2),
        ...peerTls('n2', certs.pem('ca')),
        ...['--cert', certs.pem('n2'), '--key', certs.key('n2'), '--client-ca', certs.pem('ca')],
        ...['--auth-file', authFile, '--auth-metrics'],
      ],
      base(3),
      [
        ...base(4),
        ...['--follow-to', '1', '--listen', `127.0.0.1:${ports[3]}`],
        ...peerTls('rogue', certs.pem('other-ca')),
      ],
    ];
    args.forEach((a, i) => nodes.push(new NodeProcess(i + 1, a, urls[i]!)));
    for (const n of nodes) n.start();
    await Promise.all(nodes.map((n) => n.ready()));
  }, 180_000);

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.kill('SIGTERM')));
    fs.rmSync(dataRoot, { recursive: true, force: true });
    certs.remove();
  });

  const status = async (i: number): Promise<NodeStatus> => {
    const r = await request(`${urls[i]}/status`, {
      ca,
      cert: certs.read('client.pem'),
      key: certs.read('client.key'),
      headers: { authorization: `Bearer ${TOKENS.read}` },
    });
    expect(r.status).toBe(200);
    return JSON.parse(r.body) as NodeStatus;
  };

  it('peers with the CA link over TLS; a plain peer and another CA are refused', async () => {
    const write = await request(`${urls[0]}/kv/tls-key`, {
      method: 'PUT',
      body: 'v',
      ca,
      headers: { authorization: `Bearer ${TOKENS.write}` },
    });
    expect(write.status, write.body).toBe(200);
    // Compared at one moment both agree on: the master's lease renewals (every quarter lease)
    // move the instance id between two reads.
    const [s1, s2] = await waitFor(
      'both TLS nodes refused a handshake, at the same instance',
      async () => {
        const all = await Promise.all([status(0), status(1)]);
        const refused = all.every((s) => (s.network.drops['tls-rejected'] ?? 0) >= 1);
        const same = all[0]!.groups[0]!.instanceId === all[1]!.groups[0]!.instanceId;
        return refused && same ? all : undefined;
      },
    );
    expect(s1.groups[0]!.instanceId).toBeGreaterThan(0);
    expect(s2.groups[0]!.instanceId).toBe(s1.groups[0]!.instanceId);
    // The plain voter and the rogue follower never got a frame through: nothing learned.
    const s3 = await nodes[2]!.status();
    const s4 = await nodes[3]!.status();
    expect(s3.groups[0]!.instanceId).toBe(0);
    expect(s4.groups[0]!.instanceId).toBe(0);
    expect(s3.network.framesReceived).toBe(0);
    expect(s4.network.framesReceived).toBe(0);
    // Node 1 polls node 2's /status over HTTPS with its certificate and a token (--auth-metrics).
    await waitFor('node 1 sees node 2 over HTTPS', async () => {
      const m = (await status(0)).members.find((x) => x.nodeId === 2);
      if (m?.reachable !== true) throw new Error(m?.error ?? 'not polled yet');
      return true;
    });
  }, 120_000);

  it('HTTPS needs the right CA; with --client-ca, a client certificate', async () => {
    expect((await request(`${urls[0]}/version`, { ca })).status).toBe(200);
    await expect(request(`${urls[0]}/version`)).rejects.toThrow(
      /local issuer|self[- ]signed|unable to verify/i,
    );
    await expect(request(`${urls[0]}/version`, { ca: certs.read('other-ca.pem') })).rejects.toThrow(
      /local issuer|self[- ]signed|unable to verify/i,
    );
    // Node 2 requires a client certificate its CA signed.
    await expect(request(`${urls[1]}/livez`, { ca })).rejects.toThrow();
    await expect(
      request(`${urls[1]}/livez`, {
        ca,
        cert: certs.read('rogue.pem'),
        key: certs.read('rogue.key'),
      }),
    ).rejects.toThrow();
    const ok = await request(`${urls[1]}/livez`, {
      ca,
      cert: certs.read('client.pem'),
      key: certs.read('client.key'),
      headers: { authorization: `Bearer ${TOKENS.read}` },
    });
    expect(ok.status).toBe(200);
  });

  it('tokens: none is 401, read cannot write, only admin reaches /admin', async () => {
    const at = (p: string, method: string, token?: string) =>
      request(`${urls[0]}${p}`, {
        method,
        ca,
        ...(method === 'PUT' ? { body: 'x' } : {}),
        headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      });
    const none = await at('/kv/a', 'PUT');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(JSON.parse(none.body)).toEqual({
      error: { code: 'E_UNAUTHORIZED', message: expect.any(String) },
    });
    expect((await at('/kv/a', 'GET')).status).toBe(401);
    const wrong = await at('/kv/a', 'GET', 'not-a-token-0123456789');
    expect(wrong.status).toBe(401);
    expect(JSON.parse(wrong.body).error.code).toBe('E_UNAUTHORIZED');
    const readPut = await at('/kv/a', 'PUT', TOKENS.read);
    expect(readPut.status).toBe(403);
    expect(JSON.parse(readPut.body).error.code).toBe('E_FORBIDDEN');
    expect((await at('/kv/a', 'GET', TOKENS.read)).status).toBe(404); // read, nothing there
    expect((await at('/kv/a', 'PUT', TOKENS.write)).status).toBe(200);
    expect((await at('/kv/a', 'GET', TOKENS.read)).body).toBe('x');
    expect((await at('/admin/checkpoint', 'POST', TOKENS.write)).status).toBe(403);
    expect((await at('/admin/checkpoint', 'POST', TOKENS.admin)).status).toBe(200);
    // Without --auth-metrics node 1's operator routes are open; node 2's need a read token.
    for (const p of ['/metrics', '/status', '/livez', '/readyz', '/version'])
      expect((await at(p, 'GET')).status, p).not.toBe(401);
    const client = { ca, cert: certs.read('client.pem'), key: certs.read('client.key') };
    expect((await request(`${urls[1]}/metrics`, client)).status).toBe(401);
    const metrics = await request(`${urls[1]}/metrics`, {
      ...client,
      headers: { authorization: `Bearer ${TOKENS.read}` },
    });
    expect(metrics.status).toBe(200);
    // The refusals are counted by status.
    const scraped = (await at('/metrics', 'GET')).body;
    expect(scraped).toMatch(/tspaxos_http_requests_total\{[^}]*status="401"[^}]*\} [1-9]/);
    expect(scraped).toMatch(/tspaxos_http_requests_total\{[^}]*status="403"[^}]*\} [1-9]/);
  });

  it('no spelling of a path gets past the role of the route it reaches', async () => {
    // The audit's requests first: each reached an admin route with a read or write token.
    const send = (method: string, rawPath: string, token?: string) =>
      request(urls[0]!, {
        method,
        path: rawPath,
        ca,
        ...(method === 'POST' ? { body: '{}' } : {}),
        headers: {
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
          ...(method === 'POST' ? { 'content-type': 'application/json' } : {}),
        },
      });
    for (const [who, method, rawPath] of [
      ['write', 'POST', '/%61dmin/checkpoint'],
      ['write', 'POST', '/%61dmin/compact?keep=0'],
      ['write', 'POST', '/%61dmin/members'],
      ['read', 'GET', '/%61dmin/members'],
      ['read', 'GET', '/%61dmin/backup'],
    ] as const) {
      const r = await send(method, rawPath, TOKENS[who]);
      expect(r.status, `${who} ${method} ${rawPath}: ${r.body}`).toBe(403);
      expect(JSON.parse(r.body).error.code).toBe('E_FORBIDDEN');
    }
    // The same spelling with the admin token reaches the route: the router decodes it.
    const admin = await send('GET', '/%61dmin/members', TOKENS.admin);
    expect(admin.status).toBe(200);
    expect(JSON.parse(admin.body).nodes.length).toBeGreaterThanOrEqual(3);
    // Other spellings over a real socket (no normalizing client in between), with each token
    // below admin: never 2xx, never a 5xx.
    const spellings = [
      '/%61%64%6D%69%6E/members',
      '//admin/members',
      '/admin//members',
      '/admin/../admin/members',
      '/x/%2e%2e/admin/members',
      '/./admin/members',
      '/ADMIN/members',
      '/admin/members/',
      '/admin/members?x=/kv/a',
      '/kv/../admin/members',
      '/kv/%2e%2e/admin/members',
      '/admin%2fmembers',
      '/admin\\members',
      '/admin/members;x',
      '/admin/members%00',
    ];
    const answers = new Map<number, number>();
    for (const rawPath of spellings)
      for (const method of ['GET', 'HEAD', 'POST', 'OPTIONS'])
        for (const who of [undefined, 'read', 'write'] as const) {
          const r = await send(method, rawPath, who === undefined ? undefined : TOKENS[who]);
          answers.set(r.status, (answers.get(r.status) ?? 0) + 1);
          const what = `${who ?? 'no token'} ${method} ${rawPath}: ${r.status} ${r.body}`;
          expect([400, 401, 403, 404, 405], what).toContain(r.status);
          // GET /kv/<key> of a key named "../admin/members" is a read, not the admin route.
          if (r.status === 404 && method !== 'HEAD')
            expect(JSON.parse(r.body).error.code, what).toBe('E_NOT_FOUND');
        }
    expect([...answers.values()].reduce((a, b) => a + b, 0)).toBe(spellings.length * 4 * 3);
    expect(answers.get(401)).toBeGreaterThan(0);
    expect(answers.get(403)).toBeGreaterThan(0);
  });

  it('CORS: only the configured origins and the cluster own get CORS headers', async () => {
    const get = (origin: string) =>
      request(`${urls[0]}/kv/a`, {
        ca,
        headers: { origin, authorization: `Bearer ${TOKENS.read}` },
      });
    const listed = await get('https://app.example');
    expect(listed.headers['access-control-allow-origin']).toBe('https://app.example');
    const peer = await get(new URL(urls[1]!).origin); // the dashboard of node 2 polls node 1
    expect(peer.headers['access-control-allow-origin']).toBe(new URL(urls[1]!).origin);
    const other = await get('https://evil.example');
    expect(other.status).toBe(200);
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
    const preflight = (origin: string) =>
      request(`${urls[0]}/kv/a`, {
        method: 'OPTIONS',
        ca,
        headers: {
          origin,
          'access-control-request-method': 'PUT',
          'access-control-request-headers': 'authorization',
        },
      });
    const yes = await preflight('https://app.example');
    expect(yes.status).toBe(204);
    expect(yes.headers['access-control-allow-headers']).toContain('authorization');
    const no = await preflight('https://evil.example');
    expect(no.status).toBe(403);
    expect(JSON.parse(no.body).error.code).toBe('E_FORBIDDEN');
  });

  it('--join reaches a member with TLS, a client certificate and tokens; nothing acked is lost', async () => {
    const joinRoot = tempDir('security-join');
    const tokenFile = path.join(joinRoot, 'join.token');
    fs.writeFileSync(
      tokenFile,
      `# the admin token: adding a member needs admin\n${TOKENS.admin}\n`,
      {
        mode: 0o600,
      },
    );
    const readTokenFile = path.join(joinRoot, 'read.token');
    fs.writeFileSync(readTokenFile, `${TOKENS.read} read\n`);
    const put = async (key: string) => {
      const r = await request(`${urls[0]}/kv/${key}`, {
        method: 'PUT',
        body: `v-${key}`,
        ca,
        headers: { authorization: `Bearer ${TOKENS.write}` },
      });
      expect(r.status, r.body).toBe(200);
    };
    // Node 2 asks for a client certificate: the join presents --join-cert.
    const joinArgs = (id: number, ...extra: string[]) => [
      'node',
      '--id',
      String(id),
      '--join',
      urls[1]!,
      '--listen',
      '127.0.0.1:0',
      '--http',
      '127.0.0.1:0',
      '--data',
      path.join(joinRoot, `node-${id}`),
      ...extra,
    ];
    const joinTls = ['--join-cert', certs.pem('client'), '--join-key', certs.key('client')];
    try {
      // Joins that cannot go on: one line on stderr, exit 1, nothing added.
      const failures: [string[], RegExp][] = [
        [['--join-ca', certs.pem('ca'), ...joinTls], /401 E_UNAUTHORIZED: .*admin token/],
        [
          ['--join-ca', certs.pem('ca'), ...joinTls, '--join-token-file', readTokenFile],
          /403 E_FORBIDDEN: a read token cannot GET \/admin\/members .*admin token/,
        ],
        [
          ['--join-ca', certs.pem('other-ca'), ...joinTls, '--join-token-file', tokenFile],
          /certificate.*--join-ca/,
        ],
        [['--join-ca', certs.pem('ca'), '--join-token-file', tokenFile], /--join: .*--join-cert/],
      ];
      for (const [extra, message] of failures) {
        const r = await runCli(joinArgs(6, ...extra));
        expect(r.code, r.stderr).toBe(1);
        expect(r.stderr).toMatch(message);
        expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
      }
      // Writes before, during and after the join: node 5 must end up with every one acked.
      const acked: string[] = [];
      for (let i = 0; i < 10; i++) {
        await put(`join-${i}`);
        acked.push(`join-${i}`);
      }
      const n5 = new NodeProcess(
        5,
        joinArgs(
          5,
          ...['--join-ca', certs.pem('ca'), ...joinTls],
          ...['--peer-cert', certs.pem('n5'), '--peer-key', certs.key('n5')],
          ...['--peer-ca', certs.pem('ca'), '--cert', certs.pem('n5'), '--key', certs.key('n5')],
          ...['--auth-file', authFile],
        ),
        '',
      );
      // The token file from the environment, as every flag can be.
      n5.env = { TSPAXOS_JOIN_TOKEN_FILE: tokenFile };
      nodes.push(n5); // afterAll stops it
      n5.start();
      let writing = true;
      const during = (async () => {
        for (let i = 10; writing || i < 20; i++) {
          await put(`join-${i}`);
          acked.push(`join-${i}`);
        }
      })();
      await n5.ready();
      await waitFor(
        'node 5 logged joined',
        () => n5.json().some((l) => l['msg'] === 'joined'),
        60_000,
      );
      writing = false;
      await during;
      for (let i = 0; i < 5; i++) {
        await put(`join-after-${i}`);
        acked.push(`join-after-${i}`);
      }
      expect(acked.length).toBeGreaterThanOrEqual(25);
      const view = JSON.parse(
        (
          await request(`${urls[0]}/admin/members`, {
            ca,
            headers: { authorization: `Bearer ${TOKENS.admin}` },
          })
        ).body,
      ) as { nodes: { nodeId: number; role: string; http: string | null }[] };
      expect(view.nodes.find((n) => n.nodeId === 5)).toMatchObject({
        role: 'follower',
        http: n5.httpUrl,
      });
      expect(n5.httpUrl).toMatch(/^https:/);
      // Node 5 serves every acknowledged write (over its own HTTPS, with a read token).
      const missing = await waitFor(
        'node 5 has every acknowledged write',
        async () => {
          const left: string[] = [];
          for (const key of acked) {
            const r = await request(`${n5.httpUrl}/kv/${key}`, {
              ca,
              headers: { authorization: `Bearer ${TOKENS.read}` },
            });
            if (r.status !== 200 || r.body !== `v-${key}`) left.push(key);
          }
          return left.length === 0 ? left : undefined;
        },
        90_000,
      );
      expect(missing).toEqual([]);
      expect(n5.running).toBe(true);
      // Restarted with a read token, node 5 does not fall back to its data directory's
      // membership (that is for a member that does not answer): the refusal stops it.
      expect((await n5.kill('SIGTERM')).code).toBe(0);
      const again = await runCli([
        ...joinArgs(5, '--join-ca', certs.pem('ca'), ...joinTls),
        ...['--join-token-file', readTokenFile],
      ]);
      expect(again.code, again.stderr).toBe(1);
      expect(again.stderr).toMatch(/403 E_FORBIDDEN: .*admin token/);
    } finally {
      fs.rmSync(joinRoot, { recursive: true, force: true });
    }
  }, 240_000);
});

describe('--join client flags', () => {
  it.each([
    [
      ['--cluster', '1=127.0.0.1:7101', '--join-token', 'x'.repeat(20)],
      /--join-token needs --join/,
    ],
    [['--cluster', '1=127.0.0.1:7101', '--join-ca', 'ca.pem'], /--join-ca needs --join/],
    [
      ['--join-token', 'a'.repeat(20), '--join-token-file', 'f'],
      /--join-token or --join-token-file, not both/,
    ],
    [['--join-cert', 'c.pem'], /--join-cert and --join-key go together/],
    [
      ['--join-token-file', '/nonexistent/join.token'],
      /--join-token-file \/nonexistent\/join.token: ENOENT/,
    ],
    [['--join-ca', '/nonexistent/ca.pem'], /--join-ca \/nonexistent\/ca.pem: ENOENT/],
  ])('%j: one line before anything starts', async (flags, message) => {
    const join = flags.includes('--cluster')
      ? []
      : ['--join', '127.0.0.1:1', '--listen', '127.0.0.1:0'];
    const r = await runCli([
      'node',
      '--id',
      '4',
      '--http',
      '127.0.0.1:0',
      '--data',
      'unused',
      ...join,
      ...flags,
    ]);
    expect(r.code, r.stderr).not.toBe(0);
    expect([1, 2]).toContain(r.code);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
