// The LogStore port: what the consensus cores need from the paxos log, and the argument checks
// every implementation shares.
import type { AcceptorRecord } from '@tspaxos/crc-wasm';
import { StorageError } from './errors';
import type { StorageOptions } from './options';

export interface WriteOptions {
  /**
   * true: on disk (fsynced) before the promise resolves: acceptor promises and accepts.
   * false: survives a process crash, may be lost on power loss: learned values (PhxPaxos
   * LearnValue writes with bSync = false).
   */
  sync: boolean;
}

/** Per-group metadata slots; any other string is allowed too. */
export type MetaKey =
  'checkpointInstanceId' | 'systemVariables' | 'masterVariables' | (string & {});

export interface LogStore {
  /** Resolves once the write is as durable as `sync` asks. Rejects with StorageError. */
  put(group: number, record: AcceptorRecord, opts: WriteOptions): Promise<void>;
  /** Several records in one transaction: all or none. */
  putMany(group: number, records: readonly AcceptorRecord[], opts: WriteOptions): Promise<void>;
  /** Synchronous. Throws StorageError E_CORRUPT_RECORD when the stored bytes are damaged. */
  get(group: number, instanceId: number): AcceptorRecord | undefined;
  /** Records with fromInstanceId <= id < toInstanceIdExclusive, ascending. */
  range(
    group: number,
    fromInstanceId: number,
    toInstanceIdExclusive: number,
  ): IterableIterator<AcceptorRecord>;
  maxInstanceId(group: number): number | undefined;
  /** The lowest instance still in the log (0 when never set). */
  getMinChosenInstanceId(group: number): number;
  setMinChosenInstanceId(group: number, instanceId: number): Promise<void>;
  getMeta(group: number, key: MetaKey): Uint8Array | undefined;
  setMeta(group: number, key: MetaKey, value: Uint8Array, opts: WriteOptions): Promise<void>;
  /** Deletes at most maxRecords records with id < instanceId; returns how many. Bounded work. */
  deleteBelow(group: number, instanceId: number, maxRecords: number): number;
  clearGroup(group: number): Promise<void>;
  close(): Promise<void>;
}

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
      {
        group,
        instanceId: record.instanceId,
      },
    );
  }
}

export function checkMetaKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > 128) {
    throw new StorageError('E_BAD_ARGUMENT', 'meta key must be a string of 1 … 128 characters');
  }
}

export function encodeInstanceId(id: number): Uint8Array {
  return new TextEncoder().encode(String(id));
}

export function decodeInstanceId(bytes: Uint8Array | undefined, group: number): number {
  if (bytes === undefined) return 0;
  const id = Number(new TextDecoder().decode(bytes));
  if (!Number.isSafeInteger(id) || id < 0) {
    throw new StorageError(
      'E_CORRUPT_RECORD',
      `stored min chosen instance id is not a safe integer`,
      { group },
    );
  }
  return id;
}
