/**
 * Base class of every error tspaxos reports as a value: bad input from the network, the disk or
 * the user. `code` is stable (tests and callers switch on it); `message` is for people.
 * It lives in the lowest package so that every other package shares one class.
 */
export class TspaxosError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export type CodecErrorCode =
  | 'E_TRUNCATED'
  | 'E_BAD_CRC'
  | 'E_BAD_VERSION'
  | 'E_BAD_LENGTH'
  | 'E_BAD_RESERVED'
  | 'E_UNSAFE_INTEGER'
  | 'E_BAD_VALUE';

/** A record (or an argument to encode one) that is not well formed. */
export class CodecError extends TspaxosError {
  declare readonly code: CodecErrorCode;

  constructor(code: CodecErrorCode, message: string) {
    super(code, message);
  }
}
