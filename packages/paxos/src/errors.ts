import { type InvariantError, TspaxosError } from '@tspaxos/core';

/**
 * What a failed call did, for a caller deciding what to do next. `rejected`: nothing of this
 * call will ever be chosen (safe to try again, or to give up). `unknown`: the value may have been
 * chosen, or may still be: retry only an idempotent operation, or read before retrying.
 */
export type PaxosOutcome = 'rejected' | 'unknown';

/**
 * Every code a PaxosError is thrown with, its default outcome and whether trying the same call
 * again later may succeed. A call site that knows better (a proposal rejected before it was ever
 * proposed) passes its own outcome; `unknown` is the safe claim, `rejected` a promise.
 */
export const PAXOS_ERROR_CODES = {
  /** The proposal did not finish in time; it may or may not be chosen later. */
  E_TIMEOUT: { outcome: 'unknown', retryable: true },
  /** The node (or group) stopped: pending proposals may have been chosen before it did. */
  E_STOPPED: { outcome: 'unknown', retryable: false },
  /** A group index the node does not host. */
  E_BAD_GROUP: { outcome: 'rejected', retryable: false },
  /** An argument out of its documented range. */
  E_BAD_ARGUMENT: { outcome: 'rejected', retryable: false },
  E_VALUE_TOO_LARGE: { outcome: 'rejected', retryable: false },
  /** The group's proposal queue is full: try again once it drains. */
  E_QUEUE_FULL: { outcome: 'rejected', retryable: true },
  /** A follower never proposes: send the value to a voting member. */
  E_FOLLOWER: { outcome: 'rejected', retryable: false },
  /** This node is not a voting member of the group (now). */
  E_NOT_MEMBER: { outcome: 'rejected', retryable: false },
  E_UNKNOWN_STATE_MACHINE: { outcome: 'rejected', retryable: false },
  /** The value was chosen but this node's state machine threw; it is retried here. */
  E_EXECUTE_FAILED: { outcome: 'unknown', retryable: false },
  /** The logs diverged: the group stopped. */
  E_CHECKSUM_MISMATCH: { outcome: 'unknown', retryable: false },
  /** A write to the log failed; the group stopped (a store refuses writes after a failed fsync). */
  E_STORAGE: { outcome: 'unknown', retryable: false },
  /** changeMembership: the membership changed since it was read; read it again and retry. */
  E_MEMBERSHIP_CONFLICT: { outcome: 'rejected', retryable: true },
  /** The group waits for a checkpoint from a peer before it can go on. */
  E_NEEDS_CHECKPOINT: { outcome: 'unknown', retryable: true },
  /** The group restarted from a received checkpoint: a pending proposal may be in it. */
  E_CHECKPOINT_INSTALLED: { outcome: 'unknown', retryable: true },
  E_CHECKPOINT_INSTALL_FAILED: { outcome: 'unknown', retryable: false },
  /** The caller's AbortSignal fired: the wait ended, a value already handed over may be chosen. */
  E_ABORTED: { outcome: 'unknown', retryable: true },
  /** A broken invariant of our own code (assert): a bug; the group stopped (Group.taskFailed). */
  E_INVARIANT: { outcome: 'unknown', retryable: false },
  /**
   * Forwarding (forwarding.ts): another node holds the master lease, so this one did not propose
   * the user value (never proposed, or lost its instance: never chosen); or no master holds a
   * lease to answer a read index.
   */
  E_NOT_MASTER: { outcome: 'rejected', retryable: true },
  /** The master holding the lease is not reachable from this node: nothing was sent. */
  E_MASTER_UNREACHABLE: { outcome: 'rejected', retryable: true },
  /** A majority of the group's members is not reachable from this node: nothing was proposed. */
  E_NO_QUORUM: { outcome: 'rejected', retryable: true },
  /** A forwarded value's fate is not known (the master failed or went away after taking it). */
  E_OUTCOME_UNKNOWN: { outcome: 'unknown', retryable: true },
} as const satisfies Record<string, { outcome: PaxosOutcome; retryable: boolean }>;

export type PaxosErrorCode = keyof typeof PAXOS_ERROR_CODES;

/** An error of the consensus layer, with a stable code, its outcome and whether to retry. */
export class PaxosError extends TspaxosError {
  declare readonly code: PaxosErrorCode;
  /** Whether the failed call may still have its effect (see PaxosOutcome). */
  readonly outcome: PaxosOutcome;
  /** Whether the same call, tried again later, may succeed. */
  readonly retryable: boolean;

  constructor(
    code: PaxosErrorCode,
    message: string,
    options?: { cause?: unknown; outcome?: PaxosOutcome },
  ) {
    super(code, message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    const kind = PAXOS_ERROR_CODES[code] as { outcome: PaxosOutcome; retryable: boolean };
    this.outcome = options?.outcome ?? kind?.outcome ?? 'unknown';
    this.retryable = kind?.retryable ?? false;
  }

  /** The same error, said of a call that certainly had no effect (never proposed). */
  asRejected(): PaxosError {
    if (this.outcome === 'rejected') return this;
    return new PaxosError(this.code, this.message, { cause: this, outcome: 'rejected' });
  }
}

/**
 * The reason a group stops with when a broken invariant (InvariantError of @tspaxos/core, thrown
 * by assert() in paxos, learner or checkpoint code) reaches it: a PaxosError like every other
 * stop reason, so pending and later proposals are rejected with a code the callers know.
 */
export function invariantStop(error: InvariantError): PaxosError {
  return new PaxosError('E_INVARIANT', error.message, { cause: error });
}
