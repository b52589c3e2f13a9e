// SqliteLogStore: the paxos log in one SQLite database per node data directory (better-sqlite3,
// WAL mode), plus segment files for large values. Records are stored as encodeRecord bytes in
// one table per group (schema.ts). A value above options.outOfLineValueBytes is appended to a
// segment file (segments.ts) and its row holds the record with a locator (segment, offset,
// length, CRC-32 of the value) in place of the value: PhxPaxos's layout (Database::Put in
// src/logstorage/db.cpp: a data file append plus a small LevelDB index entry), with SQLite as
// the index.
//
// Order of a write: the records' entries go to the segment (one pwritev, into the OS), then the
// index rows commit into the WAL, all inside the call. So when a call returns, a process kill can
// lose none of it; a kill before the commit leaves entries past the segment's committed end,
// which the next open replays (whole batches) or cuts (recovery.ts). The exception: a sync write
// of entries that comes while a group commit runs or is due is queued and written as the next
// round begins, or at the next call, whichever is first (group-commit.ts); a kill before then
// loses it, never acknowledged. What a power cut can lose, and when a write is durable (one
// fdatasync for records): group-commit.ts.
//
// The store checks its arguments, commits writes and delegates the rest, one mechanism a file:
// connection.ts (opening: pragmas, lock-file.ts for one process per log, schema.ts and its
// migrations), group-commit.ts (durability and the fsync rule), recovery.ts (the open's replay
// of segment entries), wal-checkpointer.ts (WAL checkpoints, their worker and the WAL's bound),
// range-reader.ts, compaction.ts.
import { fdatasync, fdatasyncSync, fsync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '@tspaxos/core';
import type { AcceptorRecord } from '@tspaxos/crc-wasm';
import type Database from 'better-sqlite3';
import { corruptRecord, encodeStored, openMeta, sealMeta, withCodecErrors } from './codec';
import { Compaction, forgetCompacted } from './compaction';
import { closeQuietly, openConnection } from './connection';
import { StorageError } from './errors';
import {
  type FsyncFn,
  GroupCommit,
  openWal,
  StickyFailure,
  type StorageUnsafeFaults,
  type SyncStats,
  type Waiter,
} from './group-commit';
import { replaySegments } from './recovery';
import {
  checkGroup,
  checkInstanceId,
  checkMetaKey,
  checkMetaValue,
  checkRecordArgument,
  checkRecords,
  decodeInstanceId,
  deleteLimit,
  encodeInstanceId,
  type LogStore,
  type MetaKey,
  MIN_CHOSEN_KEY,
  type ResetOptions,
  type WriteOptions,
} from './log-store';
import { resolveStorageOptions, type StorageOptions } from './options';
import { RangeReader } from './range-reader';
import {
  type GroupStatements,
  type MetaStatements,
  plain,
  prepareMeta,
  prepareSegments,
  RecordTables,
  segmentRowsOf,
  type SegmentStatements,
} from './schema';
import { type EncodedEntry, encodeEntry } from './segment-entry';
import {
  type Placement,
  type SegmentRecovery,
  type SegmentWriteFn,
  Segments,
  writeAll,
} from './segments';
import { wrap, wrapRead } from './sqlite-errors';
import {
  resolveWalCheckpointOptions,
  WalCheckpointer,
  type WalCheckpointOptions,
} from './wal-checkpointer';

export { SCHEMA_VERSION, INSERT_ROWS_PER_STATEMENT } from './schema';
export { LOCK_FILE_SUFFIX } from './lock-file';

/** File name of the database inside a node's data directory. */
export const DATABASE_FILE = 'paxos.sqlite';
/** Directory of the segment files inside a node's data directory (`<file>-segments` beside a named database file). */
export const SEGMENTS_DIR = 'segments';

export interface SqliteLogStoreOptions extends Partial<StorageOptions>, WalCheckpointOptions {
  /** Open read-only (inspection tools, while no node has the log open); writes fail with E_READ_ONLY. */
  readonly?: boolean;
  /**
   * Cap on the database file's size in bytes (segment files are not counted); writes beyond it
   * fail with E_DISK_FULL, as on a full disk.
   */
  maxDatabaseBytes?: number;
  /** Replaces fs.fsync (of the WAL and of directories) in the group commit: fault injection and tests. */
  fsync?: FsyncFn;
  /** Replaces fs.fdatasync (of segment files) in the group commit: fault injection and tests. */
  fdatasync?: FsyncFn;
  /**
   * A round of the group commit whose only sync is one segment's fdatasync (one segment
   * written, no new directory entry, no WAL fsync: a single group's acceptor writing one value
   * per instance) runs it on the event loop (fdatasyncSync) instead of libuv's thread pool (issue
   * 22). It saves the pool's hand-offs per durable write (a pool thread woken, its completion
   * waking the loop, a mutex handed over: each a wait for a core on a loaded machine; ~0.4 ms of
   * CPU per instance of 100 KiB on two nodes, BENCHMARKS.md) and blocks the event loop for the
   * sync's duration: every other group, socket and timer of the process waits for it (dev runs
   * on a loaded disk: a 1 ms timer up to 0.9–1.6 s late, against 28–56 ms with the pool; and a
   * lone sequential writer was no faster). Off by default; for a process that serves one group.
   */
  syncInline?: boolean;
  /** Replaces fs.fdatasyncSync (syncInline's inline fdatasync): fault injection and tests. */
  fdatasyncSync?: (fd: number) => void;
  /** Replaces the segment append (a pwritev of all the bytes): fault injection and tests. */
  writeSegment?: SegmentWriteFn;
  /** Where the open's repairs are logged (a torn tail cut, an unfinished batch dropped). */
  logger?: Logger;
  /**
   * A sync write of one small record (not above outOfLineValueBytes) as a segment entry, durable
   * by the segment's fdatasync (true, the default: 1.0–1.4× the other way, bench/durable.mjs), or
   * as a row only, durable by the WAL's fsync (false: the bench's comparison).
   */
  journalSmallSyncWrites?: boolean;
  /** Planted bugs for the crash tests (group-commit.ts); never set outside tests. */
  unsafeFaults?: StorageUnsafeFaults;
}

/**
 * A sync write of entries that came while a group commit ran: checked and encoded at its call,
 * appended and committed with the others queued when the next round starts (writeQueued).
 */
interface QueuedWrite extends Waiter {
  group: number;
  records: readonly AcceptorRecord[];
  entries: EncodedEntry[];
  /** A put (its error names the instance) or a putMany. */
  single: boolean;
}

export class SqliteLogStore implements LogStore {
  /** Every write is in the OS (or its value copied, when queued) before its call returns. */
  readonly copiesValues = true;
  readonly options: StorageOptions;
  readonly path: string;
  private readonly db: Database.Database;
  private readonly meta: MetaStatements;
  private readonly segmentRows: SegmentStatements;
  private readonly segments: Segments;
  private readonly tables: RecordTables;
  private readonly readonly: boolean;
  /** The exclusive lock on the lock file (undefined when read-only). */
  private readonly lockDb: Database.Database | undefined;
  /** Set by a failed fsync or checkpoint: no later write can be trusted (group-commit.ts). */
  private readonly failure = new StickyFailure();
  private closed = false;
  private readonly journalSmallSyncWrites: boolean;
  /** Sync writes of entries waiting for the next round (QueuedWrite); empty when none runs. */
  private queued: QueuedWrite[] = [];
  private readonly commits: GroupCommit;
  private readonly walCheckpointer: WalCheckpointer;
  private readonly reader: RangeReader;
  private readonly compaction: Compaction;
  /** What the group commit and the WAL checkpoints did (SyncStats). */
  readonly syncStats: SyncStats = {
    fsyncs: 0,
    fdatasyncs: 0,
    syncWrites: 0,
    queuedSyncWrites: 0,
    walCheckpoints: 0,
    inlineWalCheckpoints: 0,
    inlineFdatasyncs: 0,
    backpressureWaits: 0,
  };

  /** Opens (creating if needed) the log in `dataDir`/paxos.sqlite, or at a path ending in .sqlite or .db. */
  static open(dataDirOrFile: string, options: SqliteLogStoreOptions = {}): SqliteLogStore {
    return new SqliteLogStore(dataDirOrFile, options);
  }

  private constructor(dataDirOrFile: string, options: SqliteLogStoreOptions) {
    this.options = resolveStorageOptions(options);
    const walPolicy = resolveWalCheckpointOptions(options);
    const readonly = options.readonly ?? false;
    this.readonly = readonly;
    const isFile = dataDirOrFile.endsWith('.sqlite') || dataDirOrFile.endsWith('.db');
    this.path = isFile ? dataDirOrFile : join(dataDirOrFile, DATABASE_FILE);
    try {
      if (!isFile && !readonly) mkdirSync(dataDirOrFile, { recursive: true });
    } catch (e) {
      throw wrap(e, 'E_OPEN_FAILED', `cannot create the data directory ${dataDirOrFile}`);
    }
    this.journalSmallSyncWrites = options.journalSmallSyncWrites ?? true;
    const faults = options.unsafeFaults ?? {};
    const heldWrites: Array<() => void> = [];
    let writeSegment = options.writeSegment ?? writeAll;
    if (faults.indexFirst === true) {
      const write = writeSegment;
      writeSegment = (fd, buffers, position) => {
        const copies = buffers.map((b) => Uint8Array.from(b));
        heldWrites.push(() => write(fd, copies, position));
      };
    }
    const { db, lockDb } = openConnection(this.path, readonly, options.maxDatabaseBytes);
    let segments: Segments | undefined;
    let walFd: number | undefined;
    try {
      this.meta = prepareMeta(db);
      this.segmentRows = prepareSegments(db);
      this.tables = new RecordTables(db, this.options, this.segmentRows);
      const root = isFile ? `${this.path}-${SEGMENTS_DIR}` : join(dataDirOrFile, SEGMENTS_DIR);
      segments = new Segments(root, this.options, writeSegment, readonly);
      const { rows, floors } = segmentRowsOf(this.segmentRows);
      const missing = segments.open(rows, floors);
      if (!readonly) {
        replaySegments({
          db,
          meta: this.meta,
          tables: this.tables,
          segments,
          logger: options.logger,
        });
        forgetCompacted(db, this.meta, this.tables, this.segmentRows, missing);
      }
      if (!readonly) walFd = openWal(this.path);
    } catch (e) {
      try {
        segments?.close();
      } catch {
        // the open failure is what matters
      }
      closeQuietly(db, lockDb);
      throw wrap(e, 'E_OPEN_FAILED', `cannot open the paxos log ${this.path}`);
    }
    this.db = db;
    this.lockDb = lockDb;
    this.segments = segments;
    const fsyncFn = options.fsync ?? fsync;
    this.commits = new GroupCommit({
      path: this.path,
      segments,
      walFd,
      fsync: fsyncFn,
      fdatasync: options.fdatasync ?? fdatasync,
      ...(options.syncInline === true
        ? { fdatasyncInline: options.fdatasyncSync ?? fdatasyncSync }
        : {}),
      stats: this.syncStats,
      failure: this.failure,
      afterRound: (walSynced) => this.walCheckpointer.afterGroupCommit(walSynced),
      walSyncDue: () => this.walCheckpointer.due,
      beforeRound: () => this.writeQueued(),
      faults,
      heldWrites,
    });
    const ports = { db, path: this.path, walFd, fsync: fsyncFn, stats: this.syncStats };
    this.walCheckpointer = new WalCheckpointer(
      {
        ...ports,
        failure: this.failure,
        wake: () => this.commits.kick(),
        segmentsDirty: () => segments.hasDirty,
        syncSegments: () => this.commits.segmentsSynced(),
        syncSegmentsHere: () => this.commits.syncSegmentsHere(),
        faults,
      },
      walPolicy,
      readonly,
    );
    this.reader = new RangeReader(
      this.options,
      segments,
      () => this.checkOpen(),
      (group) => this.tables.statements(group, false),
    );
    this.compaction = new Compaction({
      db,
      options: this.options,
      tables: this.tables,
      segments,
      segmentRows: this.segmentRows,
      wrote: (bytes, pages) => this.walCheckpointer.wrote(bytes, pages),
      durable: () => this.commits.durable(),
      syncing: () => this.commits.syncing,
    });
  }

  /** See WalCheckpointer.lockStats. */
  get lockStats(): Readonly<{ retakeBusy: number }> {
    return this.walCheckpointer.lockStats;
  }

  /** How range() read its chunks (RangeReader.stats). */
  get rangeStats(): Readonly<{ blobChunks: number; rowChunks: number }> {
    return this.reader.stats;
  }

  private group(group: number, create: boolean): GroupStatements | undefined {
    return this.tables.statements(group, create);
  }

  /**
   * Every call's first step. Queued sync writes are written first (unless the call is one that
   * may queue), so every call sees the writes made before it, in their order.
   */
  private checkOpen(writeQueued = true): void {
    if (this.closed) throw new StorageError('E_CLOSED', `the paxos log ${this.path} is closed`);
    this.walCheckpointer.retakeLockIfReleased();
    if (writeQueued) this.writeQueued();
  }

  private checkWritable(writeQueued = true): void {
    this.checkOpen(writeQueued);
    if (this.failure.error !== undefined) throw this.failure.error;
    if (this.readonly) throw new StorageError('E_READ_ONLY', `${this.path} is open read-only`);
  }

  /**
   * What every write does after its commit: wait for the group commit (for the WAL's fsync too
   * unless its records are segment entries), or for the WAL's bound.
   */
  private settle(opts: WriteOptions, journaled = false): Promise<void> {
    if (!opts.sync) return this.walCheckpointer.unsyncedWrite();
    return journaled ? this.commits.durableSoon() : this.commits.durable();
  }

  /**
   * Whether records go to a segment as entries (durable by its fdatasync) as well as to the
   * index: a batch with a large value (all of it, so a replay brings back the whole batch), and
   * a sync write of one record (unless journalSmallSyncWrites is off). Others are index rows
   * only: a sync batch of small values is then durable by the WAL's fsync, its one sync (its
   * rows go in 32 per statement, encoded in WASM memory: as entries, batches of 100 / 1,000
   * ran at 0.66× / 0.47× that, dev runs on a loaded machine).
   */
  private journaled(records: readonly AcceptorRecord[], opts: WriteOptions): boolean {
    if (opts?.sync === true && this.journalSmallSyncWrites && records.length === 1) return true;
    const limit = this.options.outOfLineValueBytes;
    for (const r of records) if ((r?.value?.length ?? 0) > limit) return true;
    return false;
  }

  /**
   * Writes records as segment entries: checks them all, appends them to the group's segment
   * (one pwritev), then commits their index rows in one transaction; if the commit fails, the
   * appended bytes are given back (the next append writes over them).
   */
  private putJournaled(
    group: number,
    g: GroupStatements,
    records: readonly AcceptorRecord[],
    entries?: EncodedEntry[],
  ) {
    for (const r of records) checkRecordArgument(group, r, this.options);
    const id = records.length === 1 ? records[0]!.instanceId : undefined;
    const placements = withCodecErrors(group, id, () =>
      this.segments.append(group, records, undefined, entries),
    );
    try {
      g.putMixed(records, placements);
    } catch (e) {
      this.segments.rolledBack(placements);
      throw e;
    }
    this.segments.committed(placements);
    this.wroteEntries(records);
  }

  /** Counts the WAL pages of one commit of entries' rows (their groups' tables and segment rows). */
  private wroteEntries(records: readonly AcceptorRecord[], groups = 1): void {
    let bytes = 0;
    for (const r of records)
      if (r.value.length <= this.options.outOfLineValueBytes) bytes += r.value.length;
    this.walCheckpointer.wrote(bytes + 100 * records.length, 2 * groups);
  }

  /**
   * Group commit of the writes themselves: a sync write of entries that comes while a round
   * runs is checked and encoded now (a bad record fails its own call), and queued; the next
   * round writes every queued one (writeQueued) and makes them durable with one fdatasync.
   * A large value is copied, as an immediate write would have by the time its call returns.
   */
  private queue(group: number, records: readonly AcceptorRecord[], single: boolean) {
    const entries = withCodecErrors(group, single ? records[0]!.instanceId : undefined, () =>
      records.map((r) => {
        checkRecordArgument(group, r, this.options);
        const entry = encodeEntry(group, r, 0, 0);
        // new Uint8Array: a copy (a Buffer's slice() would be a view of the same bytes).
        if (entry.buffers.length > 1) entry.buffers[1] = new Uint8Array(entry.buffers[1]!);
        return entry;
      }),
    );
    // The records as they are now (a caller may reuse its objects once the call returns).
    const copies = records.map((r) => ({ ...r }));
    return new Promise<void>((resolve, reject) =>
      this.queued.push({ group, records: copies, entries, single, resolve, reject }),
    );
  }

  /**
   * Writes the queued sync writes: per group one append (one pwritev per segment touched),
   * then every index row in one transaction; each joins the round about to start. If that
   * fails, nothing of it counts, and they are written one by one, each with its own outcome.
   */
  private writeQueued(): void {
    if (this.queued.length === 0) return;
    const queued = this.queued;
    this.queued = [];
    if (this.failure.error !== undefined) {
      for (const q of queued) q.reject(this.failure.error);
      return;
    }
    const placements: Placement[] = [];
    const rows: Array<[GroupStatements, AcceptorRecord[], Placement[]]> = [];
    try {
      this.walCheckpointer.retakeLockIfReleased();
      const byGroup = new Map<number, QueuedWrite[]>();
      for (const q of queued) {
        const writes = byGroup.get(q.group);
        if (writes === undefined) byGroup.set(q.group, [q]);
        else writes.push(q);
      }
      for (const [group, writes] of byGroup) {
        const records = writes.flatMap((q) => q.records);
        const appended = this.segments.append(
          group,
          records,
          writes.map((q) => q.records.length),
          writes.flatMap((q) => q.entries),
        );
        for (const p of appended) placements.push(p);
        rows.push([this.group(group, true)!, records, appended]);
      }
      this.db.transaction(() => {
        for (const [g, records, appended] of rows) g.putEntryRows(records, appended);
      })();
    } catch (e) {
      this.segments.rolledBack(placements);
      // A coded failure (SQLite's, the file system's, ours: a full disk): written one by one,
      // so each call gets its own outcome. Anything else is a bug: every caller gets it.
      const coded = typeof (e as { code?: unknown })?.code === 'string';
      for (const q of queued) {
        if (coded) this.writeQueuedAlone(q);
        else q.reject(e);
      }
      return;
    }
    this.segments.committed(placements);
    this.syncStats.queuedSyncWrites += queued.length;
    // One transaction: counted once (per write, 64 queued puts counted ~30x the WAL pages they
    // add, and a checkpoint, with its fsyncs, came every ~9 bursts instead of every ~300).
    this.wroteEntries(
      rows.flatMap(([, records]) => records),
      rows.length,
    );
    for (const q of queued) this.commits.join(q, false);
  }

  private writeQueuedAlone(q: QueuedWrite): void {
    try {
      if (this.failure.error !== undefined) throw this.failure.error;
      this.putJournaled(q.group, this.group(q.group, true)!, q.records, q.entries);
    } catch (e) {
      const instanceId = q.single ? q.records[0]!.instanceId : undefined;
      const what = q.single
        ? `write of group ${q.group} instance ${instanceId}`
        : `batch write of group ${q.group}`;
      q.reject(wrap(e, 'E_IO', what, { group: q.group, instanceId }));
      return;
    }
    this.commits.join(q, false);
  }

  put(group: number, record: AcceptorRecord, opts: WriteOptions): Promise<void> {
    let journaled: boolean;
    try {
      this.checkWritable(false);
      checkGroup(group, this.options);
      checkRecordArgument(group, record, this.options);
      const g = this.group(group, true)!;
      journaled = this.journaled([record], opts);
      if (journaled && opts.sync && this.commits.collecting)
        return this.queue(group, [record], true);
      this.writeQueued();
      if (journaled) {
        this.putJournaled(group, g, [record]);
      } else {
        const bytes = encodeStored(group, record);
        g.put.run(record.instanceId, bytes);
        this.walCheckpointer.wrote(bytes.length);
      }
    } catch (e) {
      return Promise.reject(
        wrap(e, 'E_IO', `write of group ${group} instance ${record?.instanceId}`, {
          group,
          instanceId: record?.instanceId,
        }),
      );
    }
    return this.settle(opts, journaled);
  }

  putMany(group: number, records: readonly AcceptorRecord[], opts: WriteOptions): Promise<void> {
    let journaled = false;
    try {
      this.checkWritable(false);
      checkGroup(group, this.options);
      checkRecords(group, records);
      if (records.length > 0) {
        journaled = this.journaled(records, opts);
        if (journaled && opts.sync && this.commits.collecting)
          return this.queue(group, records, false);
      }
      this.writeQueued();
      if (records.length > 0) {
        const g = this.group(group, true)!;
        if (journaled) {
          this.putJournaled(group, g, records);
        } else {
          g.putMany(records);
          let bytes = 0;
          for (const r of records) bytes += r.value.length + 64;
          this.walCheckpointer.wrote(bytes);
        }
      }
    } catch (e) {
      return Promise.reject(wrap(e, 'E_IO', `batch write of group ${group}`, { group }));
    }
    return this.settle(opts, journaled);
  }

  get(group: number, instanceId: number): AcceptorRecord | undefined {
    this.checkOpen();
    checkGroup(group, this.options);
    checkInstanceId(instanceId, group);
    let row: [Uint8Array, number | null] | undefined;
    try {
      row = this.group(group, false)?.get.get(instanceId) as typeof row;
    } catch (e) {
      throw wrapRead(e, group, instanceId, `read of group ${group} instance ${instanceId}`);
    }
    return row === undefined ? undefined : this.reader.decodeRow(group, instanceId, row[0], row[1]);
  }

  range(
    group: number,
    fromInstanceId: number,
    toInstanceIdExclusive: number,
  ): IterableIterator<AcceptorRecord> {
    // Arguments are checked at the call, not at the first next().
    this.checkOpen();
    checkGroup(group, this.options);
    checkInstanceId(fromInstanceId, group);
    checkInstanceId(toInstanceIdExclusive, group);
    return this.reader.read(group, fromInstanceId, toInstanceIdExclusive);
  }

  maxInstanceId(group: number): number | undefined {
    this.checkOpen();
    checkGroup(group, this.options);
    let max: unknown;
    try {
      max = this.group(group, false)?.max.get();
    } catch (e) {
      throw wrapRead(e, group, 0, `max instance id of group ${group}`);
    }
    if (max === null || max === undefined) return undefined;
    if (typeof max !== 'number' || !Number.isSafeInteger(max) || max < 0)
      throw corruptRecord(group, Number(max), 'its key is not a safe integer');
    return max;
  }

  getMinChosenInstanceId(group: number): number {
    return decodeInstanceId(this.readMeta(group, MIN_CHOSEN_KEY), group);
  }

  setMinChosenInstanceId(group: number, instanceId: number): Promise<void> {
    try {
      this.checkWritable();
      checkGroup(group, this.options);
      checkInstanceId(instanceId, group);
      this.meta.set.run(
        group,
        MIN_CHOSEN_KEY,
        sealMeta(MIN_CHOSEN_KEY, encodeInstanceId(instanceId)),
      );
      this.walCheckpointer.wrote(0);
    } catch (e) {
      return Promise.reject(wrap(e, 'E_IO', `min chosen instance id of group ${group}`, { group }));
    }
    return this.commits.durable();
  }

  getMeta(group: number, key: MetaKey): Uint8Array | undefined {
    return this.readMeta(group, key);
  }

  private readMeta(group: number, key: string): Uint8Array | undefined {
    this.checkOpen();
    checkGroup(group, this.options);
    checkMetaKey(key, group, this.options);
    let stored: Uint8Array | undefined;
    try {
      stored = this.meta.get.get(group, key) as Uint8Array | undefined;
    } catch (e) {
      throw wrap(e, 'E_IO', `meta read ${key} of group ${group}`, { group });
    }
    return stored === undefined ? undefined : openMeta(group, key, plain(stored));
  }

  setMeta(group: number, key: MetaKey, value: Uint8Array, opts: WriteOptions): Promise<void> {
    try {
      this.checkWritable();
      checkGroup(group, this.options);
      checkMetaKey(key, group, this.options);
      if (key === MIN_CHOSEN_KEY) {
        throw new StorageError('E_BAD_ARGUMENT', `use setMinChosenInstanceId to set ${key}`, {
          group,
        });
      }
      checkMetaValue(value, group, this.options);
      this.meta.set.run(group, key, sealMeta(key, value));
      this.walCheckpointer.wrote(value.length);
    } catch (e) {
      return Promise.reject(wrap(e, 'E_IO', `meta write ${key} of group ${group}`, { group }));
    }
    return this.settle(opts);
  }

  /** The cleaner's step (Compaction.deleteBelow). */
  deleteBelow(group: number, instanceId: number, maxRecords: number): number {
    this.checkWritable();
    checkGroup(group, this.options);
    checkInstanceId(instanceId, group);
    const limit = deleteLimit(maxRecords, group, this.options);
    if (limit === 0) return 0;
    return this.compaction.deleteBelow(group, instanceId, limit);
  }

  private dropGroup(group: number, alsoInTransaction: () => void): Promise<void> {
    try {
      this.checkWritable();
      checkGroup(group, this.options);
    } catch (e) {
      return Promise.reject(wrap(e, 'E_IO', `clear of group ${group}`, { group }));
    }
    return this.compaction.dropGroup(group, alsoInTransaction);
  }

  clearGroup(group: number): Promise<void> {
    return this.dropGroup(group, () => this.meta.clear.run(group));
  }

  resetGroup(group: number, opts: ResetOptions): Promise<void> {
    const id = opts?.minChosenInstanceId;
    try {
      checkGroup(group, this.options);
      checkInstanceId(id, group);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.dropGroup(group, () =>
      this.meta.set.run(group, MIN_CHOSEN_KEY, sealMeta(MIN_CHOSEN_KEY, encodeInstanceId(id))),
    );
  }

  /**
   * Refuses new calls, waits for the group commits and WAL checkpoints under way, fdatasyncs the
   * segments written since, then closes the database (SQLite then checkpoints the WAL into the
   * database file, with its fsyncs, and deletes the WAL): after close() every write is durable.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.walCheckpointer.stop();
    while (this.commits.busy || this.walCheckpointer.busy) await this.commits.idle();
    // The worker's connection closes first: the store's is then the last one, and SQLite's
    // close checkpoints the WAL and deletes it.
    let workerError: unknown;
    try {
      await this.walCheckpointer.close();
    } catch (e) {
      workerError = e;
    }
    let syncError: unknown;
    try {
      await this.commits.syncSegments();
    } catch (e) {
      syncError = e; // reported below, after the files are closed
    }
    try {
      this.segments.close();
      this.commits.closeWal();
      this.db.close();
      this.lockDb?.close();
    } catch (e) {
      throw wrap(e, 'E_IO', `close of ${this.path}`);
    }
    if (workerError !== undefined)
      throw wrap(workerError, 'E_IO', `close of the WAL checkpoint worker of ${this.path}`);
    if (syncError !== undefined)
      throw wrap(syncError, 'E_IO', `fdatasync of the segments of ${this.path} at close`);
  }

  /** Size of the database, WAL and segment files in bytes (status pages). */
  sizeBytes(): number {
    let n = this.segments.totalBytes();
    for (const f of [this.path, `${this.path}-wal`]) {
      try {
        n += statSync(f).size;
      } catch {
        // absent
      }
    }
    return n;
  }

  /** What the last open repaired in the segment files (recovery.ts; tests, status pages). */
  get recovery(): Readonly<SegmentRecovery> {
    return this.segments.recovery;
  }
}
