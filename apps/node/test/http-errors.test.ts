// Client input never gets a 500: a corpus of bad requests, sent as raw bytes to a one-node
// cluster in this process. Each gets its 4xx with the JSON error
// body of design.md §6, and the node goes on serving.
import * as net from 'node:net';
import * as path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { settle } from '../src/http/errors';
import { groupOfKey } from '../src/keys';
import { KvServer } from '../src/server';
import { PaxosError, type PaxosErrorCode } from '../src/stack';
import type { NodeStatus } from '../src/status';
import { freePorts, tempDir, waitFor } from './helpers';

interface RawResponse {
  status: number;
  headers: string;
  body: string;
}

let server: KvServer;
let httpPort = 0;

/** Sends raw bytes, reads until the server closes (or `endAfterMs` passes), parses the first response. */
function raw(request: string | Buffer, endAfterMs = 5000): Promise<RawResponse | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(httpPort, '127.0.0.1', () => socket.write(request));
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', (e: NodeJS.ErrnoException) =>
      e.code === 'ECONNRESET' ? undefined : reject(e),
    );
    const timer = setTimeout(() => socket.destroy(), endAfterMs);
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      if (text.length === 0) return resolve(undefined);
      const m = /^HTTP\/1\.1 (\d{3})[^\r]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(text);
      if (!m) return reject(new Error(`not an HTTP response: ${text.slice(0, 200)}`));
      let body = m[3]!;
      if (/transfer-encoding: chunked/i.test(m[2]!))
        body = body.replace(/^[0-9a-f]+\r\n|\r\n[0-9a-f]+\r\n|\r\n0\r\n\r\n$/gi, '');
      resolve({ status: Number(m[1]), headers: m[2]!, body });
    });
  });
}

