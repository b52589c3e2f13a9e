import { TspaxosError } from '@tspaxos/core';

export type StorageErrorCode =
  /** A stored record's bytes are damaged (CRC, layout, or filed under the wrong instance). */
  | 'E_CORRUPT_RECORD'
  /** A stored meta value's bytes are damaged (CRC). */
  | 'E_CORRUPT_META'
  /** An argument is not what the API takes (group, key, value type, option). */
  | 'E_BAD_ARGUMENT'
  /** An instance id or ballot field is not a safe non-negative integer. */
  | 'E_UNSAFE_INTEGER'
  /** A value is larger than StorageOptions.maxValueBytes. */
  | 'E_VALUE_TOO_LARGE'
  /** The database file cannot be opened or is not a tspaxos log. */
  | 'E_OPEN_FAILED'
  /** Another process (or another store in this one) has the log open. */
  | 'E_LOCKED'
  /** The log was written by a newer tspaxos (its schema version is higher than ours). */
  | 'E_SCHEMA_TOO_NEW'
  /** The file, its directory or the disk refuses writes. */
  | 'E_READ_ONLY'
  /** The disk (or the configured maximum database size) is full. */
  | 'E_DISK_FULL'
  /** Any other I/O failure; after a failed fsync every later write fails with it too. */
  | 'E_IO'
  /** The store was closed. */
  | 'E_CLOSED';

/** A storage failure or refused input, with a stable code and, where known, the record's place. */
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
