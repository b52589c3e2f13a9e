import type { Scheduler } from '@tspaxos/core';

/** True for a promise or any thenable (a state machine may return either). */
export function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** Lets the event loop run: through the scheduler's yield, or a 0 ms timer. */
export function yieldToEventLoop(scheduler: Scheduler): Promise<void> {
  if (scheduler.yieldToEventLoop) return scheduler.yieldToEventLoop();
  return new Promise((resolve) => {
    scheduler.schedule(0, resolve);
  });
}

/**
 * Measures stretches of synchronous work on the scheduler's clock: `due()` is true once the
 * current stretch has run for MAX_SYNC_SLICE_MS, and `yield()` lets the event loop run and starts
 * a new stretch. On a virtual clock (the simulator) time does not pass inside a stretch, so it
 * never yields there and runs stay deterministic.
 */
export class SyncSlice {
  private startMs: number;

  constructor(
    private readonly scheduler: Scheduler,
    private readonly maxMs: number,
  ) {
    this.startMs = scheduler.now();
  }

  due(): boolean {
    return this.scheduler.now() - this.startMs >= this.maxMs;
  }

  async yield(): Promise<void> {
    await yieldToEventLoop(this.scheduler);
    this.startMs = this.scheduler.now();
  }
}
