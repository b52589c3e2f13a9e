import { TspaxosError } from '@tspaxos/crc-wasm';

export type LearnerErrorCode = 'E_BAD_ARGUMENT';

/** An error of the learner with a stable code (a bad option or argument from the caller). */
export class LearnerError extends TspaxosError {
  declare readonly code: LearnerErrorCode;

  constructor(code: LearnerErrorCode, message: string) {
    super(code, message);
  }
}

/** A broken invariant of our own code: a bug, never bad input (STYLE.md 10). */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`tspaxos learner invariant violated: ${message}`);
}
