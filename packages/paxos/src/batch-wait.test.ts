// The batch wait (options.batchWaitMs, issue 22): closed-loop batchPropose callers all ride each
// instance, instead of splitting into cohorts that ride every other one; a lone writer never
// waits; a wait that runs out proposes what is there. Three nodes on virtual time.
import { CLOSED_LOOP_WAIT_PAUSE, SeededRandomSource } from '@tspaxos/core';
import { MemoryLogStore } from '@tspaxos/storage';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualWorld } from './adapters/testing-entry';
import { type PaxosNode, PaxosError, startNode, type StateMachine } from './internal';

const SM = 10;
const machine: StateMachine = { smId: SM, execute: () => 'ok' };

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function cluster(batchWaitMs: number): Promise<{ n1: PaxosNode; world: VirtualWorld }> {
  const world = new VirtualWorld();
  cleanups.push(() => world.close());
  const ids = [1, 2, 3];
  const nodes: PaxosNode[] = [];
  for (const id of ids) {
    const node = await startNode({
      nodeId: id,
      cluster: ids,
      groups: 1,
      store: new MemoryLogStore(),
      network: world.net.endpoint(id),
      scheduler: world.scheduler,
      random: new SeededRandomSource(id),
      stateMachines: [machine],
      options: { batchWaitMs },
    });
    nodes.push(node);
    cleanups.push(() => node.stop());
  }
  return { n1: nodes[0]!, world };
}

/**
 * `clients` callers of node 1, each proposing again `thinkMs(c)` virtual ms after it is answered
 * (a client's round trip: they come back one after another), `rounds` values each; returns how
 * many values each instance carried, in instance order.
 */
async function closedLoop(
  world: VirtualWorld,
  n1: PaxosNode,
  clients: number,
  rounds: number,
  thinkMs: (client: number) => number = (c) => 1 + (c % 4),
): Promise<number[]> {
  const perInstance = new Map<number, number>();
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let i = 0; i < rounds; i++) {
        const r = await n1.batchPropose(0, new Uint8Array(100), { smId: SM });
        perInstance.set(r.instanceId, (perInstance.get(r.instanceId) ?? 0) + 1);
        await new Promise<void>((resolve) => world.scheduler.schedule(thinkMs(c), resolve));
      }
    }),
  );
  return [...perInstance.entries()].sort((a, b) => a[0] - b[0]).map(([, n]) => n);
}

describe('batchWaitMs', () => {
  it('closed-loop writers all ride each instance (without the wait: every other one)', async () => {
    const clients = 8;
    const rounds = 40;
    const waited = await cluster(5);
    const withWait = await closedLoop(waited.world, waited.n1, clients, rounds);
    const counters = waited.n1.status(0).counters;
    // The first caller starts an instance alone, the other 7 ride the next; from then on every
    // instance carries all 8 (the last one 7: the first caller is done one round sooner).
    expect(withWait.slice(1, -1).every((n) => n === clients)).toBe(true);
    expect(withWait.length).toBeLessThanOrEqual(rounds + 2);
    expect(counters.batchWaits).toBeGreaterThan(rounds / 2);
    // Every wait filled, but the last one: 7 callers were left for 8.
    expect(counters.batchWaitsFilled).toBe(counters.batchWaits - 1);

    // The same load without the wait: the first caller answered starts the next instance alone,
    // the rest wait for the one after. Half the values per instance on average, twice the rounds.
    const plain = await cluster(0);
    const withoutWait = await closedLoop(plain.world, plain.n1, clients, rounds);
    expect(plain.n1.status(0).counters.batchWaits).toBe(0);
    expect(withoutWait.length).toBeGreaterThan(1.5 * rounds);
    expect(withWait.length * 1.5).toBeLessThan(withoutWait.length);
  });

  it('never holds a lone writer', async () => {
    const { n1, world } = await cluster(1000);
    const perInstance = await closedLoop(world, n1, 1, 30);
    expect(perInstance.every((n) => n === 1)).toBe(true);
    expect(n1.status(0).counters.batchWaits).toBe(0);
  });

  it('never holds a lone writer behind proposals of other kinds (a renewal, a membership change)', async () => {
    // A propose() value queued while the writer's batch instance is out (as a master renewal
    // is) goes in an instance of its own: the writer's next value is the one batch value to wait
    // for. Counting the other one in had each such instance hold the next write for the whole
    // wait (the server's lone writer: a 3-ms wait per renewal, 4 a second).
    const { n1, world } = await cluster(1000);
    const others: Promise<unknown>[] = [];
    for (let i = 0; i < 30; i++) {
      const write = n1.batchPropose(0, new Uint8Array(100), { smId: SM });
      if (i % 3 === 0) others.push(n1.propose(0, new Uint8Array(10), { smId: SM }));
      await write;
      await new Promise<void>((resolve) => world.scheduler.schedule(1, resolve));
    }
    await Promise.all(others);
    expect(others.length).toBe(10);
    expect(n1.status(0).counters.batchWaits).toBe(0);
  });

  it('proposes what is there when the wait runs out, and waits for the new size after', async () => {
    const { n1, world } = await cluster(50);
    await closedLoop(world, n1, 8, 5);
    const before = n1.status(0).counters;
    // 8 writers became 3: the first instance waits 50 ms in vain, and sets the size to 3.
    const t0 = world.scheduler.now();
    const perInstance = await closedLoop(world, n1, 3, 20);
    const after = n1.status(0).counters;
    // One wait for 8 ran out and proposed what was there; the next CLOSED_LOOP_WAIT_PAUSE
    // batch instances did not wait (the 3 callers split up meanwhile); from then on all 3 ride
    // each instance (the last one 2: a caller is done one round sooner).
    const tail = perInstance.slice(CLOSED_LOOP_WAIT_PAUSE + 1, -1);
    expect(tail.length).toBeGreaterThan(5);
    expect(tail.every((n) => n === 3)).toBe(true);
    expect(after.batchWaits - before.batchWaits).toBeGreaterThan(10);
    expect(
      after.batchWaits - after.batchWaitsFilled - (before.batchWaits - before.batchWaitsFilled),
    ).toBe(1);
    expect(world.scheduler.now() - t0).toBeGreaterThanOrEqual(50);
  });

  it('refuses a wait out of range (E_BAD_ARGUMENT)', async () => {
    const world = new VirtualWorld();
    cleanups.push(() => world.close());
    for (const batchWaitMs of [-1, 1001, 0.5]) {
      const start = startNode({
        nodeId: 1,
        cluster: [1],
        groups: 1,
        store: new MemoryLogStore(),
        network: world.net.endpoint(1),
        scheduler: world.scheduler,
        random: new SeededRandomSource(1),
        stateMachines: [machine],
        options: { batchWaitMs },
      });
      await expect(start).rejects.toThrow(PaxosError);
      await expect(start).rejects.toMatchObject({ code: 'E_BAD_ARGUMENT' });
    }
  });
});
