// Consistent reads share barriers (issue 22): per group, at most one barrier is in flight; the
// reads that arrive meanwhile wait for the next one, which starts when the current one returns,
// and are all answered by it. etcd batches its ReadIndex requests the same way (a read that
// arrives while a ReadIndex round is out waits for the next round: `linearizableReadLoop`).
//
// Why a read may not join the barrier already in flight: that barrier's instance may have been
// chosen before the read began, below a write acknowledged in between; only a barrier proposed
// after the read arrived is ordered after every write completed before it.

/** The next barrier of a group, promised to the reads waiting for it before it starts. */
interface Next {
  promise: Promise<number>;
  resolve(started: Promise<number>): void;
  waiting: number;
}

interface GroupState {
  inFlight: boolean;
  next: Next | undefined;
}

/** Counters of one SharedBarriers: reads served and barriers issued for them. */
export interface SharedBarrierCounters {
  /** Reads that asked for a barrier (through()). */
  reads: number;
  /** Barriers issued (calls of `issue`). */
  issued: number;
}

export class SharedBarriers {
  private readonly groups = new Map<number, GroupState>();
  readonly counters: SharedBarrierCounters = { reads: 0, issued: 0 };

  /** `issue(g)` proposes one barrier in group g and resolves with its instance id. */
  constructor(private readonly issue: (group: number) => Promise<number>) {}

  /**
   * Resolves with the instance id of a barrier of group `g` that started after this call (so
   * it is ordered after every write completed before it), or rejects as that barrier did.
   */
  through(g: number): Promise<number> {
    this.counters.reads++;
    let state = this.groups.get(g);
    if (state === undefined) {
      state = { inFlight: false, next: undefined };
      this.groups.set(g, state);
    }
    if (!state.inFlight) return this.start(g, state);
    if (state.next === undefined) {
      let resolve!: (started: Promise<number>) => void;
      const promise = new Promise<number>((r) => (resolve = r));
      state.next = { promise, resolve, waiting: 0 };
    }
    state.next.waiting++;
    return state.next.promise;
  }

  /** Reads of group `g` waiting for the next barrier (not the one in flight). */
  waiting(g: number): number {
    return this.groups.get(g)?.next?.waiting ?? 0;
  }

  private start(g: number, state: GroupState): Promise<number> {
    state.inFlight = true;
    this.counters.issued++;
    // A synchronous throw of `issue` rejects this barrier's reads like a rejection does.
    const barrier = Promise.resolve().then(() => this.issue(g));
    const done = (): void => {
      state.inFlight = false;
      const next = state.next;
      state.next = undefined;
      if (next !== undefined) next.resolve(this.start(g, state));
    };
    barrier.then(done, done);
    return barrier;
  }
}
