import { type InvariantError, TspaxosError } from '@tspaxos/core';

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
  /** A broken invariant of our own code (assert, InvariantError): a bug; the group stopped (invariantStop). */
  | 'E_INVARIANT';

/** An error of the consensus layer, with a stable code. */
export class PaxosError extends TspaxosError {
  declare readonly code: PaxosErrorCode;

  constructor(code: PaxosErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
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
