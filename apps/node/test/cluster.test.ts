// Three real node processes agree on 2,000 writes sent to all of them, while one is SIGKILLed
// mid-write and restarted (it catches up through the log) and node 1's paxos port is fed garbage
// and oversized frames. Afterwards every node has the same instance id and lastChecksum, and every
// acknowledged write reads back from every node. Then node 2 is wiped and rebuilds from the log.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeHello } from '../src/stack';
import { CLUSTER_ID } from '../src/options';
import { type Cluster, NodeProcess, put, startCluster, waitConverged, waitFor } from './helpers';

/** How long one write may be refused by every node (two default leases, and room for load). */
const WRITE_DEADLINE_MS = 60_000;

const WRITES = 2000;
const CONCURRENCY = 24;
const KILL_AT = 600;
const RESTART_AT = 1300;
const BLOCK = 100;

function valueOf(i: number): string {
  return `value-${i}-`.padEnd(100, 'x');
}

/** Sends bytes on a fresh connection to a paxos port and waits until the node closes it. */
function sendRaw(port: number, chunks: Uint8Array[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      for (const c of chunks) socket.write(c);
    });
    // The node cuts a hostile connection; with our bytes still unread that shows as a reset.
    socket.on('error', (error: NodeJS.ErrnoException) =>
      error.code === 'ECONNRESET' || error.code === 'EPIPE' ? resolve() : reject(error),
    );
    socket.on('close', () => resolve());
    socket.setTimeout(10_000, () =>
      socket.destroy(new Error('the node did not close the connection')),
    );
  });
}

function lengthPrefixed(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, 4);
  return out;
}

