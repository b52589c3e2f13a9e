// The closed-loop wait (issue 22), written once for its two users: the paxos batch instance
// (`@tspaxos/paxos` proposing.ts, options.batchWaitMs) and the node's shared read barriers
// (apps/node shared-barrier.ts, --batch-wait-ms). Both send a batch (an instance of batched
// values, a barrier shared by the reads waiting for it) whose callers are answered when it
// settles and, being a closed loop, come back a round trip later. Without a wait the first one
// back starts the next batch alone while the rest miss it and ride the one after: the callers
// split into halves riding every other batch. So when a batch settles, the next one waits for as
// many callers as the settled one served plus those that waited already (its target), every
// caller of the closed loop. While fewer wait it waits, at most waitMs (a wait, counted once); it
// starts as soon as the target is reached (a filled wait, counted too). A wait that runs out
// starts the batch for whoever waits, and the next CLOSED_LOOP_WAIT_PAUSE batches do not wait:
// callers that do not come back, or come back later than the wait, cost one wait per that many
// batches instead of one per batch. waitMs 0 never waits.
//
// The helper keeps only that rule: the target, the timer of the wait and the pause. What counts
// as a caller, what the target is (the paxos one is capped by batchMaxValues and is 0 after a
// lost instance), when a batch settles or starts, and whether the batch at hand may wait at all
// stay with the user, who tells the helper. Time comes in through an injected schedule (the shape
// of Scheduler.schedule): the paxos group passes its IOLoop's, the node a real timer's, the tests
// a fake one, so the helper itself sets no timer (style.md 2).

/** Batches that do not wait after a wait ran out (ours; PhxPaxos has no batch wait). */
export const CLOSED_LOOP_WAIT_PAUSE = 8;

/** What a ClosedLoopWait is given: its time limit, its timer, and whom it tells. */
export interface ClosedLoopWaitOptions {
  /** How long the next batch may wait for its callers, in milliseconds (0: it never waits). */
  readonly waitMs: number;
  /** Runs fn once after delayMs and returns a function that cancels it (Scheduler.schedule). */
  readonly schedule: (delayMs: number, fn: () => void) => () => void;
  /**
   * The wait ran out: the user starts the next batch for whoever waits (or, with nobody waiting,
   * the next caller starts it at once). The pause has begun when this runs.
   */
  readonly ranOut: () => void;
  /** A wait began (once per wait, however many checks it lasts). */
  readonly onWait?: () => void;
  /** A wait ended because as many callers as its target waited before its timer ran out. */
  readonly onFilled?: () => void;
}

/** The wait of the next batch for the callers of a closed loop (see the comment above). */
export class ClosedLoopWait {
  private targetCallers = 0;
  /** Cancels the timer of the wait under way (undefined: no wait). */
  private cancelTimer: (() => void) | undefined;
  /**
   * Batch starts left before a batch may wait again, after a wait ran out: one more than
   * CLOSED_LOOP_WAIT_PAUSE, since the batch the ran-out wait starts counts itself down too.
   */
  private pauseLeft = 0;

  constructor(private readonly options: ClosedLoopWaitOptions) {}

  /** How many callers the next batch waits for (set by settled()). */
  get target(): number {
    return this.targetCallers;
  }

  /** True while a wait is under way (its timer runs). */
  get isWaiting(): boolean {
    return this.cancelTimer !== undefined;
  }

  /**
   * A batch settled: the next one waits for `target` callers (the user's count of those the
   * settled one served plus those waiting already; 0: it does not wait).
   */
  settled(target: number): void {
    this.targetCallers = target;
  }

  /** A batch started (with or without a wait): the pause after a ran-out wait counts down. */
  started(): void {
    if (this.pauseLeft > 0) this.pauseLeft--;
  }

  /**
   * True while the next batch waits, `waiting` callers being there now; the user checks again
   * whenever that may have changed (a caller came, the batch in flight settled) and starts the
   * batch when this is false. The first true begins a wait and its timer (onWait); a false ends
   * the wait under way, if any, counting it filled (onFilled) when `waiting` reached the target.
   * `mayWait` false: the batch at hand may not wait (the paxos queue's head is not a batch
   * value), so it ends a wait under way as well.
   */
  waits(waiting: number, mayWait = true): boolean {
    const waitingAlready = this.cancelTimer !== undefined;
    if (
      mayWait &&
      this.pauseLeft === 0 &&
      this.options.waitMs > 0 &&
      waiting < this.targetCallers
    ) {
      if (!waitingAlready) {
        this.options.onWait?.();
        this.cancelTimer = this.options.schedule(this.options.waitMs, () => {
          this.cancelTimer = undefined;
          this.pauseLeft = CLOSED_LOOP_WAIT_PAUSE + 1;
          this.options.ranOut();
        });
      }
      return true;
    }
    if (waitingAlready) {
      if (waiting >= this.targetCallers) this.options.onFilled?.();
      this.cancel();
    }
    return false;
  }

  /** Ends the wait under way, if any, without counting it (the user stops). */
  cancel(): void {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
  }
}
