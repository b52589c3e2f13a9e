// MemoryLogStore: the LogStore for the deterministic simulator (DESIGN §5). It behaves as the
// SQLite store does, byte for byte (records are kept as encodeRecord bytes and meta values with
// their CRC, so damage reads as the same errors), and it models power loss: `sync: false` writes
// are visible at once but become durable only when a later `sync: true` write (or flush()) makes
// everything before it durable, like an fsync of SQLite's WAL; crash() throws away every write
// not yet durable. No timers, no clock, no randomness; promises settle in call order (FIFO).
import type { AcceptorRecord } from '@tspaxos/crc-wasm';
import { decodeStored, encodeStored, openMeta, sealMeta } from './codec';
import { StorageError } from './errors';
import {
  checkGroup,
  checkInstanceId,
  checkMetaKey,
  checkMetaValue,
  checkRecordArgument,
  checkRecords,
  decodeInstanceId,
  deleteCount,
  deleteLimit,
  encodeInstanceId,
  type LogStore,
  type MetaKey,
  MIN_CHOSEN_KEY,
  type WriteOptions,
} from './log-store';
import { resolveStorageOptions, type StorageOptions } from './options';

interface GroupData {
  records: Map<number, Uint8Array>;
  /** The keys of `records`, ascending: range, max and deleteBelow without sorting. */
  ids: number[];
  meta: Map<string, Uint8Array>;
}

/** Undo entry for a write not yet durable: what the slot held before. */
type Undo =
  | { group: number; kind: 'record'; id: number; before: Uint8Array | undefined }
  | { group: number; kind: 'meta'; key: string; before: Uint8Array | undefined };

