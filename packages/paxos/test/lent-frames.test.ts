// Receive buffers lent by the TcpNetwork (transport's frame-pool.ts) and released by the learner
// once a batch's values are stored and executed (issue 22). Three nodes over TCP on loopback,
// each with its own SQLite log; node 3 starts after 100 KiB values were chosen and catches up by
// the learner's batches. Released frames are poisoned, so a value still in use when its frame
// is reused shows as wrong bytes: node 3 must execute exactly what node 1 executed. A learner
// that releases too early (planted) is caught by the same check; a state machine that does not
// say copiesValues gets frames that are never released.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from '@tspaxos/crc-wasm';
import { SqliteLogStore } from '@tspaxos/storage/sqlite';
import { TcpNetwork } from '@tspaxos/transport/tcp';
import { afterEach, describe, expect, it } from 'vitest';
import type { UnsafeFaults } from '../src/faults';
import { startNode, type PaxosNode, type StateMachine } from '../src/internal';
import { realRandom, realScheduler } from '../src/adapters/real-scheduler';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const VALUE_BYTES = 100 * 1024;
const VALUES = 120;

/** Executes nothing but records each value's CRC by instance. */
function recorder(copiesValues: boolean): StateMachine & { seen: Map<number, number> } {
  const seen = new Map<number, number>();
  return {
    smId: 10,
    seen,
    ...(copiesValues ? { copiesValues: true } : {}),
    execute(value, ctx) {
      seen.set(ctx.instanceId, crc32(value));
    },
  };
}

async function until(cond: () => boolean, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Three networks listening, each knowing the others' addresses; node `late`'s node not started. */
async function cluster(opts: { copiesValues: boolean; faultsOf3?: UnsafeFaults }) {
  const networks = new Map<number, TcpNetwork>();
  for (const id of [1, 2, 3]) {
    const n = new TcpNetwork({
      nodeId: id,
      clusterId: 'lent-frames',
      listen: { host: '127.0.0.1', port: 0 },
      poisonReleasedFrames: true,
    });
    cleanups.push(() => n.close());
    networks.set(id, n);
  }
  for (const [id, n] of networks) {
    const { port } = await n.start();
    for (const [other, o] of networks) if (other !== id) o.addPeer(id, { host: '127.0.0.1', port });
  }
  const machines = new Map<number, ReturnType<typeof recorder>>();
  const start = async (id: number): Promise<PaxosNode> => {
    const dir = mkdtempSync(join(tmpdir(), `tspaxos-lent-${id}-`));
    const store = SqliteLogStore.open(dir);
    const sm = recorder(opts.copiesValues);
    machines.set(id, sm);
    const node = await startNode({
      nodeId: id,
      cluster: [1, 2, 3],
      groups: 1,
      store,
      network: networks.get(id)!,
      scheduler: realScheduler(),
      random: realRandom(),
      stateMachines: [sm],
      ...(id === 3 && opts.faultsOf3 !== undefined ? { unsafeFaults: opts.faultsOf3 } : {}),
      options: { learner: { askforLearnIntervalMs: 200, askforLearnJitterMs: 20 } },
    });
    cleanups.push(async () => {
      await node.stop();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    });
    return node;
  };
  const n1 = await start(1);
  await start(2);
  // Values whose bytes say which they are.
  let next = 0;
  const worker = async () => {
    while (next < VALUES) {
      const i = next++;
      const value = new Uint8Array(VALUE_BYTES);
      for (let k = 0; k < VALUE_BYTES; k += 4096) value[k] = (i * 13 + k) & 0xff;
      value[0] = i & 0xff;
      await n1.propose(0, value, { smId: 10 });
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  const n3 = await start(3);
  return { n1, n3, machines, network3: networks.get(3)! };
}

/** Instances node 3 executed with other bytes than node 1 (by CRC), and how many it checked. */
function compare(machines: Map<number, ReturnType<typeof recorder>>) {
  const one = machines.get(1)!.seen;
  const three = machines.get(3)!.seen;
  let checked = 0;
  let wrong = 0;
  for (const [instanceId, crc] of one) {
    const theirs = three.get(instanceId);
    if (theirs === undefined) continue;
    checked++;
    if (theirs !== crc) wrong++;
  }
  return { checked, wrong };
}

/** Waits until node 3 reaches node 1's instance; it must have executed node 1's values exactly. */
async function caughtUpWithTheChosenValues(
  n1: PaxosNode,
  n3: PaxosNode,
  machines: Map<number, ReturnType<typeof recorder>>,
): Promise<void> {
  const target = n1.instanceId(0);
  await until(() => n3.instanceId(0) >= target);
  const { checked, wrong } = compare(machines);
  expect(checked).toBeGreaterThanOrEqual(VALUES);
  expect(wrong).toBe(0);
}

describe('receive buffers lent to the learner', () => {
  it('a node catching up over TCP reuses batch buffers and executes exactly the chosen values', async () => {
    const { n1, n3, machines, network3 } = await cluster({ copiesValues: true });
    await caughtUpWithTheChosenValues(n1, n3, machines);
    expect(n3.status(0).learner.counters.batchesLearned).toBeGreaterThan(0);
    const pool = network3.counters().receivePool;
    expect(pool.released).toBeGreaterThan(0);
    expect(pool.reused).toBeGreaterThan(0);
  }, 120_000);

  it('planted: a learner that releases a batch before executing it is caught (wrong values or a stop)', async () => {
    const { n1, n3, machines, network3 } = await cluster({
      copiesValues: true,
      faultsOf3: { releaseLentFramesEarly: true },
    });
    const target = n1.instanceId(0);
    await until(() => n3.instanceId(0) >= target || n3.status(0).stopped !== undefined);
    const { wrong } = compare(machines);
    const stopped = n3.status(0).stopped;
    // Poisoned bytes either execute as other values or do not unpack at all (the group stops).
    expect(wrong > 0 || stopped !== undefined).toBe(true);
    expect(network3.counters().receivePool.released).toBeGreaterThan(0);
  }, 120_000);

  it('a state machine that does not say copiesValues: no frame is released, the values are right', async () => {
    const { n1, n3, machines, network3 } = await cluster({ copiesValues: false });
    await caughtUpWithTheChosenValues(n1, n3, machines);
    const pool = network3.counters().receivePool;
    expect(pool.allocated).toBeGreaterThan(0);
    expect(pool.released).toBe(0);
    expect(pool.reused).toBe(0);
  }, 120_000);
});
