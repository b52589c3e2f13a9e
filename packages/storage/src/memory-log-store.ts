// MemoryLogStore: the LogStore for the simulator. It models power loss: `sync: false` writes
// are visible at once but become durable only when a later `sync: true` write (or flush()) makes
// everything before it durable, like an fsync of SQLite's WAL; crash() throws away every write not
// yet durable. No timers, no clock, no randomness; promises resolve in FIFO order.
import type { AcceptorRecord } from '@tspaxos/crc-wasm';
import { decodeStored, encodeStored } from './codec';
import { StorageError } from './errors';
import {
  checkGroup,
  checkInstanceId,
  checkMetaKey,
  checkRecordArgument,
  decodeInstanceId,
  encodeInstanceId,
  type LogStore,
  type MetaKey,
  MIN_CHOSEN_KEY,
  type WriteOptions,
} from './log-store';
import { DEFAULT_STORAGE_OPTIONS, type StorageOptions } from './options';

interface GroupData {
  records: Map<number, Uint8Array>;
  meta: Map<string, Uint8Array>;
}

/** Undo entry for a write not yet durable: what the slot held before. */
type Undo =
  | { group: number; kind: 'record'; id: number; before: Uint8Array | undefined }
  | { group: number; kind: 'meta'; key: string; before: Uint8Array | undefined };

export class MemoryLogStore implements LogStore {
  readonly options: StorageOptions;
  private readonly groups = new Map<number, GroupData>();
  private undo: Undo[] = [];
  private closed = false;
  /** For tests: how many times everything was made durable. */
  syncs = 0;

  constructor(options: Partial<StorageOptions> = {}) {
    this.options = { ...DEFAULT_STORAGE_OPTIONS, ...options };
  }

  private data(group: number): GroupData {
    let g = this.groups.get(group);
    if (g === undefined) {
      g = { records: new Map(), meta: new Map() };
      this.groups.set(group, g);
    }
    return g;
  }

  private open(): void {
    if (this.closed) throw new StorageError('E_CLOSED', 'the store is closed');
  }

  private setRecord(group: number, id: number, bytes: Uint8Array | undefined): void {
    const g = this.data(group);
    this.undo.push({ group, kind: 'record', id, before: g.records.get(id) });
    if (bytes === undefined) g.records.delete(id);
    else g.records.set(id, bytes);
  }

  private setMetaBytes(group: number, key: string, bytes: Uint8Array | undefined): void {
    const g = this.data(group);
    this.undo.push({ group, kind: 'meta', key, before: g.meta.get(key) });
    if (bytes === undefined) g.meta.delete(key);
    else g.meta.set(key, bytes);
  }

  private settle(opts: WriteOptions): Promise<void> {
    if (opts.sync) this.flush();
    return Promise.resolve();
  }

  /** Makes every write so far durable. */
  flush(): void {
    this.undo = [];
    this.syncs++;
  }

  /** Power loss: every write not yet durable is gone. The store stays usable (a restart). */
  crash(): void {
    for (let i = this.undo.length - 1; i >= 0; i--) {
      const u = this.undo[i]!;
      const g = this.data(u.group);
      if (u.kind === 'record') {
        if (u.before === undefined) g.records.delete(u.id);
        else g.records.set(u.id, u.before);
      } else if (u.before === undefined) g.meta.delete(u.key);
      else g.meta.set(u.key, u.before);
    }
    this.undo = [];
    this.closed = false;
  }

  put(group: number, record: AcceptorRecord, opts: WriteOptions): Promise<void> {
    try {
      this.open();
      checkGroup(group, this.options);
      checkRecordArgument(group, record, this.options);
      this.setRecord(group, record.instanceId, encodeStored(group, record));
    } catch (e) {
      return Promise.reject(e);
    }
    return this.settle(opts);
  }

  putMany(group: number, records: readonly AcceptorRecord[], opts: WriteOptions): Promise<void> {
    let encoded: Array<[number, Uint8Array]>;
    try {
      this.open();
      checkGroup(group, this.options);
      encoded = records.map((r) => {
        checkRecordArgument(group, r, this.options);
        return [r.instanceId, encodeStored(group, r)];
      });
    } catch (e) {
      return Promise.reject(e); // nothing written: all or none
    }
    for (const [id, bytes] of encoded) this.setRecord(group, id, bytes);
    return this.settle(opts);
  }

