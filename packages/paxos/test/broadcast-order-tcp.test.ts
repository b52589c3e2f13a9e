// A proposer's Prepare and Accept leave for its peers before its own acceptor's write starts
// (issue 22: the write of one value costs the slower of the local write and a peer's round trip,
// not their sum plus the local write's CPU). Three nodes in this process over TCP on loopback
// (port 0), each with its own SQLite log; node 1's log is watched: at every write of a promise or
// an accept under node 1's own ballot, no byte may still wait in node 1's outbound queues to
// nodes 2 and 3. Before the fix the local write ran first and the frames waited for the
// transport's next flush (setImmediate) in every round.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LogStore } from '@tspaxos/storage';
import { SqliteLogStore } from '@tspaxos/storage/sqlite';
import { TcpNetwork } from '@tspaxos/transport/tcp';
import { afterAll, expect, it } from 'vitest';
import { realRandom, realScheduler } from '../src/adapters/node-entry';
import { type PaxosNode, startNode } from '../src/internal';

const PROPOSALS = 30;
/** Each proposal's deadline: generous for a loaded machine; no timing is asserted. */
const PROPOSE_TIMEOUT_MS = 60_000;
const dirs: string[] = [];
const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** `store` with `observe` called at every put, before the store sees it. */
function watched(store: LogStore, observe: (record: Parameters<LogStore['put']>[1]) => void) {
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'put')
        return (...args: Parameters<LogStore['put']>) => {
          observe(args[1]);
          return target.put(...args);
        };
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

it("a proposer's Prepare and Accept leave for its peers before its own acceptor writes", async () => {
  const ids = [1, 2, 3];
  const networks = new Map<number, TcpNetwork>();
  const ports = new Map<number, number>();
  for (const id of ids) {
    const network = new TcpNetwork({
      nodeId: id,
      clusterId: 'broadcast-order',
      listen: { host: '127.0.0.1', port: 0 },
    });
    ports.set(id, (await network.start()).port);
    networks.set(id, network);
    cleanups.push(() => network.close());
  }
  for (const [id, network] of networks)
    for (const peer of ids)
      if (peer !== id) network.addPeer(peer, { host: '127.0.0.1', port: ports.get(peer)! });

  const n1Network = networks.get(1)!;
  let ownWrites = 0;
  let writesWhileQueued = 0;
  let watching = false;
  const nodes = new Map<number, PaxosNode>();
  for (const id of ids) {
    const dir = mkdtempSync(join(tmpdir(), `tspaxos-broadcast-order-n${id}-`));
    dirs.push(dir);
    const sqlite = SqliteLogStore.open(dir);
    cleanups.push(() => sqlite.close());
    const store =
      id !== 1
        ? sqlite
        : watched(sqlite, (record) => {
            if (!watching || record.promiseNodeId !== 1) return;
            ownWrites++;
            if (n1Network.queuedBytes(2) + n1Network.queuedBytes(3) > 0) writesWhileQueued++;
          });
    const node = await startNode({
      nodeId: id,
      cluster: ids,
      groups: 1,
      store,
      scheduler: realScheduler(),
      random: realRandom(),
      network: networks.get(id)!,
      // No learner asking in the background: its frames would sit in the same queues.
      options: { learner: { askforLearnIntervalMs: 600_000, askforLearnJitterMs: 0 } },
    });
    nodes.set(id, node);
    cleanups.push(() => node.stop());
  }
  const n1 = nodes.get(1)!;
  // The first proposal opens the connections (a frame queued before its connection is up waits
  // for it, which is not what this test is about).
  await n1.propose(0, new Uint8Array(100), { timeoutMs: PROPOSE_TIMEOUT_MS });
  watching = true;
  const framesBefore = n1Network.counters().framesSent;
  for (let i = 0; i < PROPOSALS; i++)
    await n1.propose(0, new Uint8Array(100).fill(i), { timeoutMs: PROPOSE_TIMEOUT_MS });
  watching = false;

  // Every proposal wrote node 1's accept (and a prepare where it ran one), and none of those
  // writes started while the Accept or Prepare still waited to leave.
  expect(ownWrites).toBeGreaterThanOrEqual(PROPOSALS);
  expect(writesWhileQueued).toBe(0);
  // Two Accepts per proposal went out (to nodes 2 and 3), at least.
  expect(n1Network.counters().framesSent - framesBefore).toBeGreaterThanOrEqual(2 * PROPOSALS);
  expect(n1.status(0).errors.taskErrors.count).toBe(0);
}, 180_000);