describe('a 3-node cluster of processes', () => {
  let cluster: Cluster | undefined;
  afterAll(async () => {
    await cluster?.stop();
  });

  it(
    'agrees on 2,000 writes through a SIGKILL, a restart and garbage on the paxos port',
    { timeout: 180_000 },
    async () => {
      cluster = await startCluster({
        voters: 3,
        name: 'cluster',
        // Automatic KV checkpoints while the writes run (the restarted node replays from one).
        extraArgs: () => ['--checkpoint-every', '50'],
      });
      const nodes = cluster.nodes;
      const acked = new Map<number, number>(); // write index → instance id
      let next = 0;
      let retries = 0;
      let restarted: Promise<void> | undefined;
      let killed: Promise<unknown> | undefined;

      const worker = async (): Promise<void> => {
        for (;;) {
          const i = next++;
          if (i >= WRITES) return;
          if (i === KILL_AT) killed = nodes[2]!.kill('SIGKILL');
          if (i === RESTART_AT) {
            restarted = (async () => {
              await killed;
              const again = new NodeProcess(3, nodes[2]!.args, nodes[2]!.httpUrl);
              nodes[2] = again;
              again.start();
              await again.ready();
            })();
          }
          // Until a deadline, not a count: while a killed master's lease lapses (up to a lease),
          // every node answers 503 (forwarding, issue 18), and the write waits it out.
          const deadline = Date.now() + WRITE_DEADLINE_MS;
          for (let attempt = 0; ; attempt++) {
            // Runs of BLOCK writes go to one node, then the next: every node takes writes, and
            // the three proposers compete only at the edges of a run (without master election,
            // writes spread evenly over three proposers mostly fight over instances).
            const target = nodes[(Math.floor(i / BLOCK) + attempt) % 3]!;
            try {
              const res = await put(target.httpUrl, `k${i}`, valueOf(i));
              if (res.ok) {
                const body = (await res.json()) as { instanceId: number };
                acked.set(i, body.instanceId);
                break;
              }
              await res.arrayBuffer();
            } catch {
              // Connection refused or reset: that node is down. The write goes to the next node.
            }
            retries++;
            if (Date.now() > deadline) throw new Error(`write ${i} failed on every node`);
            if (attempt % 3 === 2) await new Promise((r) => setTimeout(r, 50)); // each node tried: back off
          }
        }
      };

      // Garbage and oversized frames on node 1's paxos port while the writes run.
      const hostile = (async () => {
        const port = cluster!.paxosPorts[0]!;
        const garbage = new Uint8Array(64 * 1024).map((_, j) => (j * 7919 + 13) & 0xff);
        await sendRaw(port, [garbage]);
        const hello = encodeHello({
          clusterId: CLUSTER_ID,
          nodeId: 2,
          listenHost: '127.0.0.1',
          listenPort: 1,
        });
        // A sound length prefix with a body that is not a frame: dropped, the connection stays.
        // Then a length prefix of 2 GiB: refused before buffering, the connection is cut.
        const oversized = new Uint8Array([0x7f, 0xff, 0xff, 0xff, 1, 2, 3]);
        await sendRaw(port, [hello, lengthPrefixed(new Uint8Array(100).fill(0xab)), oversized]);
        await sendRaw(port, [new TextEncoder().encode('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]);
      })();

      await Promise.all([...Array.from({ length: CONCURRENCY }, worker), hostile]);
      await restarted;
      expect(acked.size).toBe(WRITES);
      expect(retries).toBeGreaterThan(0); // some writes did meet the killed node

      const statuses = await waitConverged(nodes);
      const maxInstance = Math.max(...acked.values());
      expect(statuses[0]!.instanceId).toBeGreaterThan(maxInstance);
      // Batching: 2,000 writes from 24 clients took fewer instances than writes.
      expect(statuses[0]!.instanceId).toBeLessThan(WRITES);
      // The restarted node learned what it missed from a peer's log.
      expect(statuses[2]!.learner.counters['valuesLearnedFromPeers']).toBeGreaterThan(0);
      // Node 1 counted the hostile connections and frames, and nothing else went wrong anywhere.
      const nodeStatuses = await Promise.all(nodes.map((n) => n.status()));
      const drops = nodeStatuses[0]!.network.drops;
      const dropped = Object.values(drops).reduce((a, b) => a + b, 0);
      expect(dropped, JSON.stringify(drops)).toBeGreaterThanOrEqual(3);
      for (const s of nodeStatuses) expect(s.taskErrors).toEqual([]);
      for (const s of statuses) expect(s.checkpointInstanceId).toBeGreaterThanOrEqual(49);

      // Every acknowledged write reads back from every node (local reads: all are caught up).
      for (const node of nodes) {
        const missing: number[] = [];
        for (let i = 0; i < WRITES; i += 1) {
          const res = await fetch(`${node.httpUrl}/kv/k${i}`);
          const text = await res.text();
          if (res.status !== 200 || text !== valueOf(i)) missing.push(i);
        }
        expect(missing, `node ${node.id}`).toEqual([]);
      }
      // A consistent read carries the barrier's instance id, past every acknowledged write.
      const res = await fetch(`${nodes[1]!.httpUrl}/kv/k0?consistent=barrier`);
      expect(res.status).toBe(200);
      expect(Number(res.headers.get('x-tspaxos-instance-id'))).toBeGreaterThan(maxInstance);

      // A wiped node (its data directory deleted) rebuilds log and state from its peers' logs.
      await nodes[1]!.kill('SIGKILL');
      fs.rmSync(path.join(cluster.dataRoot, 'node-2'), { recursive: true, force: true });
      const wiped = new NodeProcess(2, nodes[1]!.args, nodes[1]!.httpUrl);
      nodes[1] = wiped;
      wiped.start();
      await wiped.ready();
      const rebuilt = await waitConverged(nodes);
      expect(rebuilt[1]!.instanceId).toBeGreaterThan(statuses[0]!.instanceId); // + the barrier
      expect(rebuilt[1]!.learner.counters['valuesLearnedFromPeers']).toBeGreaterThanOrEqual(
        statuses[0]!.instanceId,
      );
      for (let i = 0; i < WRITES; i += 97) {
        const r = await fetch(`${wiped.httpUrl}/kv/k${i}`);
        expect(await r.text()).toBe(valueOf(i));
      }
      await waitFor('members view sees every node reachable', async () => {
        const s = await nodes[0]!.status();
        return s.members.every((m) => m.reachable === true);
      });
    },
  );
});
