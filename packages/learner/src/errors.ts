import { TspaxosError } from '@tspaxos/crc-wasm';

export type LearnerErrorCode = 'E_BAD_ARGUMENT';

/** A learner option (or argument) out of its range, refused at construction. */
export class LearnerError extends TspaxosError {
  declare readonly code: LearnerErrorCode;

  constructor(code: LearnerErrorCode, message: string) {
    super(code, message);
  }
}
