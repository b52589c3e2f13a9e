// The consistent-read paths of GET /kv: ?consistent=true asks the paxos node for a quorum read
// index and proposes nothing; concurrent ?consistent=barrier reads share barriers (at most two for
// any number of reads arriving together), and each answer names the barrier it waited for. The
// paxos node is a fake whose barriers the test settles, so the count is exact.
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import type { ProposeResult } from '../stack';
import { kvRoutes, type KvNode } from './kv-routes';

function fakeNode() {
  const barriers: { resolve(instanceId: number): void }[] = [];
  const counted = { reads: 0, barriers: 0, quorumReads: 0 };
  const node: KvNode = {
    groupCount: 1,
    stopping: false,
    paxos: {
      batchPropose: (_g, value) => {
        expect(value.length).toBe(0); // only barriers in this test
        return new Promise<ProposeResult>((resolve) =>
          barriers.push({
            resolve: (instanceId) =>
              resolve({ instanceId, result: undefined } as unknown as ProposeResult),
          }),
        );
      },
      readIndex: () => Promise.reject(new Error('not used')),
      quorumReadIndex: () => {
        counted.quorumReads++;
        return Promise.resolve({ instanceId: 5 });
      },
      instanceId: () => 0,
    },
    kvs: [
      {
        read: () => ({ value: Buffer.from('v'), version: '1' }),
        entries: () => [][Symbol.iterator](),
      } as unknown as KvNode['kvs'][number],
    ],
    idempotencyWindow: { ms: 1000, keys: 10 } as unknown as KvNode['idempotencyWindow'],
    metrics: {
      commitLatency: { observe: () => {} },
      consistentReads: { inc: () => counted.reads++ },
      consistentReadBarriers: { inc: () => counted.barriers++ },
    } as unknown as KvNode['metrics'],
    trackProposal: (p) => p,
    waitForMaster: () => Promise.resolve(),
  };
  return { node, barriers, counted };
}

/** Runs the promise jobs queued now, and the I/O callbacks before them (no timer). */
const drain = () => new Promise<void>((r) => setImmediate(r));

async function until(cond: () => boolean, what: string, deadlineMs = 10_000) {
  const end = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await drain();
  }
}

describe('GET /kv/<key>?consistent=true', () => {
  it('is a quorum read index: no barrier, the instance applied here in the answer', async () => {
    const { node, barriers, counted } = fakeNode();
    const app = Fastify();
    await app.register(kvRoutes, { node });
    await app.ready();
    try {
      const answers = await Promise.all(
        Array.from({ length: 3 }, () =>
          app.inject({ method: 'GET', url: '/kv/a?consistent=true' }),
        ),
      );
      expect(answers.map((a) => a.headers['x-tspaxos-instance-id'])).toEqual(['5', '5', '5']);
      expect(barriers.length).toBe(0);
      expect(counted).toEqual({ reads: 3, barriers: 0, quorumReads: 3 });
    } finally {
      await app.close();
    }
  });
});

describe('GET /kv/<key>?consistent=barrier', () => {
  it('serves 40 concurrent reads with two barriers, each read answered by one that started after it arrived', async () => {
    const { node, barriers, counted } = fakeNode();
    const app = Fastify();
    let arrived = 0;
    app.addHook('preHandler', async () => {
      arrived++;
    });
    await app.register(kvRoutes, { node });
    await app.ready();
    try {
      const reads = Array.from({ length: 40 }, () =>
        app.inject({ method: 'GET', url: '/kv/a?consistent=barrier' }),
      );
      await until(() => arrived === 40, 'the reads to arrive');
      await drain(); // each read is past its handler's first await
      expect(barriers.length).toBe(1); // one per read before barriers were shared
      barriers[0]!.resolve(7);
      await until(() => barriers.length === 2, 'the second barrier');
      barriers[1]!.resolve(9);
      const answers = await Promise.all(reads);
      expect(answers.map((a) => a.statusCode)).toEqual(answers.map(() => 200));
      const ids = answers.map((a) => a.headers['x-tspaxos-instance-id']);
      expect(ids.filter((id) => id === '7').length).toBe(1); // the read that started barrier 1
      expect(ids.filter((id) => id === '9').length).toBe(39); // the rest arrived while it ran
      expect(barriers.length).toBe(2);
      expect(counted).toEqual({ reads: 40, barriers: 2, quorumReads: 0 }); // what /metrics shows
    } finally {
      await app.close();
    }
  });
});