function req(
  method: string,
  target: string,
  opts: { body?: string | Buffer; headers?: string[] } = {},
): Buffer {
  const body = opts.body === undefined ? Buffer.alloc(0) : Buffer.from(opts.body);
  const headers = [
    `${method} ${target} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Connection: close',
    ...(opts.headers ?? []),
  ];
  if (
    opts.body !== undefined &&
    !(opts.headers ?? []).some((h) => /^(content-length|transfer-encoding):/i.test(h))
  )
    headers.push(`Content-Length: ${body.length}`);
  return Buffer.concat([Buffer.from(headers.join('\r\n') + '\r\n\r\n', 'latin1'), body]);
}

beforeAll(async () => {
  const [paxosPort, port] = await freePorts(2);
  httpPort = port!;
  server = new KvServer(
    {
      nodeId: 1,
      cluster: new Map([[1, { host: '127.0.0.1', port: paxosPort! }]]),
      listen: { host: '127.0.0.1', port: paxosPort! },
      http: { host: '127.0.0.1', port: httpPort },
      dataDir: path.join(tempDir('http'), 'node-1'),
      groups: 2,
      httpPeers: new Map(),
    },
    pino({ level: 'silent' }),
    (error) => {
      throw error;
    },
  );
  await server.start();
});

afterAll(async () => {
  await server?.stop();
});

const longKey = 'k'.repeat(10 * 1024);
const CORPUS: [string, Buffer, number, string][] = [
  ['empty key (PUT)', req('PUT', '/kv/', { body: 'v' }), 400, 'E_BAD_KEY'],
  ['PUT on the listing (no key)', req('PUT', '/kv', { body: 'v' }), 405, 'E_METHOD_NOT_ALLOWED'],
  ['listing: limit=0', req('GET', '/kv?limit=0'), 400, 'E_BAD_QUERY'],
  ['listing: limit=1001', req('GET', '/kv?limit=1001'), 400, 'E_BAD_QUERY'],
  ['listing: limit=abc', req('GET', '/kv?limit=abc'), 400, 'E_BAD_QUERY'],
  ['listing: limit=1.5', req('GET', '/kv?limit=1.5'), 400, 'E_BAD_QUERY'],
  ['listing: a control character in the prefix', req('GET', '/kv?prefix=a%01'), 400, 'E_BAD_QUERY'],
  ['listing: a 2 KiB prefix', req('GET', `/kv?prefix=${'p'.repeat(2048)}`), 400, 'E_BAD_QUERY'],
  ['listing: after twice', req('GET', '/kv?after=a&after=b'), 400, 'E_BAD_QUERY'],
  ['listing: consistent=maybe', req('GET', '/kv?consistent=maybe'), 400, 'E_BAD_QUERY'],
  ['listing: unknown parameter', req('GET', '/kv?key=a'), 400, 'E_BAD_QUERY'],
  [
    'Idempotency-Key of 129 bytes',
    req('PUT', '/kv/a', { headers: [`Idempotency-Key: ${'i'.repeat(129)}`], body: 'v' }),
    400,
    'E_BAD_HEADER',
  ],
  [
    'If-Match not a quoted version',
    req('PUT', '/kv/a', { headers: ['If-Match: 12'], body: 'v' }),
    400,
    'E_BAD_HEADER',
  ],
  [
    'If-Match with a list of versions',
    req('DELETE', '/kv/a', { headers: ['If-Match: "1", "2"'] }),
    400,
    'E_BAD_HEADER',
  ],
  [
    'If-None-Match with a version',
    req('PUT', '/kv/a', { headers: ['If-None-Match: "3"'], body: 'v' }),
    400,
    'E_BAD_HEADER',
  ],
  [
    'If-Match and If-None-Match',
    req('PUT', '/kv/a', { headers: ['If-Match: *', 'If-None-Match: *'], body: 'v' }),
    400,
    'E_BAD_HEADER',
  ],
  ['10 KiB key', req('PUT', `/kv/${longKey}`, { body: 'v' }), 400, 'E_BAD_KEY'],
  ['bad percent-encoding', req('GET', '/kv/%zz'), 400, 'E_BAD_REQUEST'],
  ['truncated percent-encoding', req('GET', '/kv/a%2'), 400, 'E_BAD_REQUEST'],
  ['percent-encoded invalid UTF-8', req('GET', '/kv/%C3%28'), 400, 'E_BAD_REQUEST'],
  ['percent-encoded NUL in the key', req('PUT', '/kv/a%00b', { body: 'v' }), 400, 'E_BAD_KEY'],
  ['POST on a key', req('POST', '/kv/a', { body: 'v' }), 405, 'E_METHOD_NOT_ALLOWED'],
  ['PATCH on a key', req('PATCH', '/kv/a', { body: 'v' }), 405, 'E_METHOD_NOT_ALLOWED'],
  ['DELETE /status', req('DELETE', '/status'), 405, 'E_METHOD_NOT_ALLOWED'],
  ['GET /admin/checkpoint', req('GET', '/admin/checkpoint'), 405, 'E_METHOD_NOT_ALLOWED'],
  ['unknown route', req('GET', '/nope'), 404, 'E_NOT_FOUND'],
  ['consistent=maybe', req('GET', '/kv/a?consistent=maybe'), 400, 'E_BAD_QUERY'],
  ['consistent twice', req('GET', '/kv/a?consistent=true&consistent=false'), 400, 'E_BAD_QUERY'],
  ['unknown query parameter', req('GET', '/kv/a?foo=1'), 400, 'E_BAD_QUERY'],
  ['query on PUT', req('PUT', '/kv/a?x=1', { body: 'v' }), 400, 'E_BAD_QUERY'],
  ['bad query on /status', req('GET', '/status?x'), 400, 'E_BAD_QUERY'],
  ['compact keep=-1', req('POST', '/admin/compact?keep=-1'), 400, 'E_BAD_QUERY'],
  ['compact keep=abc', req('POST', '/admin/compact?keep=abc'), 400, 'E_BAD_QUERY'],
  ['compact keep=1e99', req('POST', '/admin/compact?keep=1e99'), 400, 'E_BAD_QUERY'],
  [
    'body of 1 MiB + 1',
    req('PUT', '/kv/big', { body: Buffer.alloc(1024 * 1024 + 1, 1) }),
    413,
    'E_TOO_LARGE',
  ],
  [
    'chunked body over 1 MiB',
    req('PUT', '/kv/big', {
      headers: ['Transfer-Encoding: chunked'],
      body: Buffer.concat([
        Buffer.from('110000\r\n'),
        Buffer.alloc(0x110000, 2),
        Buffer.from('\r\n0\r\n\r\n'),
      ]),
    }),
    413,
    'E_TOO_LARGE',
  ],
  [
    'content-length not a number',
    req('PUT', '/kv/a', { headers: ['Content-Length: abc'], body: 'v' }),
    400,
    'E_BAD_REQUEST',
  ],
  [
    'two content-lengths',
    req('PUT', '/kv/a', { headers: ['Content-Length: 1', 'Content-Length: 2'], body: 'v' }),
    400,
    'E_BAD_REQUEST',
  ],
  ['malformed request line', Buffer.from('GARBAGE\r\n\r\n'), 400, 'E_BAD_REQUEST'],
  ['binary junk', Buffer.from([0, 1, 2, 255, 254, 13, 10, 13, 10]), 400, 'E_BAD_REQUEST'],
  [
    '100 KiB of headers',
    req('GET', '/status', { headers: [`X-Big: ${'a'.repeat(100 * 1024)}`] }),
    431,
    'E_TOO_LARGE',
  ],
  ['GET a missing key', req('GET', '/kv/missing'), 404, 'E_NOT_FOUND'],
];

describe('bad requests', () => {
  it.each(CORPUS)('%s', async (_name, request, status, code) => {
    const res = await raw(request);
    expect(res).toBeDefined();
    expect(res!.status).toBe(status);
    expect(JSON.parse(res!.body)).toMatchObject({ error: { code, message: expect.any(String) } });
  });

  it('a truncated body gets no answer and leaves the node serving', async () => {
    const truncated = Buffer.concat([
      req('PUT', '/kv/t', { headers: ['Content-Length: 1000'] }),
      Buffer.from('only-some'),
    ]);
    await raw(truncated, 300);
    const ok = await raw(req('PUT', '/kv/t', { body: 'whole' }));
    expect(ok?.status).toBe(200);
    const back = await raw(req('GET', '/kv/t'));
    expect(back?.body).toBe('whole');
  });

  it('no request above raised an internal error, and good requests still work', async () => {
    expect(server.taskErrors).toEqual([]);
    const put = await raw(
      req('PUT', `/kv/${encodeURIComponent('ключ/with slash')}`, { body: 'v1' }),
    );
    expect(put?.status).toBe(200);
    expect(JSON.parse(put!.body)).toEqual({
      instanceId: expect.any(Number),
      version: expect.any(String),
      replayed: false,
    });
    const get = await raw(
      req('GET', `/kv/${encodeURIComponent('ключ/with slash')}?consistent=true`),
    );
    expect(get?.status).toBe(200);
    expect(get?.body).toBe('v1');
    expect(get?.headers).toMatch(/x-tspaxos-instance-id: \d+/);
    const del = await raw(req('DELETE', `/kv/${encodeURIComponent('ключ/with slash')}`));
    expect(del?.status).toBe(200);
    const metrics = await raw(req('GET', '/metrics'));
    expect(metrics?.body).toMatch(/tspaxos_http_requests_total\{[^}]*status="400"[^}]*\} \d+/);
    expect(metrics?.body).not.toMatch(/status="500"/);
    expect(metrics?.body).toMatch(
      /tspaxos_commit_latency_seconds_count\{[^}]*op="put"[^}]*\} [1-9]/,
    );
    for (const name of [
      'tspaxos_proposals_total',
      'tspaxos_commits_total',
      'tspaxos_batch_waits_total',
      'tspaxos_batch_waits_filled_total',
      'tspaxos_learned_instances_total',
      'tspaxos_instance_id',
      'tspaxos_network_frames_dropped_total',
      'tspaxos_storage_errors_total',
      'tspaxos_task_errors_total',
      'tspaxos_catch_up_remaining_instances',
      'tspaxos_sender_streams',
      'tspaxos_sender_inflight_bytes',
      'tspaxos_catch_up_bytes_per_second',
      'tspaxos_catch_up_learned_bytes',
    ])
      expect(metrics?.body, name).toContain(`# TYPE ${name} `);
    expect(metrics?.body).toMatch(/tspaxos_commits_total\{[^}]*group="[01]"[^}]*\} [1-9]/);

    // /status: the node's fields, and those of design.md §6 for each group under `groups` (2 here).
    const status = JSON.parse((await raw(req('GET', '/status')))!.body) as NodeStatus;
    for (const field of ['nodeId', 'httpUrl', 'members', 'network', 'taskErrors', 'groups'])
      expect(status, field).toHaveProperty(field);
    expect(status.groups.map((g) => g.group)).toEqual([0, 1]);
    for (const group of status.groups) {
      for (const field of [
        'nodeId',
        'instanceId',
        'minChosenInstanceId',
        'checkpointInstanceId',
        'lastChecksum',
        'isFollower',
        'learner',
        'sender',
        'checkpoint',
        'members',
        'master',
        'kv',
      ])
        expect(group, field).toHaveProperty(field);
      expect(group.sender).toHaveProperty('peers');
    }
    // No group's fields on top: one shape whatever --groups is.
    expect(status).not.toHaveProperty('instanceId');

    const cp = await raw(req('POST', '/admin/checkpoint'));
    expect(cp?.status).toBe(200);
    expect(JSON.parse(cp!.body)).toMatchObject({
      checkpointInstanceId: expect.any(Number),
      groups: expect.any(Array),
    });
    // Compaction of every group below its checkpoint (keep 0: all but the highest record).
    const compacted = await raw(req('POST', '/admin/compact?keep=0'));
    expect(compacted?.status).toBe(200);
    const body = JSON.parse(compacted!.body) as {
      minChosenInstanceId: number;
      groups: { group: number; minChosenInstanceId: number }[];
    };
    expect(body.groups.map((g) => g.group)).toEqual([0, 1]);
    expect(body.minChosenInstanceId).toBe(body.groups[0]!.minChosenInstanceId);
    expect(body.groups.some((g) => g.minChosenInstanceId > 0)).toBe(true);

    // Lease reads: this one-node cluster elects itself master of both groups and serves them.
    const key0 = keyOfGroup(0);
    await waitFor(
      'master of both groups',
      () => server.paxos.isMaster(0) && server.paxos.isMaster(1),
    );
    const lease = await raw(req('GET', `/kv/${key0}?consistent=lease`));
    expect([200, 404]).toContain(lease?.status);
    const withMaster = JSON.parse((await raw(req('GET', '/status')))!.body) as NodeStatus;
    const master0 = withMaster.groups[0]!.master;
    expect(master0).toMatchObject({ nodeId: 1, self: true, http: server.httpUrl });
    expect(master0!.remainingMs).toBeGreaterThan(0);
    // Once it gives the lease up (and elects nobody for 2 leases): no master to give a read
    // index, 503 (try again).
    expect(server.paxos.dropMaster(0)).toBe(true);
    const notMaster = await raw(req('GET', `/kv/${key0}?consistent=lease`));
    expect(notMaster?.status).toBe(503);
    expect(JSON.parse(notMaster!.body)).toMatchObject({
      error: { code: 'E_UNAVAILABLE', message: expect.stringContaining('E_NOT_MASTER') },
    });
  });
});

