// A restarted node replays only what its KV file lacks (issue 22): the replay at start begins at
// the instance the file records applied, not at its last checkpoint (every 10,000 instances by
// default, so up to 10,000 instances, 64 KiB values included, were read at every start). The
// node is SIGKILLed, so nothing was flushed at a graceful stop; every acknowledged write is read
// back after the restart.
import { afterAll, describe, expect, it } from 'vitest';
import {
  type Cluster,
  NodeProcess,
  group0Status,
  startCluster,
  waitFor,
  writeKeys,
} from './helpers';

const WRITES = 300;

describe('a restarted node', () => {
  let cluster: Cluster | undefined;
  afterAll(async () => {
    await cluster?.stop();
  });

  it(
    'replays from what its KV file holds, not from its checkpoint, and keeps every write',
    { timeout: 180_000 },
    async () => {
      cluster = await startCluster({ voters: 1, name: 'restart-replay' });
      const node = cluster.nodes[0]!;
      // One writer: one instance per write, so the log holds ~WRITES instances, none checkpointed.
      await writeKeys(node.httpUrl, 'k', 0, WRITES, 1);
      const before = await group0Status(node.httpUrl);
      expect(before.instanceId).toBeGreaterThanOrEqual(WRITES);
      expect(before.kv.checkpointInstanceId).toBe(-1);
      await node.kill('SIGKILL');

      const again = new NodeProcess(1, node.args, node.httpUrl);
      cluster.nodes[0] = again;
      again.start();
      await again.ready();
      const lines = again.json();
      const started = lines.find((l) => l.msg === 'group-started')!;
      expect(started).toBeDefined();
      // The last instance is learned again, not replayed; before, replayedFrom was 0 (the
      // checkpoint's -1 + 1) and every instance was read.
      expect(started.replayedFrom).toBeGreaterThanOrEqual(before.instanceId - 1);
      expect(started.replayedInstances).toBeLessThanOrEqual(1);
      const opened = lines.find((l) => l.msg === 'log-opened')!;
      expect(opened).toMatchObject({ durationMs: expect.any(Number), replayedRecords: 0 });

      const after = await waitFor('the restarted node at its log end', async () => {
        const s = await group0Status(again.httpUrl);
        return s.instanceId >= before.instanceId ? s : undefined;
      });
      expect(after.kv.appliedInstanceId).toBeGreaterThanOrEqual(before.instanceId - 1);
      for (let i = 0; i < WRITES; i++) {
        const res = await fetch(`${again.httpUrl}/kv/k${i}`);
        expect(res.status, `k${i}`).toBe(200);
        expect(await res.text()).toBe(`v${i}`);
      }
    },
  );
});