/** Index of the first element of the ascending `ids` that is >= id. */
function lowerBound(ids: readonly number[], id: number): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ids[mid]! < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class MemoryLogStore implements LogStore {
  readonly options: StorageOptions;
  private readonly groups = new Map<number, GroupData>();
  private undo: Undo[] = [];
  private closed = false;
  /** For tests: how many times everything was made durable. */
  syncs = 0;

  constructor(options: Partial<StorageOptions> = {}) {
    this.options = resolveStorageOptions(options);
  }

  private data(group: number): GroupData {
    let g = this.groups.get(group);
    if (g === undefined) {
      g = { records: new Map(), ids: [], meta: new Map() };
      this.groups.set(group, g);
    }
    return g;
  }

  private open(): void {
    if (this.closed) throw new StorageError('E_CLOSED', 'the store is closed');
  }

  /** Sets or (bytes undefined) deletes a record slot, keeping `ids` sorted. */
  private place(g: GroupData, id: number, bytes: Uint8Array | undefined): void {
    const had = g.records.has(id);
    if (bytes === undefined) {
      if (!had) return;
      g.records.delete(id);
      g.ids.splice(lowerBound(g.ids, id), 1);
      return;
    }
    g.records.set(id, bytes);
    if (had) return;
    const last = g.ids[g.ids.length - 1];
    if (last === undefined || id > last)
      g.ids.push(id); // appends are the common case
    else g.ids.splice(lowerBound(g.ids, id), 0, id);
  }

  private setRecord(group: number, id: number, bytes: Uint8Array | undefined): void {
    const g = this.data(group);
    this.undo.push({ group, kind: 'record', id, before: g.records.get(id) });
    this.place(g, id, bytes);
  }

  /** Deletes the `count` lowest records in one splice (not one per record). */
  private deletePrefix(group: number, g: GroupData, count: number): number {
    for (let i = 0; i < count; i++) {
      const id = g.ids[i]!;
      this.undo.push({ group, kind: 'record', id, before: g.records.get(id) });
      g.records.delete(id);
    }
    g.ids.splice(0, count);
    return count;
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

  /** Makes every write so far durable (an fsync). */
  flush(): void {
    this.undo = [];
    this.syncs++;
  }

  /**
   * Power loss and restart: every write not yet durable is gone, and the store is open again
   * (also after close()), as a node's log is when its process starts over the same directory.
   */
  crash(): void {
    for (let i = this.undo.length - 1; i >= 0; i--) {
      const u = this.undo[i]!;
      const g = this.data(u.group);
      if (u.kind === 'record') this.place(g, u.id, u.before);
      else if (u.before === undefined) g.meta.delete(u.key);
      else g.meta.set(u.key, u.before);
    }
    this.undo = [];
    this.closed = false;
  }

  /** A restart without power loss: open again (after close()), nothing lost. */
  reopen(): void {
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
      checkRecords(group, records);
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

  range(
    group: number,
    fromInstanceId: number,
    toInstanceIdExclusive: number,
  ): IterableIterator<AcceptorRecord> {
    // Arguments are checked at the call, not at the first next(), as the SQLite store does.
    this.open();
    checkGroup(group, this.options);
    checkInstanceId(fromInstanceId, group);
    checkInstanceId(toInstanceIdExclusive, group);
    return this.iterate(group, fromInstanceId, toInstanceIdExclusive);
  }

  private *iterate(group: number, from: number, to: number): IterableIterator<AcceptorRecord> {
    // Looks the next id up again at every step, so writes and deletes made while the iterator is
    // open neither break it nor make it repeat a record.
    let next = from;
    while (next < to) {
      this.open();
      const g = this.groups.get(group);
      if (g === undefined) return;
      const id = g.ids[lowerBound(g.ids, next)];
      if (id === undefined || id >= to) return;
      next = id + 1;
      yield decodeStored(group, id, g.records.get(id)!);
    }
  }

  maxInstanceId(group: number): number | undefined {
    this.open();
    checkGroup(group, this.options);
    const ids = this.groups.get(group)?.ids;
    return ids === undefined ? undefined : ids[ids.length - 1];
  }

  getMinChosenInstanceId(group: number): number {
    return decodeInstanceId(this.readMeta(group, MIN_CHOSEN_KEY), group);
  }

  setMinChosenInstanceId(group: number, instanceId: number): Promise<void> {
    try {
      this.open();
      checkGroup(group, this.options);
      checkInstanceId(instanceId, group);
    } catch (e) {
      return Promise.reject(e);
    }
    this.setMetaBytes(
      group,
      MIN_CHOSEN_KEY,
      sealMeta(MIN_CHOSEN_KEY, encodeInstanceId(instanceId)),
    );
    return this.settle({ sync: true });
  }

  getMeta(group: number, key: MetaKey): Uint8Array | undefined {
    return this.readMeta(group, key);
  }

  private readMeta(group: number, key: string): Uint8Array | undefined {
    this.open();
    checkGroup(group, this.options);
    checkMetaKey(key, group, this.options);
    const stored = this.groups.get(group)?.meta.get(key);
    return stored === undefined ? undefined : openMeta(group, key, stored);
  }

  setMeta(group: number, key: MetaKey, value: Uint8Array, opts: WriteOptions): Promise<void> {
    try {
      this.open();
      checkGroup(group, this.options);
      checkMetaKey(key, group, this.options);
      if (key === MIN_CHOSEN_KEY) {
        throw new StorageError('E_BAD_ARGUMENT', `use setMinChosenInstanceId to set ${key}`, {
          group,
        });
      }
      checkMetaValue(value, group, this.options);
    } catch (e) {
      return Promise.reject(e);
    }
    this.setMetaBytes(group, key, sealMeta(key, value));
    return this.settle(opts);
  }

  deleteBelow(group: number, instanceId: number, maxRecords: number): number {
    this.open();
    checkGroup(group, this.options);
    checkInstanceId(instanceId, group);
    const limit = deleteLimit(maxRecords, group, this.options);
    const g = this.groups.get(group);
    if (g === undefined) return 0;
    const candidates = g.ids.slice(0, Math.min(limit, lowerBound(g.ids, instanceId)));
    const sizes = candidates.map((id) => g.records.get(id)!.length);
    return this.deletePrefix(group, g, deleteCount(sizes, this.options));
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
      this.deletePrefix(group, g, g.ids.length);
      for (const key of [...g.meta.keys()]) this.setMetaBytes(group, key, undefined);
    }
    return this.settle({ sync: true });
  }

  resetGroup(group: number, opts: { minChosenInstanceId: number }): Promise<void> {
    try {
      this.open();
      checkGroup(group, this.options);
      checkInstanceId(opts?.minChosenInstanceId, group);
    } catch (e) {
      return Promise.reject(e);
    }
    const g = this.data(group);
    // Both changes sit in the undo log until the flush below: a crash before it restores both.
    this.deletePrefix(group, g, g.ids.length);
    this.setMetaBytes(
      group,
      MIN_CHOSEN_KEY,
      sealMeta(MIN_CHOSEN_KEY, encodeInstanceId(opts.minChosenInstanceId)),
    );
    return this.settle({ sync: true });
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** For tests: flips bits of a stored record's bytes, as a bad disk would. */
  corrupt(group: number, instanceId: number, byteOffset: number, mask = 0x01): void {
    const g = this.groups.get(group);
    const bytes = g?.records.get(instanceId);
    if (g === undefined || bytes === undefined)
      throw new StorageError('E_BAD_ARGUMENT', 'no such record', { group, instanceId });
    const copy = bytes.slice();
    copy[byteOffset % copy.length]! ^= mask;
    g.records.set(instanceId, copy);
  }

  /** For tests: flips bits of a stored meta value (including its CRC trailer). */
  corruptMeta(group: number, key: string, byteOffset: number, mask = 0x01): void {
    const g = this.groups.get(group);
    const bytes = g?.meta.get(key);
    if (g === undefined || bytes === undefined)
      throw new StorageError('E_BAD_ARGUMENT', 'no such meta value', { group });
    const copy = bytes.slice();
    copy[byteOffset % copy.length]! ^= mask;
    g.meta.set(key, copy);
  }
}
