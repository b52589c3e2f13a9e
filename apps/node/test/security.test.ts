// TLS and tokens with real processes (issue 19). Nodes 1 and 2 link over mutual TLS with
// certificates of the test CA, serve HTTPS and check bearer tokens; node 3 is a plain voter and
// node 4 a follower whose certificate another CA signed: both are refused by the TLS peers and
// learn nothing, while nodes 1 and 2 choose writes on their own. Over HTTPS a client must trust
// the CA (another CA fails), node 2 also asks for a client certificate; a missing token is 401,
// a read token cannot write (403), only admin reaches /admin/*; CORS answers only listed origins.
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeStatus } from '../src/status';
import { type Certs, makeCerts } from './certs';
import { freePorts, NodeProcess, tempDir, waitFor } from './helpers';

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

  beforeAll(async () => {
    certs = makeCerts(['n1', 'n2', 'client'], ['rogue']);
    ca = certs.read('ca.pem');
    dataRoot = tempDir('security');
    const authFile = path.join(dataRoot, 'tokens');
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
    const [s1, s2] = await waitFor('both TLS nodes refused a handshake', async () => {
      const all = await Promise.all([status(0), status(1)]);
      return all.every((s) => (s.network.drops['tls-rejected'] ?? 0) >= 1) ? all : undefined;
    });
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
});