  get(group: number, instanceId: number): AcceptorRecord | undefined {
    this.open();
    checkGroup(group, this.options);
    checkInstanceId(instanceId, group);
    const bytes = this.groups.get(group)?.records.get(instanceId);
    return bytes === undefined ? undefined : decodeStored(group, instanceId, bytes);
  }

  *range(
    group: number,
    fromInstanceId: number,
    toInstanceIdExclusive: number,
  ): IterableIterator<AcceptorRecord> {
    this.open();
    checkGroup(group, this.options);
    checkInstanceId(fromInstanceId, group);
    checkInstanceId(toInstanceIdExclusive, group);
    const records = this.groups.get(group)?.records;
    if (records === undefined) return;
    const ids = [...records.keys()]
      .filter((id) => id >= fromInstanceId && id < toInstanceIdExclusive)
      .sort((a, b) => a - b);
    for (const id of ids) {
      const bytes = records.get(id);
      if (bytes !== undefined) yield decodeStored(group, id, bytes);
    }
  }

  maxInstanceId(group: number): number | undefined {
    this.open();
    checkGroup(group, this.options);
    const records = this.groups.get(group)?.records;
    if (records === undefined || records.size === 0) return undefined;
    let max = -1;
    for (const id of records.keys()) if (id > max) max = id;
    return max;
  }

  getMinChosenInstanceId(group: number): number {
    return decodeInstanceId(this.getMeta(group, MIN_CHOSEN_KEY), group);
  }

  setMinChosenInstanceId(group: number, instanceId: number): Promise<void> {
    try {
      checkInstanceId(instanceId, group);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.setMeta(group, MIN_CHOSEN_KEY, encodeInstanceId(instanceId), { sync: true });
  }

  getMeta(group: number, key: MetaKey): Uint8Array | undefined {
    this.open();
    checkGroup(group, this.options);
    checkMetaKey(key);
    return this.groups.get(group)?.meta.get(key);
  }

  setMeta(group: number, key: MetaKey, value: Uint8Array, opts: WriteOptions): Promise<void> {
    try {
      this.open();
      checkGroup(group, this.options);
      checkMetaKey(key);
      if (!(value instanceof Uint8Array))
        throw new StorageError('E_BAD_ARGUMENT', 'meta value must be a Uint8Array', { group });
      if (value.length > this.options.maxValueBytes)
        throw new StorageError('E_VALUE_TOO_LARGE', 'meta value too large', { group });
    } catch (e) {
      return Promise.reject(e);
    }
    this.setMetaBytes(group, key, value.slice());
    return this.settle(opts);
  }

  deleteBelow(group: number, instanceId: number, maxRecords: number): number {
    this.open();
    checkGroup(group, this.options);
    checkInstanceId(instanceId, group);
    const limit = Math.min(Math.max(0, Math.floor(maxRecords)), this.options.maxDeleteRecords);
    const records = this.groups.get(group)?.records;
    if (records === undefined) return 0;
    const ids = [...records.keys()]
      .filter((id) => id < instanceId)
      .sort((a, b) => a - b)
      .slice(0, limit);
    for (const id of ids) this.setRecord(group, id, undefined);
    return ids.length;
  }

  clearGroup(group: number): Promise<void> {
    try {
      this.open();
      checkGroup(group, this.options);
    } catch (e) {
      return Promise.reject(e);
    }
    const g = this.groups.get(group);
    if (g !== undefined) {
      for (const id of [...g.records.keys()]) this.setRecord(group, id, undefined);
      for (const key of [...g.meta.keys()]) this.setMetaBytes(group, key, undefined);
    }
    return this.settle({ sync: true });
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** For tests: flips a bit of a stored record, as a bad disk would. */
  corrupt(group: number, instanceId: number, byteOffset: number): void {
    const bytes = this.groups.get(group)?.records.get(instanceId);
    if (bytes === undefined) throw new StorageError('E_BAD_ARGUMENT', 'no such record');
    const copy = bytes.slice();
    copy[byteOffset % copy.length]! ^= 0x01;
    this.groups.get(group)!.records.set(instanceId, copy);
  }
}
