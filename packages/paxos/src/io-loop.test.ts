// The IOLoop's two priorities on a virtual event loop: background work (the learner's stream,
// scheduleIdle) runs in slices in the loop's idle time, so a message that arrives while a slice
// runs waits for that slice only, never behind a run of them. Time is virtual: a slice and a
// message "cost" virtual milliseconds; the event loop is modelled as Node's: poll (I/O arrives)
// then check (setImmediate callbacks, i.e. yieldToEventLoop). Also: the work the loop defers to
// the next turn (enqueueNextTurn, afterThisTurnIf) runs after what was queued for that check phase.
import { describe, expect, it } from 'vitest';
import type { UnsafeFaults } from './faults';
import { IOLoop } from './io-loop';
import { MAX_SYNC_SLICE_MS } from './options';
import type { Scheduler } from '@tspaxos/core';

/** Node's event loop reduced to what the IOLoop uses: a clock, and setImmediate. */
class VirtualEventLoop implements Scheduler {
  nowMs = 0;
  private immediates: Array<() => void> = [];

  now(): number {
    return this.nowMs;
  }

  schedule(): () => void {
    throw new Error('the scenario uses no timers');
  }

  yieldToEventLoop(): Promise<void> {
    return new Promise((resolve) => this.immediates.push(resolve));
  }

  /** The check phase: runs the callbacks queued before it. */
  runImmediates(): number {
    const due = this.immediates;
    this.immediates = [];
    for (const resolve of due) resolve();
    return due.length;
  }

  get pendingImmediates(): number {
    return this.immediates.length;
  }
}

/** Lets every promise chain settle (the virtual clock does not move meanwhile). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const SLICE_MS = 1;
const SLICES = 200;
const MESSAGE_COST_MS = 0.2;

/**
 * A background stream of SLICES slices of SLICE_MS each, rescheduling itself as the learner's
 * sender does, while messages arrive every 2.4 ms (never aligned with the slices). Returns how
 * long each message waited between its arrival and the start of its handling.
 */
async function scenario(faults: Pick<UnsafeFaults, 'backgroundWorkAsTasks'> = {}) {
  const ev = new VirtualEventLoop();
  const errors: unknown[] = [];
  const loop = new IOLoop(ev, 1000, (error) => errors.push(error), faults);
  let slicesRun = 0;
  const slice = (): void => {
    ev.nowMs += SLICE_MS;
    slicesRun++;
    if (slicesRun < SLICES) loop.scheduleIdle(slice);
  };
  loop.scheduleIdle(slice);
  const arrivals = Array.from({ length: 60 }, (_, i) => 0.3 + i * 2.4);
  const waits: number[] = [];
  let next = 0;
  for (let turn = 0; turn < 100_000; turn++) {
    // Poll: every message that has arrived by now is read and queued.
    while (next < arrivals.length && arrivals[next]! <= ev.nowMs) {
      const arrivedAt = arrivals[next++]!;
      loop.enqueueMessage(() => {
        waits.push(ev.nowMs - arrivedAt);
        ev.nowMs += MESSAGE_COST_MS;
      });
    }
    await settle();
    // Check: setImmediate callbacks (the loop's yields, the idle lane).
    ev.runImmediates();
    await settle();
    if (ev.pendingImmediates === 0 && loop.length === 0) {
      if (next >= arrivals.length) break;
      ev.nowMs = Math.max(ev.nowMs, arrivals[next]!); // nothing to do until the next arrival
    }
  }
  await loop.idle();
  expect(errors).toEqual([]);
  return { waits, slicesRun, counters: loop.counters };
}

describe('IOLoop: background work runs in the idle time', () => {
  it('a message waits behind at most the one slice already running', async () => {
    const { waits, slicesRun, counters } = await scenario();
    expect(waits).toHaveLength(60);
    expect(Math.max(...waits)).toBeLessThanOrEqual(SLICE_MS);
    // Most messages did land in a slice (the stream was busy), and the stream still finished.
    expect(waits.filter((w) => w > 0).length).toBeGreaterThan(30);
    expect(slicesRun).toBe(SLICES);
    expect(counters.idleTasksRun).toBe(SLICES);
    expect(counters.tasksRun).toBe(SLICES + 60);
  });

  it('a slice never starts while a message is queued', async () => {
    const ev = new VirtualEventLoop();
    const loop = new IOLoop(ev, 10, (error) => {
      throw error;
    });
    const order: string[] = [];
    loop.scheduleIdle(() => void order.push('slice'));
    loop.enqueueMessage(() => void order.push('message 1'));
    // The yield before the slice is pending; meanwhile a second message arrives.
    loop.enqueueMessage(() => void order.push('message 2'));
    await settle();
    ev.runImmediates();
    await settle();
    expect(order).toEqual(['message 1', 'message 2', 'slice']);
    expect(loop.counters.idleTasksRun).toBe(1);
  });

  it('a cancelled slice does not run; stop() drops pending ones', async () => {
    const ev = new VirtualEventLoop();
    const loop = new IOLoop(ev, 10, (error) => {
      throw error;
    });
    let ran = 0;
    const cancel = loop.scheduleIdle(() => void ran++);
    cancel();
    loop.scheduleIdle(() => void ran++);
    await loop.stop();
    ev.runImmediates();
    await settle();
    expect(ran).toBe(0);
    expect(loop.counters.idleTasksRun).toBe(0);
  });

  it('planted bug: background work queued as ordinary tasks delays a message behind a run of slices', async () => {
    const { waits, slicesRun } = await scenario({ backgroundWorkAsTasks: true });
    expect(slicesRun).toBe(SLICES);
    // The loop runs queued tasks back to back for MAX_SYNC_SLICE_MS before it polls I/O again.
    expect(Math.max(...waits)).toBeGreaterThan(SLICE_MS);
    expect(Math.max(...waits)).toBeGreaterThanOrEqual(MAX_SYNC_SLICE_MS - SLICE_MS);
  });
});

