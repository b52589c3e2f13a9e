// The LogStore port: what the consensus cores need from the paxos log (design.md §5), and the
// argument checks every implementation shares, so both refuse the same input the same way.
import type { AcceptorRecord } from '@tspaxos/crc-wasm';
import { StorageError } from './errors';
import type { StorageOptions } from './options';

export interface WriteOptions {
  /**
   * true: on disk (fsynced) before the promise resolves: acceptor promises and accepts.
   * false: survives a process crash, may be lost on power loss: learned values (PhxPaxos
   * LearnValue writes with bSync = false). A later sync:true write makes every earlier write
   * durable too.
   */
  sync: boolean;
}

export interface ResetOptions {
  /** The min chosen instance id the emptied group starts from (a checkpoint's instance id). */
  minChosenInstanceId: number;
}

/** Per-group metadata slots; any other string is allowed too. */
export type MetaKey =
  'checkpointInstanceId' | 'systemVariables' | 'masterVariables' | (string & {});

export interface LogStore {
  /** This store's limits, when it has them (a node checks its maxValueBytes fits them). */
  readonly options?: Readonly<StorageOptions>;
  /**
   * True when put/putMany keep no view of a record's value once they return (its bytes are
   * written to the OS, or copied): the caller may then reuse that memory (a catch-up's receive
   * buffers, issue 22). Absent: the store may hold the caller's views (MemoryLogStore does).
   */
  readonly copiesValues?: boolean;
  /** Resolves once the write is as durable as `sync` asks. Rejects with StorageError. */
  put(group: number, record: AcceptorRecord, opts: WriteOptions): Promise<void>;
  /** Several records in one transaction: all or none (a bad record writes nothing). */
  putMany(group: number, records: readonly AcceptorRecord[], opts: WriteOptions): Promise<void>;
  /** Synchronous. Throws StorageError E_CORRUPT_RECORD when the stored bytes are damaged. */
  get(group: number, instanceId: number): AcceptorRecord | undefined;
  /**
   * Records with fromInstanceId <= id < toInstanceIdExclusive, ascending, read lazily in bounded
   * chunks. Writes made while the iterator is open are allowed; each may or may not be seen.
   */
  range(
    group: number,
    fromInstanceId: number,
    toInstanceIdExclusive: number,
  ): IterableIterator<AcceptorRecord>;
  maxInstanceId(group: number): number | undefined;
  /** The lowest instance still in the log (0 when never set). */
  getMinChosenInstanceId(group: number): number;
  /** Durable (sync) before it resolves. */
  setMinChosenInstanceId(group: number, instanceId: number): Promise<void>;
  /** A copy of the stored bytes. Throws E_CORRUPT_META when they are damaged. */
  getMeta(group: number, key: MetaKey): Uint8Array | undefined;
  setMeta(group: number, key: MetaKey, value: Uint8Array, opts: WriteOptions): Promise<void>;
  /**
   * Deletes the lowest records with id < instanceId, at most min(maxRecords,
   * options.maxDeleteRecords) of them and about options.maxDeleteBytes of stored bytes (at least
   * one record when any qualifies); returns how many. Bounded work per call: the cleaner calls
   * it until it returns 0. Not durable by itself (deleted records may come back after a power
   * cut, which is harmless).
   */
  deleteBelow(group: number, instanceId: number, maxRecords: number): number;
  /** Removes every record and meta value of the group, durably. */
  clearGroup(group: number): Promise<void>;
  /**
   * In one transaction: removes every record of the group (and its segment files) and sets its
   * min chosen instance id; its other meta values stay. Durable before it resolves. Installing
   * a checkpoint starts the group's log over with it.
   */
  resetGroup(group: number, opts: ResetOptions): Promise<void>;
  /** Waits for pending syncs, then releases the log. Every later call fails with E_CLOSED. */
  close(): Promise<void>;
}

/** Meta key under which the min chosen instance id is kept. */
export const MIN_CHOSEN_KEY = 'minChosenInstanceId';