/** A key of group g (of 2): groups are chosen by hash. */
function keyOfGroup(g: number): string {
  let key = 'a';
  for (let i = 0; groupOfKey(key, 2) !== g; i++) key = `a${i}`;
  return key;
}

describe('a bug inside the server', () => {
  it('planted: a throwing state machine read is a 500 E_INTERNAL, counted as a task error', async () => {
    const kv = server.kvs[0]!;
    const original = kv.read.bind(kv);
    kv.read = () => {
      throw new Error('planted read failure');
    };
    try {
      // A key of group 0 (groups are chosen by hash; find one).
      let key = 'a';
      for (let i = 0; groupOfKey(key, 2) !== 0; i++) key = `a${i}`;
      const res = await raw(req('GET', `/kv/${key}`));
      expect(res?.status).toBe(500);
      expect(JSON.parse(res!.body)).toMatchObject({
        error: { code: 'E_INTERNAL', message: 'planted read failure' },
      });
      expect(server.taskErrors).toEqual([{ code: 'E_INTERNAL', message: 'planted read failure' }]);
    } finally {
      kv.read = original;
      server.taskErrors.splice(0);
    }
  });
});

type Answer = [status: number, code: string];
const INTERNAL: Answer = [500, 'E_INTERNAL'];
const UNAVAILABLE: Answer = [503, 'E_UNAVAILABLE'];
const UNKNOWN: Answer = [504, 'E_OUTCOME_UNKNOWN'];
/**
 * Every paxos code (a Record: a new code is a type error here until it has its answers): a write
 * refused before it was queued, a write refused once queued (it may have been sent), and a
 * barrier read refused once queued (a read applies nothing, so its outcome is never unknown).
 */
