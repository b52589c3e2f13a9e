import { TspaxosError } from '@tspaxos/core';

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
