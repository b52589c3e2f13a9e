// No single synchronous stretch of a group's work may block the event loop for long: a replay of
// 50,000 records at start, and a backlog of tasks in the IOLoop, yield to the event loop every
// MAX_SYNC_SLICE_MS (through the Scheduler). Measured the way a server would feel it: a 1 ms
// interval timer counts how often it got to run while the work went on, and the most work items
// done between two of its ticks. Each item spins for a fixed wall-clock time, so a slice holds at
// most MAX_SYNC_SLICE_MS / that many items however loaded the machine is (a load only makes
// slices hold fewer); a bound on CPU or wall time per stretch failed on a loaded CI box (55 ms
// against 50). Before the slices, the timer did not run once during either.
import { SeededRandomSource } from '@tspaxos/core';
import { MemoryLogStore } from '@tspaxos/storage';
import { MemoryNetwork } from '@tspaxos/transport';
import { describe, expect, it } from 'vitest';
import { realRandom, realScheduler } from '../src/adapters/node-entry';
import { IOLoop } from '../src/io-loop';
import { MAX_SYNC_SLICE_MS } from '../src/options';
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
 * the most work items (counted by `done()`) done between two of its ticks.
 */
async function watchEventLoop(done: () => number, work: () => Promise<void>) {
  let ticks = 0;
  let lastDone = done();
  let mostItemsPerStretch = 0;
  const timer = setInterval(() => {
    const now = done();
    mostItemsPerStretch = Math.max(mostItemsPerStretch, now - lastDone);
    lastDone = now;
    ticks++;
  }, 1);
  const cpu0 = cpuMs();
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  const totalCpuMs = cpuMs() - cpu0;
  mostItemsPerStretch = Math.max(mostItemsPerStretch, done() - lastDone);
  console.log(
    `${done()} items in ${totalCpuMs.toFixed(0)} ms CPU; ${ticks} ticks; at most ${mostItemsPerStretch} items between two`,
  );
  return { ticks, mostItemsPerStretch, totalCpuMs };
}

/**
 * The most items of `itemMs` (wall clock, at least) a stretch between two ticks may hold: a
 * slice ends once MAX_SYNC_SLICE_MS has passed, so it holds at most MAX_SYNC_SLICE_MS / itemMs
 * items, plus the one that straddles its end; the timer may run after every other slice only
 * (both wait on the timers phase), and the rest covers the timer's own lateness. Without slices
 * a stretch holds all the work.
 */
const itemsBound = (itemMs: number) => 4 * Math.ceil(MAX_SYNC_SLICE_MS / itemMs);

describe('synchronous stretches stay short', () => {
  it('replays a 50,000-record log at start in slices', async () => {
    const RECORDS = 50_000;
    const RECORD_MS = 0.02;
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
        busy(RECORD_MS);
        applied++;
      },
    };
    let node: Awaited<ReturnType<typeof startNode>> | undefined;
    const watched = await watchEventLoop(
      () => applied,
      async () => {
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
      },
    );
    await node!.stop();
    // The highest record may not be chosen yet: replay stops before it.
    expect(applied).toBe(RECORDS - 1);
    // So the test can fail: the work is many slices' worth, in time and in items.
    expect(watched.totalCpuMs).toBeGreaterThan(20 * MAX_SYNC_SLICE_MS);
    expect(RECORDS).toBeGreaterThan(10 * itemsBound(RECORD_MS));
    expect(watched.mostItemsPerStretch).toBeLessThanOrEqual(itemsBound(RECORD_MS));
    expect(watched.ticks).toBeGreaterThanOrEqual(5);
  });

  it('runs an IOLoop backlog in slices', async () => {
    const errors: unknown[] = [];
    const loop = new IOLoop(realScheduler(), 1_000_000, (e) => errors.push(e));
    let ran = 0;
    const TASKS = 20_000;
    const TASK_MS = 0.05;
    const watched = await watchEventLoop(
      () => ran,
      async () => {
        for (let i = 0; i < TASKS; i++)
          loop.enqueue(() => {
            busy(TASK_MS);
            ran++;
          });
        await loop.idle();
      },
    );
    expect(ran).toBe(TASKS);
    expect(errors).toEqual([]);
    expect(watched.totalCpuMs).toBeGreaterThan(20 * MAX_SYNC_SLICE_MS);
    expect(TASKS).toBeGreaterThan(10 * itemsBound(TASK_MS));
    expect(watched.mostItemsPerStretch).toBeLessThanOrEqual(itemsBound(TASK_MS));
    expect(watched.ticks).toBeGreaterThanOrEqual(5);
  });
});
