// A sliding-window rate (instances and bytes per second over the last few seconds), for the
// catch-up and per-peer figures of status(). Time comes from the caller (sans-IO).

const BUCKETS = 10;

export class RateWindow {
  private readonly bucketMs: number;
  private readonly instances = new Float64Array(BUCKETS);
  private readonly bytes = new Float64Array(BUCKETS);
  /** Index (time / bucketMs) of the newest bucket written. */
  private newest = -1;

  constructor(windowMs: number) {
    this.bucketMs = Math.max(1, windowMs / BUCKETS);
  }

  add(nowMs: number, instances: number, bytes: number): void {
    const slot = this.advance(nowMs);
    this.instances[slot] = this.instances[slot]! + instances;
    this.bytes[slot] = this.bytes[slot]! + bytes;
  }

  /** Per second over the window (or over the time since `sinceMs`, when that is shorter). */
  rates(nowMs: number, sinceMs: number): { instancesPerSec: number; bytesPerSec: number } {
    this.advance(nowMs);
    let n = 0;
    let b = 0;
    for (let i = 0; i < BUCKETS; i++) {
      n += this.instances[i]!;
      b += this.bytes[i]!;
    }
    const spanMs = Math.min(BUCKETS * this.bucketMs, Math.max(nowMs - sinceMs, this.bucketMs));
    return { instancesPerSec: (n * 1000) / spanMs, bytesPerSec: (b * 1000) / spanMs };
  }

  /** Clears the buckets that fell out of the window; returns the slot of `nowMs`. */
  private advance(nowMs: number): number {
    const index = Math.floor(nowMs / this.bucketMs);
    if (this.newest < 0) this.newest = index;
    if (index > this.newest) {
      const stale = Math.min(BUCKETS, index - this.newest);
      for (let k = 1; k <= stale; k++) {
        const slot = (this.newest + k) % BUCKETS;
        this.instances[slot] = 0;
        this.bytes[slot] = 0;
      }
      this.newest = index;
    }
    return ((Math.max(index, this.newest) % BUCKETS) + BUCKETS) % BUCKETS;
  }
}