export function checkGroup(group: number, options: StorageOptions): void {
  if (!Number.isSafeInteger(group) || group < 0 || group > options.maxGroup) {
    throw new StorageError(
      'E_BAD_ARGUMENT',
      `group must be an integer in 0 … ${options.maxGroup}, got ${String(group)}`,
    );
  }
}

export function checkInstanceId(instanceId: number, group: number): void {
  if (!Number.isSafeInteger(instanceId) || instanceId < 0) {
    throw new StorageError(
      'E_UNSAFE_INTEGER',
      `instance id must be a safe non-negative integer, got ${String(instanceId)}`,
      { group },
    );
  }
}

/** Checks what the codec does not know about (the configured value limit); the codec checks the rest. */
export function checkRecordArgument(
  group: number,
  record: AcceptorRecord,
  options: StorageOptions,
): void {
  if (typeof record !== 'object' || record === null)
    throw new StorageError('E_BAD_ARGUMENT', 'record must be an object', { group });
  checkInstanceId(record.instanceId, group);
  if (!(record.value instanceof Uint8Array)) {
    throw new StorageError('E_BAD_ARGUMENT', 'record value must be a Uint8Array', {
      group,
      instanceId: record.instanceId,
    });
  }
  if (record.value.length > options.maxValueBytes) {
    throw new StorageError(
      'E_VALUE_TOO_LARGE',
      `value of ${record.value.length} bytes exceeds the maximum of ${options.maxValueBytes}`,
      { group, instanceId: record.instanceId },
    );
  }
}

export function checkRecords(group: number, records: readonly AcceptorRecord[]): void {
  if (!Array.isArray(records))
    throw new StorageError('E_BAD_ARGUMENT', 'records must be an array', { group });
}

export function checkMetaKey(key: string, group: number, options: StorageOptions): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > options.maxMetaKeyLength) {
    throw new StorageError(
      'E_BAD_ARGUMENT',
      `meta key must be a string of 1 … ${options.maxMetaKeyLength} characters`,
      { group },
    );
  }
}

export function checkMetaValue(value: Uint8Array, group: number, options: StorageOptions): void {
  if (!(value instanceof Uint8Array))
    throw new StorageError('E_BAD_ARGUMENT', 'meta value must be a Uint8Array', { group });
  if (value.length > options.maxValueBytes) {
    throw new StorageError(
      'E_VALUE_TOO_LARGE',
      `meta value of ${value.length} bytes exceeds the maximum of ${options.maxValueBytes}`,
      { group },
    );
  }
}

/** The number of records deleteBelow may remove in this call. */
export function deleteLimit(maxRecords: number, group: number, options: StorageOptions): number {
  if (!Number.isSafeInteger(maxRecords) || maxRecords < 0) {
    throw new StorageError(
      'E_BAD_ARGUMENT',
      `maxRecords must be a non-negative integer, got ${String(maxRecords)}`,
      { group },
    );
  }
  return Math.min(maxRecords, options.maxDeleteRecords);
}

/**
 * How many of the lowest records (their stored sizes in ascending id order) one deleteBelow call
 * removes: as many as fit in maxDeleteBytes, and always the first.
 */
export function deleteCount(sizes: Iterable<number>, options: StorageOptions): number {
  let count = 0;
  let bytes = 0;
  for (const size of sizes) {
    if (count > 0 && bytes + size > options.maxDeleteBytes) break;
    bytes += size;
    count++;
  }
  return count;
}

/** The min chosen instance id as stored: decimal ASCII (readable with the sqlite3 shell). */
export function encodeInstanceId(id: number): Uint8Array {
  return new TextEncoder().encode(String(id));
}

export function decodeInstanceId(bytes: Uint8Array | undefined, group: number): number {
  if (bytes === undefined) return 0;
  const text = new TextDecoder().decode(bytes);
  const id = /^(0|[1-9][0-9]{0,15})$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(id)) {
    throw new StorageError(
      'E_CORRUPT_META',
      `group ${group}: stored min chosen instance id ${JSON.stringify(text.slice(0, 32))} is not a safe integer`,
      { group },
    );
  }
  return id;
}
