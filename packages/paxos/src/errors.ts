import { TspaxosError } from '@tspaxos/crc-wasm';

export type PaxosErrorCode =
  | 'E_TIMEOUT'
  | 'E_STOPPED'
  | 'E_GROUP_STOPPED'
  | 'E_BAD_GROUP'
  | 'E_BAD_ARGUMENT'
  | 'E_VALUE_TOO_LARGE'
  | 'E_QUEUE_FULL'
  | 'E_FOLLOWER'
  | 'E_NOT_MEMBER'
  | 'E_UNKNOWN_STATE_MACHINE'
  | 'E_EXECUTE_FAILED'
  | 'E_CHECKSUM_MISMATCH'
  /** A write to the log failed; the group stopped (a store refuses writes after a failed fsync). */
  | 'E_STORAGE'
  | 'E_MEMBERSHIP_CONFLICT'
  | 'E_NEEDS_CHECKPOINT'
  | 'E_CHECKPOINT_INSTALLED'
  | 'E_CHECKPOINT_INSTALL_FAILED'
  /** A broken invariant of our own code (assert): a bug; the group stopped (Group.taskFailed). */
  | 'E_INVARIANT'
  /**
   * Forwarding (forwarding.ts): another node holds the master lease, so this one does not propose
   * the user value (it was never proposed, or lost its instance: never chosen); or no master
   * holds a lease to answer a read index.
   */
  | 'E_NOT_MASTER'
  /** The master holding the lease is not reachable from this node: nothing was sent. */
  | 'E_MASTER_UNREACHABLE'
  /** A majority of the group's members is not reachable from this node: nothing was proposed. */
  | 'E_NO_QUORUM'
  /** A forwarded value's fate is not known (the master failed or went away after taking it). */
  | 'E_OUTCOME_UNKNOWN';

/** An error of the consensus layer, with a stable code. */
export class PaxosError extends TspaxosError {
  declare readonly code: PaxosErrorCode;

  constructor(code: PaxosErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/**
 * What assert() throws: a bug of our own code, never bad input. Coded (E_INVARIANT) so that a
 * group it reaches stops with it, and the callers whose proposals were pending learn why.
 */
export class InvariantError extends PaxosError {
  declare readonly code: 'E_INVARIANT';

  constructor(message: string) {
    super('E_INVARIANT', `tspaxos invariant violated: ${message}`);
  }
}

/**
 * A broken invariant of our own code: a bug, never bad input (style.md 10). On a hot path pass a
 * constant message (a template literal allocates even when the condition holds).
 */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantError(message);
}
