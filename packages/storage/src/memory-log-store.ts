// MemoryLogStore: the LogStore for the deterministic simulator (design.md §5). It behaves as the
// SQLite store does, byte for byte (records are kept as encodeRecord bytes and meta values with
// their CRC, so damage reads as the same errors), and it models power loss: `sync: false` writes
// are visible at once but become durable only when a later `sync: true` write (or flush()) makes
// everything before it durable, like an fsync of SQLite's WAL; crash() throws away every write
// not yet durable. No timers, no clock, no randomness; promises settle in call order (FIFO).
//
// With a DurabilityPort (the simulator's), a `sync: true` write is durable only when its promise
// resolves, after a simulated fsync the port times (group commit: one fsync at a time covers every
// write made before it started); crash() between the write and its resolution loses it. A failed
// fsync rejects the writes it covered with E_IO and the store refuses every later write, as
// SqliteLogStore does.
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
  type ResetOptions,
  type WriteOptions,
} from './log-store';
import { resolveStorageOptions, type StorageOptions } from './options';

/** Sans-IO port for the simulated fsync: the simulator's clock and its seeded choices. */
export interface DurabilityPort {
  /** Runs fn after delayMs of (virtual) time. */
  schedule(delayMs: number, fn: () => void): void;
  /** How long the next fsync takes (ms). */
  fsyncDelayMs(): number;
  /** Whether the next fsync fails (then the store refuses every later write with E_IO). */
  fsyncFails(): boolean;
}

interface PendingSync {
  /** Undo position the write reached: durable once an fsync covering it completes. */
  mark: number;
  resolve: () => void;
  reject: (error: unknown) => void;
}

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
  /** Undo entries already dropped (made durable): undo[i] is write number undoBase + i. */
  private undoBase = 0;
  private closed = false;
  private readonly durability: DurabilityPort | undefined;
  /** sync:true writes waiting for an fsync (only with a DurabilityPort). */
  private waiting: PendingSync[] = [];
  private fsyncRunning = false;
  /** Bumped by crash(): an fsync begun before it completes into nothing. */
  private epoch = 0;
  /** Set by a failed fsync: every later write fails with it. */
  private failure: StorageError | undefined;
  /** For tests: how many times everything was made durable. */
  syncs = 0;
  /** fsyncs that failed (only with a DurabilityPort). */
  fsyncFailures = 0;

  constructor(options: Partial<StorageOptions> = {}, durability?: DurabilityPort) {
    this.options = resolveStorageOptions(options);
    this.durability = durability;
  }

  /** The error every write fails with after a failed fsync, if one failed. */
  get failedWith(): StorageError | undefined {
    return this.failure;
  }

  /** Writes refused: closed, or poisoned by a failed fsync. */
  private writable(): void {
    this.open();
    if (this.failure !== undefined) throw this.failure;
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
    if (!opts.sync) return Promise.resolve();
    const port = this.durability;
    if (port === undefined) {
      this.flush();
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      this.waiting.push({ mark: this.undoBase + this.undo.length, resolve, reject });
      if (!this.fsyncRunning) this.startFsync(port);
    });
  }

  /** One simulated fsync covering every write made so far; the next starts when it ends. */
  private startFsync(port: DurabilityPort): void {
    this.fsyncRunning = true;
    const epoch = this.epoch;
    const mark = this.undoBase + this.undo.length;
    port.schedule(port.fsyncDelayMs(), () => {
      if (epoch !== this.epoch) return; // the machine crashed meanwhile: nothing became durable
      this.fsyncRunning = false;
      if (this.failure === undefined && port.fsyncFails()) {
        this.fsyncFailures++;
        this.failure = new StorageError(
          'E_IO',
          'fsync failed (simulated); the log refuses further writes',
        );
      }
      const covered = this.waiting.filter((w) => w.mark <= mark);
      this.waiting = this.waiting.filter((w) => w.mark > mark);
      if (this.failure !== undefined) {
        const failure = this.failure;
        for (const w of [...covered, ...this.waiting]) w.reject(failure);
        this.waiting = [];
        return;
      }
      this.makeDurable(mark);
      for (const w of covered) w.resolve();
      if (this.waiting.length > 0) this.startFsync(port);
    });
  }

  /** Writes up to undo position `mark` survive a crash from now on. */
  private makeDurable(mark: number): void {
    const n = Math.min(this.undo.length, mark - this.undoBase);
    if (n <= 0) return;
    this.undo.splice(0, n);
    this.undoBase += n;
    this.syncs++;
  }

  /** Makes every write so far durable (an fsync, at once, whatever the port). */
  flush(): void {
    this.undoBase += this.undo.length;
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
    this.undoBase += this.undo.length;
    this.undo = [];
    this.closed = false;
    // Writes waiting for an fsync never settle: the process that made them is gone.
    this.waiting = [];
    this.fsyncRunning = false;
    this.epoch++;
  }

  /** The disk was replaced (simulator): a store that refused writes after a failed fsync works again. */
  repair(): void {
    this.failure = undefined;
  }

  /** A restart without power loss: open again (after close()), nothing lost. */
  reopen(): void {
    this.closed = false;
  }

  put(group: number, record: AcceptorRecord, opts: WriteOptions): Promise<void> {
    try {
      this.writable();
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
      this.writable();
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
      this.writable();
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
      this.writable();
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
      this.writable();
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

  resetGroup(group: number, opts: ResetOptions): Promise<void> {
    const id = opts?.minChosenInstanceId;
    try {
      this.open();
      checkGroup(group, this.options);
      checkInstanceId(id, group);
    } catch (e) {
      return Promise.reject(e);
    }
    const g = this.groups.get(group);
    if (g !== undefined) this.deletePrefix(group, g, g.ids.length);
    this.setMetaBytes(group, MIN_CHOSEN_KEY, sealMeta(MIN_CHOSEN_KEY, encodeInstanceId(id)));
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
