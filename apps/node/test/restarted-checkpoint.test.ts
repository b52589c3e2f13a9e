// A node restarted after the log moved past its last key write offers a checkpoint at the log's
// end, not at that write. Keys are written, then only barriers and master renewals are chosen
// (the log runs past the last key write); node 3 compacts its log, so it can only be rebuilt from
// a checkpoint at or above its log's start. Node 1 restarts: its KV file records its last key
// write, and the replay at start must count the instances after it (paxos executeOther). Node 3
// loses its KV state and restarts with only node 1 up: node 1's checkpoint must be one node 3
// takes (no fail-ack loop), with no key written. Before the fix, node 1 offered its last key write
// and node 3 refused it every ask, for ever (nothing new could be chosen without node 3's vote).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  barrierThrough,
  type Cluster,
  NodeProcess,
  put,
  startCluster,
  waitFor,
  group0Status as status,
  ok,
} from './helpers';

const KEYS = 10;
const BARRIERS = 5;

describe('a restarted node sends a checkpoint at the end of its log', () => {
  let cluster: Cluster | undefined;
  afterAll(async () => {
    await cluster?.stop();
  });

  it(
    'that a wiped peer whose log starts past the last key write installs',
    { timeout: 300_000 },
    async () => {
      cluster = await startCluster({ voters: 3, name: 'restarted-checkpoint' });
      const [n1, n2, n3] = cluster.nodes as [NodeProcess, NodeProcess, NodeProcess];
      for (let i = 0; i < KEYS; i++) await ok(put(n1.httpUrl, `k${i}`, `v${i}`));
      const lastWrite = (await status(n1.httpUrl)).kv.appliedInstanceId;
      // Only barriers from here on (and whatever master renewals happen): no key written.
      for (let i = 0; i < BARRIERS; i++) await ok(fetch(`${n1.httpUrl}/kv/k0?consistent=barrier`));
      await waitFor('node 3 learned the barriers', async () => {
        const [s1, s3] = await Promise.all([status(n1.httpUrl), status(n3.httpUrl)]);
        return s3.instanceId === s1.instanceId;
      });
      // Node 3's log now starts at its end: only a checkpoint at or above it rebuilds its state.
      await ok(fetch(`${n3.httpUrl}/admin/checkpoint`, { method: 'POST' }));
      await ok(fetch(`${n3.httpUrl}/admin/compact?keep=0`, { method: 'POST' }));
      const logStart = (await status(n3.httpUrl)).minChosenInstanceId;
      expect(logStart).toBeGreaterThan(lastWrite + 1);
      await n3.kill('SIGKILL');
      // Whatever node 3 saw last (a renewal) is chosen by nodes 1 and 2 before node 2 goes down
      // (a 503 while a killed master's lease lapses is retried).
      await barrierThrough(n1.httpUrl);
      await n2.kill('SIGKILL');

      // Node 1 restarts: its KV file says it applied up to its last key write.
      await n1.kill('SIGKILL');
      const back = new NodeProcess(1, n1.args, n1.httpUrl);
      cluster.nodes[0] = back;
      back.start();
      await back.ready();
      const s1 = await status(back.httpUrl);
      // The replay counted the instances after the last key write as applied.
      expect(s1.kv.appliedInstanceId).toBe(s1.instanceId - 1);
      expect(s1.kv.appliedInstanceId).toBeGreaterThanOrEqual(logStart - 1);

      const kvDir = path.join(cluster.dataRoot, 'node-3', 'kv-g0');
      fs.rmSync(kvDir, { recursive: true, force: true });
      const lost = new NodeProcess(3, n3.args, n3.httpUrl);
      cluster.nodes[2] = lost;
      lost.start();
      await lost.ready();
      // Bounded: one ask, one transfer (a refused one is re-asked every 10 s, for ever).
      const s3 = await waitFor(
        'node 3 installed a checkpoint from node 1',
        async () => {
          const s = await status(lost.httpUrl);
          if (s.kv.counters['checkpointLoads'] === 1 && s.checkpoint?.mode === false) return s;
          // Not yet: say what the transfers ended with (the old bug: fail-ack, stale, each ask).
          const ends = (await status(back.httpUrl)).checkpoint?.counters.senderEnds;
          const rejected = s.checkpoint?.receiver.counters.rejected;
          throw new Error(
            `sender ends ${JSON.stringify(ends)}, rejected ${JSON.stringify(rejected)}`,
          );
        },
        60_000,
        200,
      );
      const sender = (await status(back.httpUrl)).checkpoint!;
      expect(sender.counters.senderEnds['fail-ack'] ?? 0).toBe(0);
      expect(sender.counters.senderEnds['done']).toBe(1);
      expect(s3.checkpoint!.receiver.counters.rejected).toEqual({});
      expect(s3.kv.appliedInstanceId).toBeGreaterThanOrEqual(logStart - 1);
      for (let i = 0; i < KEYS; i++) {
        const res = await fetch(`${lost.httpUrl}/kv/k${i}`);
        expect(res.status, `k${i}`).toBe(200);
        expect(await res.text()).toBe(`v${i}`);
      }
    },
  );
});
