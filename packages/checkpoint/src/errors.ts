import { TspaxosError } from '@tspaxos/crc-wasm';

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

/** What assert() throws: a bug of our own code, never bad input; no code, never caught. */
export class InvariantError extends Error {}

/** A broken invariant of our own code: a bug, never bad input (style.md 10). */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantError(`tspaxos invariant violated: ${message}`);
}

/**
 * True for a coded error of any tspaxos package. Checked against TspaxosError (one class, from
 * @tspaxos/crc-wasm) rather than CheckpointError, because the `fs` entry bundles its own copy of
 * CheckpointError.
 */
export function isCodedError(error: unknown): error is TspaxosError {
  return error instanceof TspaxosError;
}
