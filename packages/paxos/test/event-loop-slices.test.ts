// No single synchronous stretch of a group's work may block the event loop for long: a replay of
// 50,000 records at start, and a backlog of tasks in the IOLoop, yield to the event loop every
// MAX_SYNC_SLICE_MS (through the Scheduler). Measured the way a server would feel it: a 1 ms
// interval timer counts how often it got to run while the work went on, and the longest stretch
// of CPU time between two of its ticks. Before the slices, the timer did not run once during either.
import { SeededRandomSource } from '@tspaxos/core';
import { MemoryLogStore } from '@tspaxos/storage';
import { MemoryNetwork } from '@tspaxos/transport';
import { describe, expect, it } from 'vitest';
import { realRandom, realScheduler } from '../src/adapters/node-entry';
import { IOLoop } from '../src/io-loop';
import { startNode, packValue, type StateMachine } from '../src/internal';

/** Busy work of `ms` milliseconds: what an expensive execute() or task does to the loop. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // spin
  }
}

/** CPU time this process has used, in ms (every thread; the work here runs on the main one). */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/**
 * Runs `work` while a 1 ms interval timer watches the event loop: how often it got to run, and
 * the longest stretch between two of its ticks, as CPU time used (the synchronous work done in
 * that stretch; on a loaded machine the wall-clock gap also holds the time the OS ran others).
 */
async function watchEventLoop(work: () => Promise<void>) {
  let ticks = 0;
  let lastCpu = cpuMs();
  let longestStretchCpuMs = 0;
  const timer = setInterval(() => {
    const now = cpuMs();
    longestStretchCpuMs = Math.max(longestStretchCpuMs, now - lastCpu);
    lastCpu = now;
    ticks++;
  }, 1);
  const cpu0 = cpuMs();
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  const totalCpuMs = cpuMs() - cpu0;
  longestStretchCpuMs = Math.max(longestStretchCpuMs, cpuMs() - lastCpu);
  return { ticks, longestStretchCpuMs, totalCpuMs };
}

// MAX_SYNC_SLICE_MS is 5 ms; the bound leaves room for a task that straddles a slice, a garbage
// collection and the timer's own work. The work below takes well over 4× the bound in CPU time,
// and without slices the longest stretch is all of it and the timer never ticks during it.
const STRETCH_BOUND_MS = 50;

describe('synchronous stretches stay short', () => {
  it('replays a 50,000-record log at start in slices', async () => {
    const RECORDS = 50_000;
    const store = new MemoryLogStore();
    for (let at = 0; at < RECORDS; at += 1000) {
      const records = Array.from({ length: 1000 }, (_, i) => ({
        instanceId: at + i,
        promiseId: 1,
        promiseNodeId: 1,
        acceptedId: 1,
        acceptedNodeId: 1,
        value: packValue(10, new TextEncoder().encode(`v${at + i}`)),
        checksum: 0,
      }));
      await store.putMany(0, records, { sync: false });
    }
    let applied = 0;
    const machine: StateMachine = {
      smId: 10,
      execute() {
        busy(0.02);
        applied++;
      },
    };
    let node: Awaited<ReturnType<typeof startNode>> | undefined;
    const watched = await watchEventLoop(async () => {
      node = await startNode({
        nodeId: 1,
        cluster: [1],
        groups: 1,
        store,
        network: new MemoryNetwork({ rng: new SeededRandomSource(1) }).endpoint(1),
        scheduler: realScheduler(),
        random: realRandom(),
        stateMachines: [machine],
      });
    });
    await node!.stop();
    // The highest record may not be chosen yet: replay stops before it.
    expect(applied).toBe(RECORDS - 1);
    expect(watched.totalCpuMs).toBeGreaterThan(4 * STRETCH_BOUND_MS); // so the test can fail
    expect(watched.ticks).toBeGreaterThanOrEqual(5);
    expect(watched.longestStretchCpuMs).toBeLessThan(STRETCH_BOUND_MS);
  });

  it('runs an IOLoop backlog in slices', async () => {
    const errors: unknown[] = [];
    const loop = new IOLoop(realScheduler(), 1_000_000, (e) => errors.push(e));
    let ran = 0;
    const watched = await watchEventLoop(async () => {
      for (let i = 0; i < 20_000; i++)
        loop.enqueue(() => {
          busy(0.05);
          ran++;
        });
      await loop.idle();
    });
    expect(ran).toBe(20_000);
    expect(errors).toEqual([]);
    expect(watched.totalCpuMs).toBeGreaterThan(4 * STRETCH_BOUND_MS);
    expect(watched.ticks).toBeGreaterThanOrEqual(5);
    expect(watched.longestStretchCpuMs).toBeLessThan(STRETCH_BOUND_MS);
  });
});
