// Two orders on a proposer's critical path (issue 22), over TCP on loopback (port 0): three nodes
// in this process, each with its own SQLite log.
// - Its Prepare and Accept leave for its peers before its own acceptor's write starts: at every
//   write of a promise or an accept under node 1's own ballot, no byte may still wait in node 1's
//   outbound queues to nodes 2 and 3. Before, the local write ran first and the frames waited for
//   the transport's next flush (setImmediate) in every round.
// - A chosen value's caller is answered after the next instance's Accept has left: what the
//   caller runs next (an HTTP reply per value, in the server) no longer goes ahead of that send.
// - With no next value waiting (a lone writer), nothing has to leave first: the caller is
//   answered in the turn that applied its value, without waiting another.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LogStore } from '@tspaxos/storage';
import { SqliteLogStore } from '@tspaxos/storage/sqlite';
import { TcpNetwork } from '@tspaxos/transport/tcp';
import { afterAll, expect, it } from 'vitest';
import { realRandom, realScheduler } from '../src/adapters/node-entry';
import { type PaxosNode, startNode, type StateMachine } from '../src/internal';

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

/** Three nodes over TCP on loopback; `observe` sees every put of node 1's log. */
async function startCluster(
  name: string,
  observe: (network: TcpNetwork, record: Parameters<LogStore['put']>[1]) => void = () => {},
  stateMachine?: StateMachine,
): Promise<{ n1: PaxosNode; n1Network: TcpNetwork }> {
  const ids = [1, 2, 3];
  const networks = new Map<number, TcpNetwork>();
  const ports = new Map<number, number>();
  for (const id of ids) {
    const network = new TcpNetwork({
      nodeId: id,
      clusterId: name,
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
  let n1: PaxosNode | undefined;
  for (const id of ids) {
    const dir = mkdtempSync(join(tmpdir(), `tspaxos-${name}-n${id}-`));
    dirs.push(dir);
    const sqlite = SqliteLogStore.open(dir);
    cleanups.push(() => sqlite.close());
    const store = id !== 1 ? sqlite : watched(sqlite, (record) => observe(n1Network, record));
    const node = await startNode({
      nodeId: id,
      cluster: ids,
      groups: 1,
      store,
      scheduler: realScheduler(),
      random: realRandom(),
      network: networks.get(id)!,
      // Node 1 runs `stateMachine`; the others a machine of the same id that does nothing.
      ...(stateMachine === undefined
        ? {}
        : {
            stateMachines: [
              id === 1 ? stateMachine : { smId: stateMachine.smId, execute: () => undefined },
            ],
          }),
      // No learner asking in the background: its frames would sit in the same queues.
      options: { learner: { askforLearnIntervalMs: 600_000, askforLearnJitterMs: 0 } },
    });
    cleanups.push(() => node.stop());
    if (id === 1) n1 = node;
  }
  // The first proposal opens the connections (a frame queued before its connection is up waits
  // for it, which is not what these tests are about).
  await n1!.propose(0, new Uint8Array(100), { timeoutMs: PROPOSE_TIMEOUT_MS });
  return { n1: n1!, n1Network };
}

/** Bytes node 1 still holds for nodes 2 and 3, not yet handed to their sockets. */
const queued = (network: TcpNetwork) => network.queuedBytes(2) + network.queuedBytes(3);

it("a proposer's Prepare and Accept leave for its peers before its own acceptor writes", async () => {
  let watching = false;
  let ownWrites = 0;
  let writesWhileQueued = 0;
  const { n1, n1Network } = await startCluster('broadcast-order', (network, record) => {
    if (!watching || record.promiseNodeId !== 1) return;
    ownWrites++;
    if (queued(network) > 0) writesWhileQueued++;
  });
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

it("a chosen value's caller is answered after the next instance's Accept has left", async () => {
  const { n1, n1Network } = await startCluster('answer-after-accept');
  let answered = 0;
  let answeredWhileQueued = 0;
  let answeredWithNextAccepting = 0;
  for (let i = 0; i < PROPOSALS; i++) {
    // Two values, one instance each: once the first is applied, the second is proposed at once.
    const first = n1
      .propose(0, new Uint8Array(100).fill(i), { timeoutMs: PROPOSE_TIMEOUT_MS })
      .then(() => {
        answered++;
        if (queued(n1Network) > 0) answeredWhileQueued++;
        if (n1.status(0).proposer.phase === 'accepting') answeredWithNextAccepting++;
      });
    const second = n1.propose(0, new Uint8Array(100).fill(255 - i), {
      timeoutMs: PROPOSE_TIMEOUT_MS,
    });
    await Promise.all([first, second]);
  }
  expect(answered).toBe(PROPOSALS);
  // The next instance was under way at every answer, and its Accept had left.
  expect(answeredWithNextAccepting).toBe(PROPOSALS);
  expect(answeredWhileQueued).toBe(0);
  expect(n1.status(0).errors.taskErrors.count).toBe(0);
}, 180_000);

it("a lone writer's value is answered in the turn that applied it", async () => {
  // Node 1's machine notes, at each execute, a setImmediate: it has fired once the event loop
  // turned after the apply.
  let turnedSinceApply = false;
  let applied = 0;
  const sm: StateMachine = {
    smId: 7,
    execute: () => {
      applied++;
      turnedSinceApply = false;
      setImmediate(() => (turnedSinceApply = true));
      return applied;
    },
  };
  const { n1 } = await startCluster('answer-lone-writer', undefined, sm);
  let answeredInTheApplyTurn = 0;
  for (let i = 0; i < PROPOSALS; i++) {
    // One value at a time: nothing waits to be proposed when it is chosen.
    const result = await n1.propose(0, new Uint8Array(100).fill(i), {
      smId: 7,
      timeoutMs: PROPOSE_TIMEOUT_MS,
    });
    expect(result.result).toBe(applied);
    if (!turnedSinceApply) answeredInTheApplyTurn++;
  }
  // Before, every answer waited a turn after the apply (IOLoop.afterThisTurn).
  expect(answeredInTheApplyTurn).toBe(PROPOSALS);
  expect(n1.status(0).errors.taskErrors.count).toBe(0);
}, 180_000);
