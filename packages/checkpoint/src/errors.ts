import { InvariantError, TspaxosError } from '@tspaxos/core';

export type CheckpointErrorCode =
  | 'E_BAD_ARGUMENT'
  | 'E_BAD_PATH'
  | 'E_NOT_FOUND'
  | 'E_NO_SPACE'
  | 'E_IO'
  | 'E_CORRUPT_MANIFEST'
  | 'E_LOAD_FAILED'
  | 'E_NEEDS_CHECKPOINT';

/** An error of the checkpoint layer, with a stable code. */
export class CheckpointError extends TspaxosError {
  declare readonly code: CheckpointErrorCode;

  constructor(code: CheckpointErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/**
 * True for a coded error of any tspaxos package: an expected condition. Checked against
 * TspaxosError (one class, from @tspaxos/core) rather than CheckpointError, because the `fs`
 * entry bundles its own copy of CheckpointError. A broken invariant (InvariantError, also coded)
 * is a bug, never an expected condition: it goes up.
 */
export function isCodedError(error: unknown): error is TspaxosError {
  return error instanceof TspaxosError && !(error instanceof InvariantError);
}
