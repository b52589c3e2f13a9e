import type { RandomSource, Scheduler } from '@tspaxos/core';

/** The real clock and timers, for servers (the simulator brings its own). */
export function realScheduler(): Scheduler {
  return {
    now: () => performance.now(),
    schedule(delayMs, fn) {
      const handle = setTimeout(fn, Math.max(0, delayMs));
      return () => clearTimeout(handle);
    },
    // setImmediate runs after pending I/O without setTimeout's 1 ms minimum.
    yieldToEventLoop: () => new Promise((resolve) => setImmediate(resolve)),
  };
}

/** Math.random as a RandomSource, for servers. */
export function realRandom(): RandomSource {
  return {
    next: () => Math.random(),
    int: (maxExclusive) => Math.floor(Math.random() * maxExclusive),
  };
}
