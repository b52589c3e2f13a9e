// The client commands of the `tspaxos` bin against real node processes (kv, status, members,
// backup, restore), against small in-test HTTP servers for what a cluster cannot show (the same
// Idempotency-Key on a write's retries, the listing's pages), and `npx tspaxos` at the root.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI,
  type Cluster,
  freePorts,
  NodeProcess,
  singleNode,
  startCluster,
  tempDir,
  waitConverged,
} from './helpers';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI without blocking this process (the in-test servers answer meanwhile). */
function tspaxos(...args: string[]): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** An error is one line on stderr, nothing on stdout. */
function expectOneLineError(r: Ran, code: number, pattern: RegExp): void {
  expect(r.code, r.stderr).toBe(code);
  expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

/** An HTTP server made of one handler, on a port of its own; closed by the caller. */
async function serve(
  handler: http.RequestListener,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('npx tspaxos at the repository root', () => {
  it('is linked by npm install and prints the help of every command', () => {
    const r = spawnSync('npx', ['--no-install', 'tspaxos', '--help'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Usage: tspaxos/);
    for (const command of ['node', 'cluster', 'kv', 'status', 'members', 'backup', 'restore'])
      expect(r.stdout).toContain(command);
  });
});

describe('client commands without a cluster', () => {
  it('a write sends one Idempotency-Key, the same on its retry at the next endpoint', async () => {
    const seen: (string | undefined)[] = [];
    // The first endpoint takes the request and drops the connection (as a node that died
    // mid-request); the second answers.
    const dropping = await serve((req) => {
      seen.push(req.headers['idempotency-key'] as string | undefined);
      req.socket.destroy();
    });
    const answering = await serve((req, res) => {
      seen.push(req.headers['idempotency-key'] as string | undefined);
      res.setHeader('x-tspaxos-instance-id', '7');
      res.end('{"instanceId":7}');
    });
    try {
      const endpoints = `${dropping.url},${answering.url}`;
      const r1 = await tspaxos('kv', 'put', 'k', 'v', '--endpoints', endpoints);
      expect(r1.code, r1.stderr).toBe(0);
      expect(r1.stdout).toBe('OK (instance 7)\n');
      const r2 = await tspaxos('kv', 'del', 'k', '--endpoints', endpoints);
      expect(r2.code, r2.stderr).toBe(0);
      expect(seen).toHaveLength(4);
      expect(seen[0]).toMatch(/^[0-9a-f-]{36}$/);
      expect(seen[1]).toBe(seen[0]);
      expect(seen[3]).toBe(seen[2]);
      expect(seen[2]).not.toBe(seen[0]);
    } finally {
      await dropping.close();
      await answering.close();
    }
  });

  it('kv list follows the pages of GET /kv?prefix= and sends the token', async () => {
    const requests: { url: string; auth: string | undefined }[] = [];
    const lister = await serve((req, res) => {
      requests.push({ url: req.url!, auth: req.headers.authorization });
      const after = new URL(req.url!, 'http://x').searchParams.get('after');
      const item = (key: string) => ({
        key,
        value: Buffer.from(`v-${key}`).toString('base64'),
        version: '3',
      });
      const body =
        after === null
          ? { items: [item('a/1'), item('a/2')], next: 'a/2' }
          : { items: [item('a/3')], next: null };
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(body));
    });
    try {
      const r = await tspaxos('kv', 'list', 'a/', '--endpoints', lister.url, '--token', 'sesame');
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe('a/1\tv-a/1\na/2\tv-a/2\na/3\tv-a/3\n');
      expect(requests.map((q) => q.url)).toEqual([
        '/kv?prefix=a%2F&limit=1000',
        '/kv?prefix=a%2F&limit=1000&after=a%2F2',
      ]);
      expect(requests.every((q) => q.auth === 'Bearer sesame')).toBe(true);
      const limited = await tspaxos(
        'kv',
        'list',
        'a/',
        '--endpoints',
        lister.url,
        '--limit',
        '2',
        '--keys-only',
      );
      expect(limited.stdout).toBe('a/1\na/2\n');
    } finally {
      await lister.close();
    }
  });

  it('https: the CA of scripts/make-test-ca.sh verifies the server, the client certificate is sent', async () => {
    const tls = tempDir('client-tls');
    try {
      const made = spawnSync(path.join(ROOT, 'scripts', 'make-test-ca.sh'), [tls, '127.0.0.1'], {
        encoding: 'utf8',
      });
      expect(made.status, made.stderr).toBe(0);
      const read = (f: string) => fs.readFileSync(path.join(tls, f));
      const seenClients: string[] = [];
      const server = https.createServer(
        {
          cert: read('127.0.0.1.pem'),
          key: read('127.0.0.1-key.pem'),
          ca: read('ca.pem'),
          requestCert: true,
          rejectUnauthorized: true,
        },
        (req, res) => {
          const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
          seenClients.push(String(peer.subject.CN));
          res.end('secret');
        },
      );
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      const url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
      try {
        const files = [
          '--cacert',
          path.join(tls, 'ca.pem'),
          '--cert',
          path.join(tls, 'client.pem'),
          '--key',
          path.join(tls, 'client-key.pem'),
        ];
        const ok = await tspaxos('kv', 'get', 'k', '--endpoints', url, ...files);
        expect(ok.code, ok.stderr).toBe(0);
        expect(ok.stdout).toBe('secret');
        expect(seenClients).toEqual(['client']);
        // Without the CA the server's certificate is not trusted: one line, exit 1.
        expectOneLineError(await tspaxos('kv', 'get', 'k', '--endpoints', url), 1, /certificate/);
        expect(seenClients).toHaveLength(1);
      } finally {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      }
    } finally {
      fs.rmSync(tls, { recursive: true, force: true });
    }
  });

  it('no endpoint answering, a bad flag and a missing argument: one line each, exit 1 or 2', async () => {
    const [dead] = await freePorts(1);
    expectOneLineError(
      await tspaxos('kv', 'get', 'k', '--endpoints', `127.0.0.1:${dead}`),
      1,
      /no endpoint answered .*ECONNREFUSED/,
    );
    expectOneLineError(await tspaxos('kv', 'get'), 2, /missing required argument 'key'/);
    expectOneLineError(await tspaxos('kv', 'get', 'k', '--consistent', 'maybe'), 2, /--consistent/);
    expectOneLineError(
      await tspaxos(
        'kv',
        'get',
        'k',
        '--cacert',
        '/nonexistent/ca.pem',
        '--endpoints',
        'https://127.0.0.1:1',
      ),
      1,
      /--cacert \/nonexistent\/ca.pem: ENOENT/,
    );
  });
});

describe('client commands against a cluster', () => {
  let cluster: Cluster | undefined;
  const started: NodeProcess[] = [];
  const dirs: string[] = [];
  let endpoints = '';
  beforeAll(async () => {
    cluster = await startCluster({ voters: 3, groups: 2, name: 'client' });
    endpoints = cluster.nodes.map((n) => n.httpUrl).join(',');
  }, 300_000);
  afterAll(async () => {
    await Promise.all(started.map((n) => n.kill('SIGTERM')));
    await cluster?.stop();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it(
    'kv put, get, del; a missing key is "not found" with exit 1',
    { timeout: 120_000 },
    async () => {
      const put = await tspaxos('kv', 'put', 'greeting', 'hello', '--endpoints', endpoints);
      expect(put.code, put.stderr).toBe(0);
      expect(put.stdout).toMatch(/^OK \(instance \d+\)\n$/);
      const get = await tspaxos(
        'kv',
        'get',
        'greeting',
        '--consistent',
        'true',
        '--endpoints',
        endpoints,
      );
      expect(get.code, get.stderr).toBe(0);
      expect(get.stdout).toBe('hello');
      // The first endpoint does not answer: the next one does.
      const [dead] = await freePorts(1);
      const failover = await tspaxos(
        'kv',
        'get',
        'greeting',
        '--consistent',
        'true',
        '--endpoints',
        `127.0.0.1:${dead},${cluster!.nodes[1]!.httpUrl}`,
      );
      expect(failover.code, failover.stderr).toBe(0);
      expect(failover.stdout).toBe('hello');
      const del = await tspaxos('kv', 'del', 'greeting', '--endpoints', endpoints);
      expect(del.code, del.stderr).toBe(0);
      expectOneLineError(
        await tspaxos('kv', 'get', 'greeting', '--consistent', 'true', '--endpoints', endpoints),
        1,
        /^tspaxos: error: not found: key 'greeting'$/m,
      );
    },
  );

  it(
    'kv list: the keys under a prefix, in key order, with their values',
    { timeout: 120_000 },
    async () => {
      for (const k of ['list/b', 'list/a', 'other', 'list/c/d'])
        expect((await tspaxos('kv', 'put', k, `v-${k}`, '--endpoints', endpoints)).code).toBe(0);
      // Keys of both groups (hashed apart), merged in key order; `other` is not under the prefix.
      const r = await tspaxos('kv', 'list', 'list/', '--endpoints', cluster!.nodes[0]!.httpUrl);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe('list/a\tv-list/a\nlist/b\tv-list/b\nlist/c/d\tv-list/c/d\n');
      const keys = await tspaxos(
        'kv',
        'list',
        'list/',
        '--keys-only',
        '--limit',
        '2',
        '--endpoints',
        endpoints,
      );
      expect(keys.stdout).toBe('list/a\nlist/b\n');
    },
  );

  it(
    'status: one readable block per node; --json; an endpoint down is named, exit 1',
    { timeout: 120_000 },
    async () => {
      const r = await tspaxos('status', '--endpoints', endpoints);
      expect(r.code, r.stderr).toBe(0);
      for (const n of [1, 2, 3])
        expect(r.stdout).toMatch(
          new RegExp(`^node ${n}  http://127\\.0\\.0\\.1:\\d+  paxos `, 'm'),
        );
      expect(
        r.stdout.match(/^ {2}group [01]: voter, instance \d+, applied -?\d+, checkpoint -?\d+/gm),
      ).toHaveLength(6);
      expect(r.stdout).toContain('members 1,2,3');
      expect(r.stdout).not.toContain('{');
      const json = await tspaxos('status', '--json', '--endpoints', endpoints);
      const parsed = json.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l) as { nodeId: number });
      expect(parsed.map((s) => s.nodeId)).toEqual([1, 2, 3]);
      const [dead] = await freePorts(1);
      const partial = await tspaxos(
        'status',
        '--endpoints',
        `${cluster!.nodes[0]!.httpUrl},127.0.0.1:${dead}`,
      );
      expect(partial.code).toBe(1);
      expect(partial.stdout).toMatch(/^node 1 /m);
      expect(partial.stdout).toMatch(
        new RegExp(`127\\.0\\.0\\.1:${dead}  unreachable: .*ECONNREFUSED`),
      );
      expect(partial.stderr).toBe('tspaxos: error: 1 of 2 endpoints did not answer\n');
    },
  );

  it(
    'members list, add (a follower), promote and remove, through the log of every group',
    { timeout: 180_000 },
    async () => {
      const r = await tspaxos('members', 'list', '--endpoints', endpoints);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/nodeId=1\b[^\n]*voter/);
      expect(r.stdout).toMatch(/nodeId=3\b[^\n]*voter/);
      expect(r.stdout).not.toMatch(/nodeId=4\b/);
      /** POST answers: `OK <the membership view>`; group voters and roles from it. */
      const changed = async (...args: string[]) => {
        const c = await tspaxos('members', ...args, '--endpoints', endpoints);
        expect(c.code, c.stderr).toBe(0);
        expect(c.stdout).toMatch(/^OK \{/);
        return JSON.parse(c.stdout.slice(3)) as {
          nodes: { nodeId: number; role: string }[];
          groups: { voters: number[] }[];
          consistent: boolean;
        };
      };
      // Node 4 need not run: a follower's addition changes no majority, and with four voters
      // (majority 3) the three running ones still choose every value.
      const [peer, http] = await freePorts(2);
      const added = await changed(
        'add',
        '4',
        '--follower',
        '--peer',
        `127.0.0.1:${peer}`,
        '--http',
        `127.0.0.1:${http}`,
      );
      expect(added.nodes.find((n) => n.nodeId === 4)?.role).toBe('follower');
      expect(added.groups.map((g) => g.voters)).toEqual([
        [1, 2, 3],
        [1, 2, 3],
      ]);
      const listed = await tspaxos('members', 'list', '--endpoints', endpoints);
      expect(listed.stdout).toMatch(/nodeId=4\b[^\n]*follower/);
      // A voter cannot be promoted: the server's coded error, one line, exit 1.
      expectOneLineError(
        await tspaxos('members', 'promote', '1', '--endpoints', endpoints),
        1,
        /E_NOT_FOLLOWER|not a follower/,
      );
      const promoted = await changed('promote', '4');
      expect(promoted.nodes.find((n) => n.nodeId === 4)?.role).toBe('voter');
      expect(promoted.groups.map((g) => g.voters)).toEqual([
        [1, 2, 3, 4],
        [1, 2, 3, 4],
      ]);
      const removed = await changed('remove', '4');
      expect(removed.nodes.some((n) => n.nodeId === 4)).toBe(false);
      expect(removed.groups.map((g) => g.voters)).toEqual([
        [1, 2, 3],
        [1, 2, 3],
      ]);
      expect(removed.consistent).toBe(true);
      expectOneLineError(
        await tspaxos('members', 'remove', '99', '--endpoints', endpoints),
        1,
        /E_UNKNOWN_MEMBER|unknown member|not a member/,
      );
      // What the change did, seen from another node: node 3 reads the same voters in both groups.
      const seen = (await (await fetch(`${cluster!.nodes[2]!.httpUrl}/admin/members`)).json()) as {
        groups: { voters: number[] }[];
      };
      expect(seen.groups.map((g) => g.voters)).toEqual([
        [1, 2, 3],
        [1, 2, 3],
      ]);
      // The cluster still takes writes after the changes.
      expect(
        (await tspaxos('kv', 'put', 'after-members', 'x', '--endpoints', endpoints)).code,
      ).toBe(0);
    },
  );

  it(
    'backup, then restore into fresh directories: one node and a whole cluster start from it and read every key',
    { timeout: 300_000 },
    async () => {
      const keys = Array.from({ length: 40 }, (_, i) => `bk/${i}`);
      for (const k of keys) {
        const r = await fetch(`${cluster!.nodes[i(k) % 3]!.httpUrl}/kv/${encodeURIComponent(k)}`, {
          method: 'PUT',
          body: `value of ${k}`,
        });
        expect(r.ok).toBe(true);
      }
      await waitConverged(cluster!.nodes);
      const work = tempDir('client-backup');
      dirs.push(work);
      const file = path.join(work, 'cluster.backup');
      const backup = await tspaxos('backup', '--out', file, '--endpoints', endpoints);
      expect(backup.code, backup.stderr).toBe(0);
      expect(backup.stdout).toMatch(
        /^saved node 1's 2 group\(s\) at instances \d+,\d+ \(\d+ bytes\) to /,
      );

      // Damaged or cut: one line, exit 1, no directory written.
      const bytes = fs.readFileSync(file);
      const flipped = Buffer.from(bytes);
      flipped[bytes.length >> 1]! ^= 0xff;
      const damaged = path.join(work, 'damaged.backup');
      fs.writeFileSync(damaged, flipped);
      const cut = path.join(work, 'cut.backup');
      fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 100));
      for (const bad of [damaged, cut, path.join(work, 'missing.backup')]) {
        const target = path.join(work, `from-${path.basename(bad)}`);
        expectOneLineError(
          await tspaxos('restore', '--from', bad, '--data', target),
          1,
          /tspaxos: error: /,
        );
        expect(fs.existsSync(target)).toBe(false);
        expect(fs.readdirSync(work).filter((f) => f.includes('restoring'))).toEqual([]);
      }
      expectOneLineError(
        await tspaxos('restore', '--from', damaged, '--data', path.join(work, 'x')),
        1,
        /damaged or truncated/,
      );
      // A data directory in use is never overwritten.
      const inUse = path.join(cluster!.dataRoot, 'node-1');
      expectOneLineError(
        await tspaxos('restore', '--from', file, '--data', inUse),
        1,
        /is not empty/,
      );

      // One node of its own.
      const single = path.join(work, 'single');
      const restored = await tspaxos('restore', '--from', file, '--data', single);
      expect(restored.code, restored.stderr).toBe(0);
      expect(restored.stdout).toMatch(/restored 2 group\(s\) .* --groups 2/);
      const one = await singleNode(single, ['--groups', '2']);
      started.push(one);
      one.start();
      await one.ready();
      await expectEveryKey(one.httpUrl, keys);
      const write = await tspaxos('kv', 'put', 'bk/after', 'x', '--endpoints', one.httpUrl);
      expect(write.code, write.stderr).toBe(0);

      // A whole new cluster: each node from its own copy of the same backup.
      const ports = await freePorts(6);
      const clusterFlag = [1, 2, 3].map((id) => `${id}=127.0.0.1:${ports[id - 1]}`).join(',');
      const nodes = [1, 2, 3].map((id) => {
        const data = path.join(work, `cluster-${id}`);
        expect(
          spawnSync(process.execPath, [CLI, 'restore', '--from', file, '--data', data]).status,
        ).toBe(0);
        return new NodeProcess(
          id,
          [
            'node',
            '--id',
            String(id),
            '--cluster',
            clusterFlag,
            '--http',
            `127.0.0.1:${ports[2 + id]}`,
            '--data',
            data,
            '--groups',
            '2',
          ],
          `http://127.0.0.1:${ports[2 + id]}`,
        );
      });
      started.push(...nodes);
      for (const n of nodes) n.start();
      await Promise.all(nodes.map((n) => n.ready()));
      for (const n of nodes) await expectEveryKey(n.httpUrl, keys);
      const put = await tspaxos(
        'kv',
        'put',
        'bk/new',
        'y',
        '--endpoints',
        nodes.map((n) => n.httpUrl).join(','),
      );
      expect(put.code, put.stderr).toBe(0);
      await waitConverged(nodes);
      for (const n of nodes)
        expect(await (await fetch(`${n.httpUrl}/kv/bk%2Fnew`)).text()).toBe('y');
    },
  );
});

function i(key: string): number {
  return Number(key.split('/')[1]);
}

async function expectEveryKey(url: string, keys: string[]): Promise<void> {
  let read = 0;
  for (const k of keys) {
    const res = await fetch(`${url}/kv/${encodeURIComponent(k)}`);
    expect(res.status, k).toBe(200);
    expect(await res.text()).toBe(`value of ${k}`);
    read++;
  }
  expect(read).toBe(keys.length);
}