const REFUSALS: Record<PaxosErrorCode, { refused: Answer; queued: Answer; barrier: Answer }> = {
  E_TIMEOUT: {
    refused: [504, 'E_TIMEOUT'],
    queued: [504, 'E_TIMEOUT'],
    barrier: [504, 'E_TIMEOUT'],
  },
  E_STOPPED: { refused: [503, 'E_STOPPING'], queued: UNKNOWN, barrier: [503, 'E_STOPPING'] },
  E_CHECKSUM_MISMATCH: { refused: UNAVAILABLE, queued: UNKNOWN, barrier: UNAVAILABLE },
  E_STORAGE: { refused: UNAVAILABLE, queued: UNKNOWN, barrier: UNAVAILABLE },
  E_NEEDS_CHECKPOINT: { refused: UNAVAILABLE, queued: UNKNOWN, barrier: UNAVAILABLE },
  E_CHECKPOINT_INSTALLED: { refused: UNAVAILABLE, queued: UNKNOWN, barrier: UNAVAILABLE },
  E_CHECKPOINT_INSTALL_FAILED: { refused: UNAVAILABLE, queued: UNKNOWN, barrier: UNAVAILABLE },
  E_QUEUE_FULL: { refused: UNAVAILABLE, queued: UNAVAILABLE, barrier: UNAVAILABLE },
  E_NOT_MEMBER: { refused: UNAVAILABLE, queued: UNAVAILABLE, barrier: UNAVAILABLE },
  E_FOLLOWER: {
    refused: [409, 'E_FOLLOWER'],
    queued: [409, 'E_FOLLOWER'],
    barrier: [409, 'E_FOLLOWER'],
  },
  E_VALUE_TOO_LARGE: {
    refused: [413, 'E_TOO_LARGE'],
    queued: [413, 'E_TOO_LARGE'],
    barrier: [413, 'E_TOO_LARGE'],
  },
  E_EXECUTE_FAILED: {
    refused: [500, 'E_EXECUTE_FAILED'],
    queued: [500, 'E_EXECUTE_FAILED'],
    barrier: [500, 'E_EXECUTE_FAILED'],
  },
  E_BAD_GROUP: { refused: INTERNAL, queued: INTERNAL, barrier: INTERNAL },
  E_BAD_ARGUMENT: { refused: INTERNAL, queued: INTERNAL, barrier: INTERNAL },
  E_INVARIANT: { refused: INTERNAL, queued: INTERNAL, barrier: INTERNAL },
  E_UNKNOWN_STATE_MACHINE: { refused: INTERNAL, queued: INTERNAL, barrier: INTERNAL },
  E_MEMBERSHIP_CONFLICT: { refused: INTERNAL, queued: INTERNAL, barrier: INTERNAL },
  E_ABORTED: { refused: INTERNAL, queued: INTERNAL, barrier: INTERNAL },
  // Forwarding: refused unproposed by a former master, or not sent: never applied.
  E_NOT_MASTER: { refused: UNAVAILABLE, queued: UNAVAILABLE, barrier: UNAVAILABLE },
  E_MASTER_UNREACHABLE: { refused: UNAVAILABLE, queued: UNAVAILABLE, barrier: UNAVAILABLE },
  E_NO_QUORUM: {
    refused: [503, 'E_NO_QUORUM'],
    queued: [503, 'E_NO_QUORUM'],
    barrier: [503, 'E_NO_QUORUM'],
  },
  E_OUTCOME_UNKNOWN: { refused: UNKNOWN, queued: UNKNOWN, barrier: UNAVAILABLE },
};

