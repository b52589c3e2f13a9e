// The node's status is built once per GET /status and once per metrics scrape: each group's paxos
// status and KV status are read once, whatever the number of metrics (issue 21: a scrape used to
// rebuild the whole tree for every metric, ~30 × G times). One node of 3 groups, in process.
import * as path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { KvServer } from '../src/server';
import type { NodeStatus } from '../src/status';
import { freePorts, tempDir, waitFor } from './helpers';

const GROUPS = 3;
let server: KvServer;

beforeAll(async () => {
  const [paxosPort, httpPort] = await freePorts(2);
  server = new KvServer(
    {
      nodeId: 1,
      cluster: new Map([[1, { host: '127.0.0.1', port: paxosPort! }]]),
      listen: { host: '127.0.0.1', port: paxosPort! },
      http: { host: '127.0.0.1', port: httpPort! },
      dataDir: path.join(tempDir('status'), 'node-1'),
      groups: GROUPS,
      httpPeers: new Map(),
      // Its periodic status reads would land in the counts below.
      operatorLogPollMs: 0,
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

/** Calls of the paxos node's and the KV state machines' status() during `run`. */
async function statusReads(run: () => Promise<void>): Promise<{ paxos: number; kv: number }> {
  const paxos = vi.spyOn(server.paxos, 'status');
  const kvs = server.kvs.map((kv) => vi.spyOn(kv, 'status'));
  try {
    await run();
    return { paxos: paxos.mock.calls.length, kv: kvs.reduce((n, s) => n + s.mock.calls.length, 0) };
  } finally {
    paxos.mockRestore();
    for (const s of kvs) s.mockRestore();
  }
}

describe('the status', () => {
  it('one GET /metrics reads each group once', async () => {
    let body = '';
    const reads = await statusReads(async () => {
      const res = await fetch(`${server.httpUrl}/metrics`);
      expect(res.status).toBe(200);
      body = await res.text();
    });
    expect(reads).toEqual({ paxos: GROUPS, kv: GROUPS });
    // Every group is in the scrape.
    for (let g = 0; g < GROUPS; g++)
      expect(body).toMatch(new RegExp(`tspaxos_instance_id\\{[^}]*group="${g}"[^}]*\\} \\d+`));
  });

  it('counts ?consistent=true reads as quorum rounds in /status and /metrics, with no barrier', async () => {
    const before = server.paxos.quorumReadCounters.rounds;
    // One read of one key's group, then a listing: one round in every group.
    expect((await fetch(`${server.httpUrl}/kv/some-key?consistent=true`)).status).toBe(404);
    expect((await fetch(`${server.httpUrl}/kv?consistent=true`)).status).toBe(200);
    const status = (await (await fetch(`${server.httpUrl}/status`)).json()) as NodeStatus;
    expect(status.quorumReads.rounds - before).toBe(1 + GROUPS);
    expect(status.quorumReads.fallbacks).toBe(0);
    const body = await (await fetch(`${server.httpUrl}/metrics`)).text();
    expect(body).toMatch(
      new RegExp(`^tspaxos_quorum_read_rounds_total\\{[^}]*\\} ${status.quorumReads.rounds}$`, 'm'),
    );
    expect(body).not.toMatch(/^tspaxos_consistent_read_barriers_total\{[^}]*\} [1-9]/m);
  });

  it('one GET /status reads each group once and lists every group under `groups`', async () => {
    let status: NodeStatus | undefined;
    const reads = await statusReads(async () => {
      const res = await fetch(`${server.httpUrl}/status`);
      expect(res.status).toBe(200);
      status = (await res.json()) as NodeStatus;
    });
    expect(reads).toEqual({ paxos: GROUPS, kv: GROUPS });
    expect(status!.groups.map((g) => g.group)).toEqual([0, 1, 2]);
    expect(status!.groupCount).toBe(GROUPS);
    // The members view carries group 0's instance id for this node.
    expect(status!.members.find((m) => m.self)?.instanceId).toBe(status!.groups[0]!.instanceId);
  });

  it("reports each group's KV WAL syncs on the thread pool (kv.walSyncs, issue 22)", async () => {
    const syncs = async () =>
      ((await (await fetch(`${server.httpUrl}/status`)).json()) as NodeStatus).groups.map(
        (g) => g.kv.walSyncs,
      );
    expect(await syncs()).toEqual([0, 0, 0]);
    // ~67 writes a group, one instance each: at least one sync per 32 commits in every group.
    for (let i = 0; i < 200; i++) {
      const res = await fetch(`${server.httpUrl}/kv/wal-${i}`, { method: 'PUT', body: 'v' });
      expect(res.status).toBe(200);
    }
    const done = await waitFor('a WAL sync in every group', async () => {
      const counts = await syncs();
      return counts.every((n) => n >= 1) && counts;
    });
    expect(done.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(200 / 32 + GROUPS);
    // 200 durable writes one after the other: 14 s on a loaded 2-core machine.
  }, 120_000);
});
