import { TspaxosError } from '@tspaxos/core';
import { StorageError, type StorageErrorCode } from '@tspaxos/storage';

export type LearnerErrorCode = 'E_BAD_ARGUMENT';

/** An error of the learner with a stable code (a bad option or argument from the caller). */
export class LearnerError extends TspaxosError {
  declare readonly code: LearnerErrorCode;

  constructor(code: LearnerErrorCode, message: string) {
    super(code, message);
  }
}

/**
 * What a read of the log may meet from outside the code (style.md: bad input from the disk is a
 * counted drop): a damaged record (E_CORRUPT_RECORD) or a disk that fails a read (E_IO). The
 * learner counts it and goes on without that record (the asker learns it from another peer).
 * Any other error of a read (a closed store, a bad argument, a TypeError) is a bug: it goes up.
 */
export const EXPECTED_READ_FAILURES: ReadonlySet<StorageErrorCode> = new Set<StorageErrorCode>([
  'E_CORRUPT_RECORD',
  'E_IO',
]);

export function isExpectedReadFailure(error: unknown): error is StorageError {
  return error instanceof StorageError && EXPECTED_READ_FAILURES.has(error.code);
}
