import type { RandomSource, Scheduler } from '../scheduler';

/** The real clock and timers, for servers (the simulator brings its own). */
export function realScheduler(): Scheduler {
  return {
    now: () => performance.now(),
    schedule(delayMs, fn) {
      const handle = setTimeout(fn, Math.max(0, delayMs));
      return () => clearTimeout(handle);
    },
  };
}

/** Math.random as a RandomSource, for servers. */
export function realRandom(): RandomSource {
  return { next: () => Math.random() };
}
