// Checkpoints and compaction across real node processes: the nodes compact their logs on their own
// (KV checkpoint every 100 instances, --keep-log 300), node 3 is SIGKILLed and wiped, nodes 1 and 2
// checkpoint and compact on demand (POST /admin/compact) past everything node 3 had, and the wiped
// node comes back through a checkpoint transfer and then the log above it. Afterwards every
// acknowledged write reads back from every node and all agree on the instance id; nodes 1 and 2
// on lastChecksum (node 3's chain may restart at 0 after the checkpoint: design.md §2).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type Cluster,
  NodeProcess,
  put,
  startCluster,
  waitConverged,
  unless503,
  waitFor,
  group0Status as status,
} from './helpers';

/** The log the nodes keep below their KV checkpoint when they compact on their own (the minimum). */
const KEEP_LOG = 300;
const CHECKPOINT_EVERY = 100;
/** Writes before the automatic compaction is checked: the log passes CHECKPOINT_EVERY + KEEP_LOG. */
const FIRST_WRITES = 700;
/** Writes node 3 misses before the compaction, and after it (learned through the log). */
const MISSED_BEFORE = 200;
const MISSED_AFTER = 100;

async function post(url: string): Promise<Record<string, number>> {
  const res = await fetch(url, { method: 'POST' });
  const body = (await res.json()) as Record<string, number>;
  if (!res.ok) throw new Error(`${url}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

describe('checkpoints across processes', () => {
  let cluster: Cluster | undefined;
  afterAll(async () => {
    await cluster?.stop();
  });

  it(
    'compacts on its own and on demand; a wiped node catches up through a checkpoint, then the log',
    { timeout: 300_000 },
    async () => {
      cluster = await startCluster({
        voters: 3,
        name: 'checkpoint',
        extraArgs: () => [
          '--checkpoint-every',
          String(CHECKPOINT_EVERY),
          '--keep-log',
          String(KEEP_LOG),
        ],
      });
      const nodes = cluster.nodes;
      const acked = new Map<string, string>();
      const write = async (url: string, from: number, count: number): Promise<void> => {
        // One at a time: each write is its own instance, so the log grows by `count`.
        for (let i = from; i < from + count; i++) {
          const key = `k${i}`;
          const value = `v${i}`;
          // A 503 is "not applied" (after node 3 is killed: its lease lapsing): try it again.
          const res = await unless503(() => put(url, key, value), `write ${key}`);
          if (!res.ok) throw new Error(`write ${key}: ${res.status} ${await res.text()}`);
          acked.set(key, value);
        }
      };

      // 1. Automatic: every node's log is compacted below its checkpoint, keeping KEEP_LOG.
      await write(nodes[0]!.httpUrl, 0, FIRST_WRITES);
      await waitConverged(nodes);
      const auto = await waitFor(
        'every node compacted its log on its own',
        async () => {
          const all = await Promise.all(nodes.map((n) => status(n.httpUrl)));
          return all.every((s) => s.minChosenInstanceId > 0) ? all : undefined;
        },
        60_000,
      );
      for (const s of auto) {
        expect(s.checkpointInstanceId).toBeGreaterThanOrEqual(CHECKPOINT_EVERY);
        expect(
          s.minChosenInstanceId,
          `keeps ${KEEP_LOG} below the checkpoint: ${JSON.stringify(s)}`,
        ).toBeLessThanOrEqual(s.checkpointInstanceId - KEEP_LOG + 1);
      }

      // 2. Node 3 is killed and wiped; it misses writes; nodes 1 and 2 compact past all of them.
      await nodes[2]!.kill('SIGKILL');
      const node3Data = path.join(cluster.dataRoot, 'node-3');
      fs.rmSync(node3Data, { recursive: true, force: true });
      // A write with an Idempotency-Key that node 3 will know only from the checkpoint.
      const once = (url: string) =>
        fetch(`${url}/kv/once`, {
          method: 'PUT',
          headers: { 'idempotency-key': 'before-the-checkpoint' },
          body: 'once',
        });
      // 503 (not applied) while a killed master's lease lapses (forwarding): the same key again.
      const first = await unless503(
        () => once(nodes[0]!.httpUrl),
        'the keyed write through node 1',
      );
      expect(first.status).toBe(200);
      const firstInstanceId = Number(first.headers.get('x-tspaxos-instance-id'));
      await write(nodes[0]!.httpUrl, FIRST_WRITES, MISSED_BEFORE);
      const compacted: number[] = [];
      for (const n of nodes.slice(0, 2)) {
        const cp = await post(`${n.httpUrl}/admin/checkpoint`);
        const c = await post(`${n.httpUrl}/admin/compact?keep=10`);
        // Below the checkpoint (or the highest record when that is the checkpoint), keeping 10.
        expect(c['minChosenInstanceId']).toBeGreaterThanOrEqual(cp['checkpointInstanceId']! - 10);
        expect(c['minChosenInstanceId']).toBeLessThanOrEqual(cp['checkpointInstanceId']! - 9);
        compacted.push(c['minChosenInstanceId']!);
      }
      // Above the checkpoints: learned through the log after the install.
      await write(nodes[1]!.httpUrl, FIRST_WRITES + MISSED_BEFORE, MISSED_AFTER);

      // 3. The wiped node: nothing below min chosen exists anywhere, so only a checkpoint helps.
      const again = new NodeProcess(3, nodes[2]!.args, nodes[2]!.httpUrl);
      nodes[2] = again;
      again.start();
      await again.ready();
      // Same instance id everywhere. The chain restarts at 0 after a checkpoint whose chain value
      // was unknown to its sender (design.md §2: a log compacted with keep 0), so node 3's
      // lastChecksum may be 0 while nodes 1 and 2 agree on theirs; the state is compared key by
      // key below.
      const converged = await waitFor(
        'every node at the same instance id',
        async () => {
          const all = await Promise.all(nodes.map((n) => status(n.httpUrl)));
          return all.every((s) => s.instanceId === all[0]!.instanceId) ? all : undefined;
        },
        120_000,
        200,
      );
      expect(converged[0]!.lastChecksum).toBe(converged[1]!.lastChecksum);
      expect(converged[0]!.lastChecksum).not.toBe(0);
      // Node 3's chain is 0 until it learns a record with its checksum from a peer's log.
      expect([0, converged[0]!.lastChecksum]).toContain(converged[2]!.lastChecksum);
      const s3 = await status(again.httpUrl);
      expect(s3.kv.counters.checkpointLoads).toBe(1);
      expect(s3.checkpoint?.counters.asksSent).toBeGreaterThanOrEqual(1);
      // It installed a checkpoint at or above the compaction point (its log starts there: it
      // never had the instances below), then learned the rest through the log.
      expect(s3.minChosenInstanceId).toBeGreaterThanOrEqual(Math.min(...compacted));
      expect(s3.instanceId).toBe(converged[0]!.instanceId);
      const sent = await Promise.all(nodes.slice(0, 2).map((n) => status(n.httpUrl)));
      expect(sent.reduce((a, s) => a + (s.checkpoint?.counters.sendersStarted ?? 0), 0)).toBe(1);

      // The transfer in /status and /metrics: what the peers sent is what node 3 received.
      expect(s3.checkpoint?.receiver.counters.installs).toBe(1);
      const metric = async (url: string, name: string): Promise<number> => {
        const text = await (await fetch(`${url}/metrics`)).text();
        const line = text.split('\n').find((l) => l.startsWith(`${name}{`));
        return line === undefined ? 0 : Number(line.split(' ').pop());
      };
      const sentBytes = await Promise.all(
        nodes.slice(0, 2).map((n) => metric(n.httpUrl, 'tspaxos_checkpoint_sent_bytes_total')),
      );
      const receivedBytes = await metric(again.httpUrl, 'tspaxos_checkpoint_received_bytes_total');
      expect(receivedBytes).toBeGreaterThan(0);
      expect(sentBytes[0]! + sentBytes[1]!).toBe(receivedBytes);
      expect(await metric(again.httpUrl, 'tspaxos_checkpoint_installs_total')).toBe(1);
      expect(await metric(again.httpUrl, 'tspaxos_checkpoint_transfer_active')).toBe(0);
      // The key came with the checkpoint (its write is below node 3's log): a retry through
      // node 3 answers the first outcome and applies nothing.
      expect(firstInstanceId).toBeLessThan(s3.minChosenInstanceId);
      expect(s3.kv.idempotencyKeys).toBe(1);
      const retry = await once(again.httpUrl);
      expect(retry.status).toBe(200);
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
      expect(retry.headers.get('x-tspaxos-instance-id')).toBe(String(firstInstanceId));

      // 4. Every acknowledged write reads back from every node.
      expect(acked.size).toBe(FIRST_WRITES + MISSED_BEFORE + MISSED_AFTER);
      for (const n of nodes) {
        const keys = [...acked.keys()];
        const wrong: string[] = [];
        for (let i = 0; i < keys.length; i += 50) {
          await Promise.all(
            keys.slice(i, i + 50).map(async (key) => {
              const res = await fetch(`${n.httpUrl}/kv/${key}`);
              const text = await res.text();
              if (res.status !== 200 || text !== acked.get(key))
                wrong.push(`${key}: ${res.status} ${text}`);
            }),
          );
        }
        expect(wrong, `node ${n.id}`).toEqual([]);
      }
    },
  );
});
