// The node-wide byte budget of the learner senders (ours, design.md §3): every group's sender takes
// the bytes of a batch from it before sending and gives them back when the batch is acked (or
// its stream ends), so however many peers and groups stream at once, the values in flight stay
// under one bound. The node creates one and hands it to every group.
import { assert } from '@tspaxos/core';
import { LearnerError } from './errors';

export interface SenderBudgetCounters {
  /** A sender wanted bytes and found the budget spent (it waits for a release). */
  exhausted: number;
}

export class SenderBudget {
  /** Bytes taken and not yet released. Invariant: 0 <= usedBytes. */
  usedBytes = 0;
  readonly counters: SenderBudgetCounters = { exhausted: 0 };
  private waiters: Array<() => void> = [];

  constructor(readonly capacityBytes: number) {
    if (!Number.isSafeInteger(capacityBytes) || capacityBytes < 1)
      throw new LearnerError(
        'E_BAD_ARGUMENT',
        `senderBudgetBytes must be a positive safe integer, got ${capacityBytes}`,
      );
  }

  get availableBytes(): number {
    return Math.max(0, this.capacityBytes - this.usedBytes);
  }

  /**
   * Takes `bytes` when they fit, or when nothing at all is in flight (one value larger than the
   * whole budget must still be able to go, alone). False, counted, when it must wait.
   */
  tryTake(bytes: number): boolean {
    if (this.usedBytes + bytes > this.capacityBytes && this.usedBytes > 0) {
      this.counters.exhausted++;
      return false;
    }
    this.usedBytes += bytes;
    return true;
  }

  release(bytes: number): void {
    if (bytes === 0) return;
    assert(
      bytes > 0 && bytes <= this.usedBytes,
      `release ${bytes} B with ${this.usedBytes} in use`,
    );
    this.usedBytes -= bytes;
    const waiters = this.waiters;
    if (waiters.length === 0) return;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** Calls `wake` once, at the next release (a sender blocked on the budget resumes then). */
  waitForRelease(wake: () => void): void {
    if (!this.waiters.includes(wake)) this.waiters.push(wake);
  }
}