describe('IOLoop: work after the event loop has turned (issue 22)', () => {
  it('enqueueNextTurn runs its task only after the check phase, behind what was queued there first', async () => {
    const ev = new VirtualEventLoop();
    const loop = new IOLoop(ev, 10, (error) => {
      throw error;
    });
    const order: string[] = [];
    // What a broadcast does: the transport's flush is queued first (a setImmediate), then the
    // local copy of the message.
    void ev.yieldToEventLoop().then(() => order.push('flush'));
    loop.enqueueNextTurn(() => void order.push('local copy'));
    loop.enqueue(() => void order.push('this turn'));
    await settle();
    expect(order).toEqual(['this turn']);
    ev.runImmediates();
    await settle();
    expect(order).toEqual(['this turn', 'flush', 'local copy']);
    expect(loop.counters.nextTurnTasks).toBe(1);
    expect(loop.counters.tasksRun).toBe(2);
    // Stopped: nothing is queued any more.
    await loop.stop();
    loop.enqueueNextTurn(() => void order.push('after stop'));
    ev.runImmediates();
    await settle();
    expect(order).toHaveLength(3);
    expect(loop.counters.nextTurnTasks).toBe(1);
  });

  it('afterThisTurnIf, a turn needed, waits behind I/O queued later in the same synchronous stretch, and hands what it throws to onError', async () => {
    const ev = new VirtualEventLoop();
    const errors: unknown[] = [];
    const loop = new IOLoop(ev, 10, (error) => errors.push(error));
    const order: string[] = [];
    // The committer answers, then (same stretch) the next instance's Accept is queued.
    loop.afterThisTurnIf(
      () => true,
      () => void order.push('answer'),
    );
    void ev.yieldToEventLoop().then(() => order.push('flush of the next Accept'));
    loop.afterThisTurnIf(
      () => true,
      () => {
        throw new TypeError('planted: an answer throws');
      },
    );
    await settle();
    expect(order).toEqual([]);
    ev.runImmediates();
    await settle();
    expect(order).toEqual(['flush of the next Accept', 'answer']);
    expect(loop.counters.afterTurnCallbacks).toBe(2);
    expect(loop.counters.taskErrors).toBe(1);
    expect(errors).toHaveLength(1);
    expect(String(errors[0])).toContain('planted: an answer throws');
  });

  it('afterThisTurnIf decides a microtask later: at once when nothing needs the turn, after it when something does', async () => {
    const ev = new VirtualEventLoop();
    const errors: unknown[] = [];
    const loop = new IOLoop(ev, 10, (error) => errors.push(error));
    const order: string[] = [];
    let nextInFlight = false;
    // Nothing in flight at the decision: answered before any turn.
    loop.afterThisTurnIf(
      () => nextInFlight,
      () => void order.push('lone answer'),
    );
    await settle();
    expect(order).toEqual(['lone answer']);
    // The next value is taken later in the same stretch: the decision sees it and waits the turn.
    loop.afterThisTurnIf(
      () => nextInFlight,
      () => void order.push('answer'),
    );
    nextInFlight = true;
    void ev.yieldToEventLoop().then(() => order.push('flush of the next Accept'));
    await settle();
    expect(order).toEqual(['lone answer']);
    ev.runImmediates();
    await settle();
    expect(order).toEqual(['lone answer', 'flush of the next Accept', 'answer']);
    // What it throws at once goes to onError, as after a turn.
    nextInFlight = false;
    loop.afterThisTurnIf(
      () => nextInFlight,
      () => {
        throw new TypeError('planted: a lone answer throws');
      },
    );
    await settle();
    expect(loop.counters.atOnceCallbacks).toBe(2);
    expect(loop.counters.afterTurnCallbacks).toBe(1);
    expect(loop.counters.taskErrors).toBe(1);
    expect(String(errors[0])).toContain('planted: a lone answer throws');
  });
});