describe('paxos refusals', () => {
  it.each(Object.entries(REFUSALS))(
    '%s: 503 only when nothing was sent, with Retry-After; a task error only for a bug',
    async (code, answers) => {
      const node = server.paxos;
      const original = node.batchPropose.bind(node);
      const originalRead = node.quorumReadIndex.bind(node);
      const cases = [
        { when: 'refused', request: req('PUT', '/kv/r', { body: 'v' }), answer: answers.refused },
        { when: 'queued', request: req('PUT', '/kv/r', { body: 'v' }), answer: answers.queued },
        {
          when: 'queued',
          request: req('GET', '/kv/r?consistent=barrier'),
          answer: answers.barrier,
        },
        // A quorum read proposes nothing: answered as a barrier read is.
        { when: 'read', request: req('GET', '/kv/r?consistent=true'), answer: answers.barrier },
      ];
      let bugs = 0;
      try {
        for (const c of cases) {
          const error = new PaxosError(code as PaxosErrorCode, `planted ${code}`);
          node.batchPropose = () =>
            c.when === 'refused'
              ? Promise.reject(error)
              : new Promise((_resolve, reject) => setTimeout(() => reject(error), 5));
          node.quorumReadIndex = () =>
            new Promise((_resolve, reject) => setTimeout(() => reject(error), 5));
          const res = await raw(c.request);
          const what = `${c.when} ${c.request.toString('latin1').split(' ')[0]}`;
          expect(res?.status, what).toBe(c.answer[0]);
          expect(JSON.parse(res!.body), what).toEqual({
            error: { code: c.answer[1], message: expect.any(String) },
          });
          const retryAfter = /retry-after: (\d+)/i.exec(res!.headers)?.[1];
          if (c.answer[0] === 503) expect(Number(retryAfter), what).toBeGreaterThan(0);
          else expect(retryAfter, what).toBeUndefined();
          if (c.answer === INTERNAL) bugs++;
        }
        expect(server.taskErrors).toHaveLength(bugs);
      } finally {
        node.batchPropose = original;
        node.quorumReadIndex = originalRead;
        server.taskErrors.splice(0);
      }
    },
  );

  it('the real node refuses what it does not queue at once (settle tells it from a later refusal)', async () => {
    const badGroup = await settle(server.paxos.batchPropose(99, new Uint8Array(1)));
    expect(badGroup).toMatchObject({ ok: false, queued: false, error: { code: 'E_BAD_GROUP' } });
    const tooLarge = await settle(
      server.paxos.batchPropose(0, new Uint8Array(server.paxos.options.maxValueBytes + 1), {
        smId: 10,
      }),
    );
    expect(tooLarge).toMatchObject({
      ok: false,
      queued: false,
      error: { code: 'E_VALUE_TOO_LARGE' },
    });
    const later = await settle(
      new Promise((_resolve, reject) => setImmediate(() => reject(new Error('later')))),
    );
    expect(later).toMatchObject({ ok: false, queued: true });
    const chosen = await settle(server.paxos.batchPropose(0, new Uint8Array(0)));
    expect(chosen).toMatchObject({ ok: true, value: { instanceId: expect.any(Number) } });
  });
});
