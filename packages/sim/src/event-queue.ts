// The simulator's virtual time: a priority queue of callbacks ordered by (time, insertion order),
// so two runs with the same seed execute the same callbacks in the same order.

interface Entry {
  label: string;
  atMs: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

export class EventQueue {
  private heap: Entry[] = [];
  private seq = 0;
  nowMs = 0;

  get size(): number {
    return this.heap.length;
  }

  /** Schedules fn at absolute virtual time atMs (not before now); returns a cancel function. */
  /** Label of the last event run (for diagnosing storms). */
  lastLabel = '';

  at(atMs: number, fn: () => void, label = ''): () => void {
    const entry: Entry = {
      label,
      atMs: Math.max(atMs, this.nowMs),
      seq: this.seq++,
      fn,
      cancelled: false,
    };
    this.push(entry);
    return () => {
      entry.cancelled = true;
    };
  }

  /** Time of the next live event, or undefined. */
  peekTime(): number | undefined {
    while (this.heap.length > 0 && this.heap[0]!.cancelled) this.pop();
    return this.heap[0]?.atMs;
  }

  /** Runs the next live event (advancing now); false when there is none. */
  runNext(): boolean {
    while (this.heap.length > 0) {
      const entry = this.pop();
      if (entry.cancelled) continue;
      this.nowMs = Math.max(this.nowMs, entry.atMs);
      this.lastLabel = entry.label;
      entry.fn();
      return true;
    }
    return false;
  }

  private less(a: Entry, b: Entry): boolean {
    return a.atMs !== b.atMs ? a.atMs < b.atMs : a.seq < b.seq;
  }

  private push(entry: Entry): void {
    const h = this.heap;
    h.push(entry);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private pop(): Entry {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
