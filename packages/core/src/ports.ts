// The ports through which the cores reach time, randomness and logs (style.md 1, 2). Each is
// injected: the simulator passes virtual, seeded ones; servers pass the real ones.

/**
 * Time for the cores (style.md 2): a core never reads a real clock or sets a real timer; the
 * simulator passes a virtual scheduler, apps pass realScheduler() of `@tspaxos/paxos/node`.
 */
export interface Scheduler {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  /** Runs fn once after delayMs; returns a function that cancels it. */
  schedule(delayMs: number, fn: () => void): () => void;
  /**
   * Resolves after the event loop has run other work (I/O, timers). Long work (a log replay, a
   * backlog of tasks) awaits it every MAX_SYNC_SLICE_MS. Optional: without it, schedule(0, …).
   */
  yieldToEventLoop?(): Promise<void>;
}

/** Uniform randomness for jitter, ids and fault injection (the simulator seeds it). */
export interface RandomSource {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [0, maxExclusive). */
  int(maxExclusive: number): number;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** A structured log line: a level, an event name (kebab-case) and its fields. */
export type Logger = (level: LogLevel, event: string, fields: Record<string, unknown>) => void;

/** The ports a node's cores run on, as one bundle. */
export interface Runtime {
  readonly scheduler: Scheduler;
  readonly random: RandomSource;
  readonly logger: Logger;
}
