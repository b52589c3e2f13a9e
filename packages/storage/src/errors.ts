import { TspaxosError } from '@tspaxos/crc-wasm';

export type StorageErrorCode =
  | 'E_CORRUPT_RECORD'
  | 'E_BAD_ARGUMENT'
  | 'E_UNSAFE_INTEGER'
  | 'E_VALUE_TOO_LARGE'
  | 'E_OPEN_FAILED'
  | 'E_SCHEMA_TOO_NEW'
  | 'E_READ_ONLY'
  | 'E_DISK_FULL'
  | 'E_IO'
  | 'E_CLOSED';

/** A storage failure or refused input, with a stable code (and, for records, where). */
export class StorageError extends TspaxosError {
  declare readonly code: StorageErrorCode;
  readonly group: number | undefined;
  readonly instanceId: number | undefined;

  constructor(
    code: StorageErrorCode,
    message: string,
    where: { group?: number; instanceId?: number; cause?: unknown } = {},
  ) {
    super(code, message, where.cause === undefined ? undefined : { cause: where.cause });
    this.group = where.group;
    this.instanceId = where.instanceId;
  }
}
