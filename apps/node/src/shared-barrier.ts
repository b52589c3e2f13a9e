// Consistent reads share barriers (issue 22): per group, at most one barrier is in flight; the
// reads that arrive meanwhile wait for the next one, which starts when the current one returns,
// and are all answered by it. etcd batches its ReadIndex requests the same way (a read that
// arrives while a ReadIndex round is out waits for the next round: `linearizableReadLoop`).
//
// The wait (waitMs, the server's --batch-wait-ms): when a barrier returns, the reads it served
// come back a round trip later (closed-loop clients), and the first one back would start the next
// barrier alone while the rest missed it and waited for the one after: the readers split into
// halves riding every other barrier (7.4 reads per barrier of 16). So the next barrier waits, at
// most waitMs, until as many reads wait as the returned barrier served plus those that waited
// already; a wait that runs out starts the barrier for whoever waits, and the next
// CLOSED_LOOP_WAIT_PAUSE barriers do not wait. That rule is the paxos batch wait's (proposing.ts),
// and both use the one ClosedLoopWait of `@tspaxos/core`; what counts as a caller here (a read
// waiting) and when a barrier settles or starts stay in this file. Still no read is answered by a
// barrier that started before it arrived.
//
// Why a read may not join the barrier already in flight: that barrier's instance may have been
// chosen before the read began, below a write acknowledged in between; only a barrier proposed
// after the read arrived is ordered after every write completed before it.
import { ClosedLoopWait } from '@tspaxos/core';

/** The next barrier of a group, promised to the reads waiting for it before it starts. */
interface Next {
  promise: Promise<number>;
  resolve(started: Promise<number>): void;
  waiting: number;
}

interface GroupState {
  inFlight: boolean;
  next: Next | undefined;
  /** Reads the barrier in flight serves. */
  serving: number;
  /** The next barrier's wait for its reads (waitMs): its target, its timer and its pause. */
  wait: ClosedLoopWait;
}

/**
 * The wait's timer, a real one (the tests fake setTimeout). Not realScheduler() of
 * `@tspaxos/paxos/node`, whose module brings the SQLite store and the TCP network along.
 */
function schedule(delayMs: number, fn: () => void): () => void {
  const timer = setTimeout(fn, delayMs);
  return () => clearTimeout(timer);
}

/** Counters of one SharedBarriers: reads served and barriers issued for them. */
export interface SharedBarrierCounters {
  /** Reads that asked for a barrier (through()). */
  reads: number;
  /** Barriers issued (calls of `issue`). */
  issued: number;
  /** Barriers that waited for their reads (waitMs), and those whose reads all came in time. */
  waits: number;
  waitsFilled: number;
}

export class SharedBarriers {
  private readonly groups = new Map<number, GroupState>();
  readonly counters: SharedBarrierCounters = { reads: 0, issued: 0, waits: 0, waitsFilled: 0 };

  /**
   * `issue(g)` proposes one barrier in group g and resolves with its instance id; `waitMs`: how
   * long the next barrier may wait for the reads the last one served (0: never).
   */
  constructor(
    private readonly issue: (group: number) => Promise<number>,
    private readonly waitMs = 0,
  ) {}

  /**
   * Resolves with the instance id of a barrier of group `g` that started after this call (so
   * it is ordered after every write completed before it), or rejects as that barrier did.
   */
  through(g: number): Promise<number> {
    this.counters.reads++;
    let state = this.groups.get(g);
    if (state === undefined) {
      const created: GroupState = {
        inFlight: false,
        next: undefined,
        serving: 0,
        wait: new ClosedLoopWait({
          waitMs: this.waitMs,
          schedule,
          ranOut: () => this.release(g, created),
          onWait: () => this.counters.waits++,
          onFilled: () => this.counters.waitsFilled++,
        }),
      };
      state = created;
      this.groups.set(g, state);
    }
    if (!state.inFlight && !state.wait.isWaiting) return this.start(g, state, 1);
    if (state.next === undefined) {
      let resolve!: (started: Promise<number>) => void;
      const promise = new Promise<number>((r) => (resolve = r));
      state.next = { promise, resolve, waiting: 0 };
    }
    state.next.waiting++;
    const next = state.next.promise;
    // A wait under way ends (filled) once as many reads wait as its target.
    if (state.wait.isWaiting && !state.wait.waits(state.next.waiting)) this.release(g, state);
    return next;
  }

  /** Reads of group `g` waiting for the next barrier (not the one in flight). */
  waiting(g: number): number {
    return this.groups.get(g)?.next?.waiting ?? 0;
  }

  private start(g: number, state: GroupState, reads: number): Promise<number> {
    state.inFlight = true;
    state.serving = reads;
    state.wait.started();
    this.counters.issued++;
    // A synchronous throw of `issue` rejects this barrier's reads like a rejection does.
    const barrier = Promise.resolve().then(() => this.issue(g));
    const done = (): void => {
      state.inFlight = false;
      const waiting = state.next?.waiting ?? 0;
      state.wait.settled(state.serving + waiting);
      // The wait's timer releases the reads if they do not all come back (ranOut above).
      if (!state.wait.waits(waiting)) this.release(g, state);
    };
    barrier.then(done, done);
    return barrier;
  }

  /** Ends a wait (if any) and starts the next barrier for the reads waiting, if any. */
  private release(g: number, state: GroupState): void {
    state.wait.cancel();
    const next = state.next;
    state.next = undefined;
    if (next !== undefined) next.resolve(this.start(g, state, next.waiting));
  }
}
