/**
 * Time for the cores (STYLE.md 2): the node never reads a real clock or sets a real timer; the
 * simulator passes a virtual scheduler, apps pass realScheduler().
 */
export interface Scheduler {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  /** Runs fn once after delayMs; returns a function that cancels it. */
  schedule(delayMs: number, fn: () => void): () => void;
}

/** Uniform randomness for jitter and ids (the simulator seeds it). */
export interface RandomSource {
  /** Uniform in [0, 1). */
  next(): number;
}
