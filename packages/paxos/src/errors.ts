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
  | 'E_MEMBERSHIP_CONFLICT';

/** An error of the consensus layer, with a stable code. */
export class PaxosError extends TspaxosError {
  declare readonly code: PaxosErrorCode;

  constructor(code: PaxosErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** A broken invariant of our own code: a bug, never bad input (STYLE.md 10). */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`tspaxos invariant violated: ${message}`);
}
