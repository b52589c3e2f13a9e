// SqliteLogStore: the paxos log in one SQLite database per node data directory (better-sqlite3,
// WAL mode), plus segment files for large values. Records are stored as encodeRecord bytes, one
// rowid table per group keyed by instance id (`records_<group>`: the key is (group, instanceId),
// and each group's table is the cheapest B-tree SQLite has, the same shape as the raw baseline
// of the benchmark). A value above options.outOfLineValueBytes is appended to a segment file
// (segments.ts) and its row holds the record with a 24-byte locator (segment, offset, length,
// CRC-32 of the value) in place of the value: PhxPaxos's layout (Database::Put in
// src/logstorage/db.cpp: a data file append plus a small LevelDB index entry), with SQLite as
// the index. A `segments` table holds, per segment, the end
// of its committed bytes and its highest instance id. A `meta` table holds, per group, the min
// chosen instance id, the checkpoint instance id, and system and master variables as bytes,
// each sealed with a CRC (codec.ts).
//
// Order of a write. The value bytes are written to the segment (pwritev, into the OS), then the
// index rows commit (synchronous=NORMAL: into the WAL file, in the OS, not fsynced), all inside
// the call. So when a call returns, a process kill can lose none of it; a kill before the commit
// leaves bytes past the segment's committed end, which the next open truncates.
//
// Durability and group commit. A `sync: true` write then waits for the group commit, which runs
// on libuv's thread pool so the event loop never blocks on it: (1) fdatasync of every segment
// with bytes written since the last group commit began (and an fsync of any directory that got
// a new segment file), then (2) an fsync of the WAL. Every sync write committed before (1)
// starts resolves when (2) ends; writes committed meanwhile share the next round. So the bytes
// of a sync write are durable before the index row that points at them is: one segment
// fdatasync and one WAL fsync per batch of concurrent writers, however many.
// Why an fsync of the WAL makes the commits in it durable: recovery replays every WAL frame up to
// the last valid commit frame, so once the frames of a commit are on disk, so is the commit.
//
// Checkpoints are ours (wal_autocheckpoint=0): SQLite never checkpoints inside a write call.
// The store runs `PRAGMA wal_checkpoint(PASSIVE)` from setImmediate, off every caller's path:
// after a group commit once the WAL holds about checkpointPages pages (the fsyncs SQLite does
// then add little to the group commit's own), and, if only sync:false writes come, when it holds
// checkpointMaxPages (inside a write only at twice that, if the caller never lets setImmediate
// run: the WAL stays bounded). A checkpoint copies the WAL into the database; in synchronous=NORMAL
// SQLite fsyncs the WAL before it copies and the database after, before it records the copy as
// done, and only a later write transaction restarts the WAL from its start. So no frame is
// overwritten before its content is durable in the database, and nothing acknowledged lives
// only in a part of the WAL about to be reused: the "fsync of the WAL" argument holds across
// restarts. The WAL is reused in place, never deleted while the log is open (only close()
// deletes it), so the descriptor we keep always names the file SQLite writes to.
//
// What a sync:false write costs: no fsync and no fdatasync at all (the learner's catch-up
// writes; tested by counting through the injected ports), until the WAL reaches
// checkpointMaxPages (index rows are small: GBs of large values); that checkpoint first fsyncs
// the WAL on the thread pool, so the event loop only waits for the copy. Power loss can then
// lose them; and since the OS may write the WAL page holding an index row back to disk before
// the segment page holding its bytes, a sync:false large value can come back after a power cut
// as a row whose bytes are missing: it reads as E_CORRUPT_RECORD (the CRC of the value is in the
// row), never as a wrong value. A later sync:true write or close() makes it durable.
//
// The checkpoint itself runs on a worker thread's own connection (checkpoint-worker.ts), so
// neither its copy nor SQLite's fsyncs inside it hold the event loop. A checkpoint that cannot
// keep up with the writes (the WAL restarts only when a checkpoint copied every frame and no
// write came meanwhile) is finished on the event loop once the WAL reaches twice
// checkpointMaxPages: the WAL stays bounded, at the price of that one stall.
//
// Locking. The store's connection runs in locking_mode=EXCLUSIVE (entered after WAL mode, so
// the WAL index lives in the -shm file): no shared-memory lock per transaction. For a worker
// checkpoint it switches to NORMAL (effective at its next read), the worker opens its own
// connection, checkpoints, closes it and answers, and the store takes EXCLUSIVE back.
//
// One process per log: as the database's own lock is let go during checkpoints, the store holds
// an exclusive SQLite lock on a lock file beside it (`<database>-lock`, a tiny database in locking_mode=EXCLUSIVE): a second
// node or store pointed at the same directory fails at open with E_LOCKED instead of sharing an
// acceptor's promises. The lock goes with the process (POSIX locks), so a killed node's log
// opens again at once.
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  fdatasync,
  fsync,
  fsyncSync,
  mkdirSync,
  openSync,
  statSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import {
  type CheckpointPort,
  type CheckpointResult,
  workerCheckpointPort,
} from './checkpoint-worker';
import {
  type AcceptorRecord,
  crc32,
  encodeRecordsInWindow,
  RECORD_HEADER_BYTES,
  RECORD_OVERHEAD_BYTES,
  rememberCrc,
} from '@tspaxos/crc-wasm';
import Database from 'better-sqlite3';
import { corruptRecord, decodeStored, encodeStored, openMeta, sealMeta } from './codec';
import { StorageError, type StorageErrorCode } from './errors';
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
import {
  decodeLocator,
  encodeLocator,
  LOCATOR_BYTES,
  type Placement,
  type Segment,
  type SegmentRow,
  Segments,
  type SegmentWriteFn,
  writeAll,
} from './segments';

/**
 * Version of the schema this code writes; opening a newer one refuses (E_SCHEMA_TOO_NEW).
 * 1: meta values stored bare. 2: meta values sealed with a CRC (opening a version 1 log
 * upgrades it in one transaction). 3: large values out of line: each records table gains the
 * columns `seg` and `value_bytes` (NULL for an inline value), and a `segments` table (a version
 * 1 or 2 log is upgraded in one transaction; its values all stay inline).
 */
export const SCHEMA_VERSION = 3;
/** File name of the database inside a node's data directory. */
export const DATABASE_FILE = 'paxos.sqlite';
/** Directory of the segment files inside a node's data directory (`<file>-segments` beside a named database file). */
export const SEGMENTS_DIR = 'segments';
/**
 * Rows per multi-row INSERT in putMany: one statement execution per 32 records instead of one
 * per record; the per-call cost of better-sqlite3 is what it saves (bench: ~1.3× at 100 B;
 * 16 gains less, 64 nothing more).
 */
export const INSERT_ROWS_PER_STATEMENT = 32;
/**
 * WAL pages after which the store checkpoints at the end of the next group commit: SQLite's
 * wal_autocheckpoint default (1000), which was ours before the store took checkpoints over.
 */
export const DEFAULT_CHECKPOINT_PAGES = 1000;
/**
 * WAL pages after which the store checkpoints even if no sync write comes (the only fsyncs
 * sync:false writes can cause): 4,096 pages of 4 KiB = 16 MiB of WAL, ours. With values out of
 * line that is ~10⁵ index rows (GBs of values); a checkpoint then copies at most 16 MiB (bench:
 * "longest single put" with twice this inside a write, the bound for a caller that never yields).
 */
export const DEFAULT_CHECKPOINT_MAX_PAGES = 4_096;
/** Suffix of the lock file beside the database (see the file header: one process per log). */
export const LOCK_FILE_SUFFIX = '-lock';
/** SQLite's page size here (its default), used to estimate how many WAL pages a commit adds. */
const PAGE_BYTES = 4096;

type Db = Database.Database;
type FsyncFn = (fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => void;

interface GroupStatements {
  put: Database.Statement;
  putIndex: Database.Statement;
  putMany: Database.Transaction<(records: readonly AcceptorRecord[]) => void>;
  putMixed: Database.Transaction<
    (records: readonly AcceptorRecord[], placements: readonly Placement[]) => void
  >;
  get: Database.Statement;
  rangeChunk: Database.Statement;
  rangeBlob: Database.Statement;
  max: Database.Statement;
  min: Database.Statement;
  lowest: Database.Statement;
  deleteThrough: Database.Statement;
  clear: Database.Statement;
}

function classify(e: unknown, fallback: StorageErrorCode): StorageErrorCode {
  const code = String((e as { code?: unknown })?.code ?? '');
  if (code.startsWith('SQLITE_FULL') || code === 'ENOSPC' || code === 'EFBIG') return 'E_DISK_FULL';
  if (code.startsWith('SQLITE_READONLY') || code === 'EROFS' || code === 'EACCES')
    return 'E_READ_ONLY';
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return 'E_LOCKED';
  if (code.startsWith('SQLITE_NOTADB') || code.startsWith('SQLITE_CANTOPEN'))
    return 'E_OPEN_FAILED';
  if (code.startsWith('SQLITE_IOERR') || code === 'EIO') return 'E_IO';
  return fallback;
}

function wrap(
  e: unknown,
  fallback: StorageErrorCode,
  what: string,
  where: { group?: number; instanceId?: number } = {},
): StorageError {
  if (e instanceof StorageError) return e;
  const code = classify(e, fallback);
  const message = e instanceof Error ? e.message : String(e);
  return new StorageError(code, `${what}: ${message}`, { ...where, cause: e });
}

/** A failed read: damage SQLite itself notices (a broken page) is a corrupt record too. */
function wrapRead(e: unknown, group: number, instanceId: number, what: string): StorageError {
  if (e instanceof StorageError) return e;
  const code = String((e as { code?: unknown })?.code ?? '');
  if (code.startsWith('SQLITE_CORRUPT') || code.startsWith('SQLITE_NOTADB'))
    return corruptRecord(group, instanceId, `SQLite: ${(e as Error).message}`, e);
  return wrap(e, 'E_IO', what, { group, instanceId });
}

export interface SqliteLogStoreOptions extends Partial<StorageOptions> {
  /** Open read-only (inspection tools, while no node has the log open); writes fail with E_READ_ONLY. */
  readonly?: boolean;
  /**
   * Cap on the database file's size in bytes (segment files are not counted); writes beyond it
   * fail with E_DISK_FULL, as on a full disk.
   */
  maxDatabaseBytes?: number;
  /**
   * WAL pages (4 KiB) after which the end of a group commit checkpoints the WAL into the
   * database (DEFAULT_CHECKPOINT_PAGES). Small values exercise WAL restarts (tests).
   */
  checkpointPages?: number;
  /** WAL pages after which a checkpoint runs with no sync write in sight (DEFAULT_CHECKPOINT_MAX_PAGES). */
  checkpointMaxPages?: number;
  /** Replaces fs.fsync (of the WAL and of directories) in the group commit: fault injection and tests. */
  fsync?: FsyncFn;
  /** Replaces fs.fdatasync (of segment files) in the group commit: fault injection and tests. */
  fdatasync?: FsyncFn;
  /** Replaces the segment append (a pwritev of all the bytes): fault injection and tests. */
  writeSegment?: SegmentWriteFn;
  /**
   * Where checkpoints run: 'worker' (default: a worker thread's own connection, off the event
   * loop) or 'inline' (the store's connection, on the event loop: the behaviour before the
   * worker, kept for comparison in the bench and as the planted bug of the stall test).
   */
  checkpointIn?: 'worker' | 'inline';
  /** Replaces the worker checkpoint runner (given the database path): fault injection and tests. */
  checkpointPort?: (databasePath: string) => CheckpointPort;
}

/**
 * Takes the log's lock: an exclusive SQLite lock on a lock file held until close (a second
 * store, in this process or another, gets SQLITE_BUSY: E_LOCKED). Read-only: checks that no one
 * holds it, without taking it.
 */
function lock(path: string, readonly: boolean): Db | undefined {
  if (readonly) {
    if (!existsSync(path)) return undefined;
    const probe = new Database(path, { readonly: true, timeout: 0 });
    try {
      probe.prepare('SELECT count(*) FROM sqlite_master').get();
    } finally {
      probe.close();
    }
    return undefined;
  }
  const db = new Database(path, { timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE; COMMIT'); // in EXCLUSIVE locking mode the lock stays taken
  } catch (e) {
    db.close();
    throw e;
  }
  return db;
}

function positiveInteger(value: number | undefined, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1)
    throw new StorageError('E_BAD_ARGUMENT', `${name} must be a positive integer`);
  return v;
}

export class SqliteLogStore implements LogStore {
  readonly options: StorageOptions;
  readonly path: string;
  private readonly db: Db;
  private readonly meta: ReturnType<typeof prepareMeta>;
  private readonly segmentRows: ReturnType<typeof prepareSegments>;
  private readonly segments: Segments;
  private readonly groups = new Map<number, GroupStatements>();
  private readonly tables: Set<string>;
  private readonly fsync: FsyncFn;
  private readonly fdatasync: FsyncFn;
  private readonly readonly: boolean;
  private readonly checkpointPages: number;
  private readonly checkpointMaxPages: number;
  /** The WAL file, kept open for the group commit's fsync (undefined when read-only). */
  private walFd: number | undefined;
  /** Sync writes committed and waiting for the next group commit to start. */
  private waiting: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  private syncing = false;
  private idleWaiters: Array<() => void> = [];
  /** Set by a failed fsync or checkpoint: the kernel may have dropped dirty pages, so no later write can be trusted. */
  private failure: StorageError | undefined;
  private closed = false;
  /** Estimated WAL pages not yet copied into the database. */
  private walPages = 0;
  /** Estimated extent of the WAL in pages (it restarts from its start only after a complete checkpoint). */
  private walEnd = 0;
  private checkpointScheduled = false;
  /** Where checkpoints run (undefined: inline, on the store's connection). */
  private readonly checkpointPort: CheckpointPort | undefined;
  /** A checkpoint is running on the port; walPages when it started. */
  private checkpointRunning = false;
  /** Unsynced writes held back until the worker's checkpoint is over (see settle). */
  private checkpointWaiters: Array<() => void> = [];
  private pagesAtCheckpointStart = 0;
  /** Counts inline checkpoints, so that a worker's result that overlapped one is not used for the estimates. */
  private inlineCheckpoints = 0;
  /** The exclusive lock on the lock file (undefined when read-only). */
  private readonly lockDb: Db | undefined;
  /** The store let go of its exclusive lock for a worker checkpoint. */
  private shared = false;
  /** A read that makes a locking_mode change take effect. */
  private touch: Database.Statement | undefined;
  /**
   * Times the store could not take locking_mode=EXCLUSIVE back after a worker checkpoint
   * (another connection, e.g. a tool, had the database open): it then runs in NORMAL mode,
   * correct but slower, and tries again after the next checkpoint.
   */
  readonly lockStats = { retakeBusy: 0 };
  /** The fsync before a checkpoint is under way (close() waits for it). */
  private checkpointSyncing = false;
  /**
   * The group commit's effect: fsyncs (WAL and directories) and fdatasyncs (segments) done, the
   * sync writes they covered, and the checkpoints the store ran (each: SQLite's own two fsyncs),
   * of which `inlineCheckpoints` on the event loop (the fallback that keeps the WAL bounded, or
   * all of them with checkpointIn 'inline').
   */
  readonly syncStats = {
    fsyncs: 0,
    fdatasyncs: 0,
    syncWrites: 0,
    checkpoints: 0,
    inlineCheckpoints: 0,
    backpressureWaits: 0,
  };
  /**
   * How range() read its chunks: as one blob each (inline rows), or row by row (chunks with
   * out-of-line values, or whose blob did not split cleanly: see readChunk).
   */
  readonly rangeStats = { blobChunks: 0, rowChunks: 0 };

  /** Opens (creating if needed) the log in `dataDir`/paxos.sqlite, or at a path ending in .sqlite or .db. */
  static open(dataDirOrFile: string, options: SqliteLogStoreOptions = {}): SqliteLogStore {
    return new SqliteLogStore(dataDirOrFile, options);
  }

  private constructor(dataDirOrFile: string, options: SqliteLogStoreOptions) {
    this.options = resolveStorageOptions(options);
    this.fsync = options.fsync ?? fsync;
    this.fdatasync = options.fdatasync ?? fdatasync;
    const readonly = options.readonly ?? false;
    this.readonly = readonly;
    this.checkpointPages = positiveInteger(
      options.checkpointPages,
      DEFAULT_CHECKPOINT_PAGES,
      'checkpointPages',
    );
    this.checkpointMaxPages = positiveInteger(
      options.checkpointMaxPages,
      Math.max(DEFAULT_CHECKPOINT_MAX_PAGES, this.checkpointPages),
      'checkpointMaxPages',
    );
    const isFile = dataDirOrFile.endsWith('.sqlite') || dataDirOrFile.endsWith('.db');
    this.path = isFile ? dataDirOrFile : join(dataDirOrFile, DATABASE_FILE);
    try {
      if (!isFile && !readonly) mkdirSync(dataDirOrFile, { recursive: true });
    } catch (e) {
      throw wrap(e, 'E_OPEN_FAILED', `cannot create the data directory ${dataDirOrFile}`);
    }
    if (!readonly) checkWritable(this.path);
    let db: Db | undefined;
    let lockDb: Db | undefined;
    let segments: Segments | undefined;
    try {
      lockDb = lock(`${this.path}${LOCK_FILE_SUFFIX}`, readonly);
      db = new Database(this.path, { readonly, fileMustExist: readonly, timeout: 0 });
      if (!readonly) {
        const mode = db.pragma('journal_mode = WAL', { simple: true });
        if (mode !== 'wal') throw new StorageError('E_OPEN_FAILED', `WAL mode refused (${mode})`);
        db.pragma('synchronous = NORMAL');
        db.pragma('wal_autocheckpoint = 0'); // checkpoints are ours (see the file header)
        // After a first read in WAL mode, so the WAL index is in the -shm file the worker's
        // connection shares (set before it, SQLite keeps the index in heap memory and the lock
        // for good); taken at the first write: no shared-memory locks per transaction.
        db.prepare('SELECT count(*) FROM sqlite_master').get();
        db.pragma('locking_mode = EXCLUSIVE');
      }
      if (options.maxDatabaseBytes !== undefined) {
        if (!Number.isSafeInteger(options.maxDatabaseBytes) || options.maxDatabaseBytes < 1)
          throw new StorageError('E_BAD_ARGUMENT', 'maxDatabaseBytes must be a positive integer');
        const pageBytes = db.pragma('page_size', { simple: true }) as number;
        const pages = Math.max(1, Math.floor(options.maxDatabaseBytes / pageBytes));
        db.pragma(`max_page_count = ${pages}`);
      }
      this.migrate(db, readonly);
      if (!readonly) db.exec('BEGIN IMMEDIATE; COMMIT'); // takes the exclusive lock now
      this.meta = prepareMeta(db);
      this.segmentRows = prepareSegments(db);
      this.tables = new Set(
        db
          .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'records_*'")
          .pluck()
          .all() as string[],
      );
      const root = isFile ? `${this.path}-${SEGMENTS_DIR}` : join(dataDirOrFile, SEGMENTS_DIR);
      segments = new Segments(root, this.options, options.writeSegment ?? writeAll, readonly);
      this.segments = segments;
      const rows = (this.segmentRows.all.all() as Array<[number, number, number, number]>).map(
        ([group, id, endBytes, maxInstanceId]): SegmentRow => ({
          group,
          id,
          endBytes,
          maxInstanceId,
        }),
      );
      const missing = segments.open(rows);
      if (!readonly) this.forgetCompacted(db, missing);
      if (!readonly) this.walFd = this.openWal(dirname(this.path));
    } catch (e) {
      try {
        segments?.close();
        db?.close();
        lockDb?.close();
      } catch {
        // the open failure is what matters
      }
      throw wrap(e, 'E_OPEN_FAILED', `cannot open the paxos log ${this.path}`);
    }
    this.db = db;
    this.lockDb = lockDb;
    const inline = (options.checkpointIn ?? 'worker') === 'inline';
    if (options.checkpointIn !== undefined && !inline && options.checkpointIn !== 'worker')
      throw new StorageError('E_BAD_ARGUMENT', "checkpointIn must be 'worker' or 'inline'");
    this.checkpointPort =
      readonly || inline ? undefined : (options.checkpointPort ?? workerCheckpointPort)(this.path);
  }

  /**
   * Segments whose file is gone while their rows are below the group's min chosen instance id:
   * deleteBelow removed the file after a commit that a power cut then undid. Their rows were
   * deleted once already; delete them again. A missing segment with rows at or above the min
   * chosen id is left alone: those rows read as E_CORRUPT_RECORD.
   */
  private forgetCompacted(db: Db, missing: readonly SegmentRow[]): void {
    if (missing.length === 0) return;
    db.transaction(() => {
      for (const row of missing) {
        const stored = this.meta.get.get(row.group, MIN_CHOSEN_KEY) as Uint8Array | undefined;
        const min = decodeInstanceId(
          stored === undefined ? undefined : openMeta(row.group, MIN_CHOSEN_KEY, plain(stored)),
          row.group,
        );
        if (row.maxInstanceId >= min) continue;
        if (this.tables.has(`records_${row.group}`))
          db.prepare(`DELETE FROM records_${row.group} WHERE seg = ?`).run(row.id);
        this.segmentRows.delete.run(row.group, row.id);
      }
    })();
  }

  /**
   * Opens the WAL for the group commit's fsync, and fsyncs the directory once so the names of
   * the database and its WAL are durable too (SQLite does not for the WAL).
   */
  private openWal(dir: string): number {
    const wal = `${this.path}-wal`;
    // SQLite opened the WAL at the first read of migrate(); never fall back to the database file:
    // closing a second descriptor of it would drop SQLite's POSIX locks on it.
    if (!existsSync(wal)) throw new StorageError('E_OPEN_FAILED', `${wal} was not created`);
    const fd = openSync(wal, 'r');
    try {
      if (process.platform !== 'win32') {
        const dirFd = openSync(dir, 'r');
        try {
          fsyncSync(dirFd);
        } finally {
          closeSync(dirFd);
        }
      }
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    return fd;
  }

  private migrate(db: Db, readonly: boolean): void {
    const hasVersion = db
      .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
      .get();
    let version = 0;
    if (hasVersion) {
      const row = db.prepare('SELECT max(version) FROM schema_version').pluck().get();
      version = typeof row === 'number' ? row : 0;
      if (version > SCHEMA_VERSION) {
        throw new StorageError(
          'E_SCHEMA_TOO_NEW',
          `${this.path} has schema version ${version}; this code knows ${SCHEMA_VERSION}: use a newer tspaxos`,
        );
      }
      if (version === SCHEMA_VERSION) return;
    } else {
      const tables = db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table'").pluck();
      if ((tables.get() as number) > 0)
        throw new StorageError(
          'E_OPEN_FAILED',
          `${this.path} is a SQLite database but not a tspaxos log`,
        );
    }
    if (readonly) {
      throw new StorageError(
        'E_OPEN_FAILED',
        `${this.path} needs an upgrade from schema ${version}; open it writable once`,
      );
    }
    db.transaction(() => {
      db.exec(`
        CREATE TABLE IF NOT EXISTS meta (
          grp INTEGER NOT NULL,
          key TEXT NOT NULL,
          value BLOB NOT NULL,
          PRIMARY KEY (grp, key)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS segments (
          grp INTEGER NOT NULL,
          seg INTEGER NOT NULL,
          end_bytes INTEGER NOT NULL,
          max_instance INTEGER NOT NULL,
          PRIMARY KEY (grp, seg)
        ) WITHOUT ROWID;
      `);
      if (version === 1) {
        // Version 1 kept meta values bare: seal each with its CRC.
        const rows = db.prepare('SELECT grp, key, value FROM meta').raw().all() as Array<
          [number, string, Uint8Array]
        >;
        const update = db.prepare('UPDATE meta SET value = ? WHERE grp = ? AND key = ?');
        for (const [grp, key, value] of rows) update.run(sealMeta(key, value), grp, key);
      }
      if (version === 1 || version === 2) {
        // Version 3 adds the out-of-line columns; every existing value stays inline (NULL).
        const tables = db
          .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'records_*'")
          .pluck()
          .all() as string[];
        for (const table of tables) {
          db.exec(`ALTER TABLE ${table} ADD COLUMN seg INTEGER`);
          db.exec(`ALTER TABLE ${table} ADD COLUMN value_bytes INTEGER`);
        }
      }
      db.exec(`DELETE FROM schema_version; INSERT INTO schema_version VALUES (${SCHEMA_VERSION});`);
    })();
  }

  /** The statements of one group's table, created on its first write (reads of a group never written find nothing). */
  private group(group: number, create: boolean): GroupStatements | undefined {
    let g = this.groups.get(group);
    if (g !== undefined) return g;
    const table = `records_${group}`; // group is a checked integer
    if (!this.tables.has(table)) {
      if (!create) return undefined;
      this.db.exec(
        `CREATE TABLE IF NOT EXISTS ${table} (instance_id INTEGER PRIMARY KEY, record BLOB NOT NULL, seg INTEGER, value_bytes INTEGER)`,
      );
      this.tables.add(table);
    }
    // Inline values: the two-column INSERT of before (seg and value_bytes default to NULL).
    const insert = 'INSERT OR REPLACE INTO ' + table + ' (instance_id, record) VALUES ';
    const put = this.db.prepare(`${insert}(?, ?)`);
    const putRows = this.db.prepare(
      insert + new Array(INSERT_ROWS_PER_STATEMENT).fill('(?, ?)').join(', '),
    );
    const putIndex = this.db.prepare(
      `INSERT OR REPLACE INTO ${table} (instance_id, record, seg, value_bytes) VALUES (?, ?, ?, ?)`,
    );
    const args: unknown[] = new Array(2 * INSERT_ROWS_PER_STATEMENT);
    const encoded: Uint8Array[] = new Array<Uint8Array>(INSERT_ROWS_PER_STATEMENT);
    const options = this.options;
    const upsertSegment = this.segmentRows.upsert;
    g = {
      put,
      putIndex,
      // Checked and encoded inside the transaction: a bad record throws, which rolls back the
      // records before it, so nothing is written, without a second pass over the batch.
      putMany: this.db.transaction((records: readonly AcceptorRecord[]) => {
        const n = records.length;
        let i = 0;
        for (; i + INSERT_ROWS_PER_STATEMENT <= n; i += INSERT_ROWS_PER_STATEMENT) {
          for (let k = 0; k < INSERT_ROWS_PER_STATEMENT; k++) {
            const r = records[i + k]!;
            checkRecordArgument(group, r, options);
            args[2 * k] = r.instanceId;
          }
          // Encoded in place in WASM memory, which the insert copies at once (no buffer per
          // record: the receiver's catch-up profile showed the encode's allocations and copies).
          if (encodeRecordsInWindow(records, i, INSERT_ROWS_PER_STATEMENT, encoded)) {
            for (let k = 0; k < INSERT_ROWS_PER_STATEMENT; k++) args[2 * k + 1] = encoded[k];
          } else {
            for (let k = 0; k < INSERT_ROWS_PER_STATEMENT; k++)
              args[2 * k + 1] = encodeStored(group, records[i + k]!);
          }
          putRows.run(args);
        }
        for (; i < n; i++) {
          const r = records[i]!;
          checkRecordArgument(group, r, options);
          put.run(r.instanceId, encodeStored(group, r));
        }
      }),
      // Records some of whose values were just appended to segments (`placements`, in order):
      // their index rows, the small ones inline, and each touched segment's new committed end.
      putMixed: this.db.transaction(
        (records: readonly AcceptorRecord[], placements: readonly Placement[]) => {
          let k = 0;
          for (const r of records) {
            if (r.value.length > options.outOfLineValueBytes) {
              const p = placements[k++]!;
              const locator = encodeLocator(p.segment.id, p.offset, p.length, p.crc);
              const header = encodeStored(group, { ...r, value: locator });
              putIndex.run(r.instanceId, header, p.segment.id, p.length);
            } else {
              put.run(r.instanceId, encodeStored(group, r));
            }
          }
          let last: Segment | undefined;
          for (const p of placements) {
            if (p.segment === last) continue;
            last = p.segment;
            upsertSegment.run(group, last.id, last.writtenBytes, last.maxInstanceId);
          }
        },
      ),
      get: this.db.prepare(`SELECT record, seg FROM ${table} WHERE instance_id = ?`).raw(),
      rangeChunk: this.db
        .prepare(
          `SELECT instance_id, record, seg FROM ${table} WHERE instance_id >= ? AND instance_id < ? ORDER BY instance_id LIMIT ?`,
        )
        .raw(),
      // The same chunk as one blob (see readChunk): count, out-of-line rows, and each row's key
      // as 8 big-endian bytes followed by its record, in instance id order.
      rangeBlob: this.db
        .prepare(
          `SELECT count(*), count(seg), CAST(group_concat(unhex(printf('%016x', instance_id)) || record, x'') AS BLOB) FROM (SELECT instance_id, record, seg FROM ${table} WHERE instance_id >= ? AND instance_id < ? ORDER BY instance_id LIMIT ?)`,
        )
        .raw(),
      max: this.db.prepare(`SELECT max(instance_id) FROM ${table}`).pluck(),
      min: this.db.prepare(`SELECT min(instance_id) FROM ${table}`).pluck(),
      // The size of a record as stored inline, whether it is or not (so the limits of a delete
      // step mean the same on both stores). length() of a blob is read from the cell header:
      // the overflow pages are not touched.
      lowest: this.db
        .prepare(
          `SELECT instance_id, length(record) + coalesce(value_bytes - ${LOCATOR_BYTES}, 0) FROM ${table} WHERE instance_id < ? ORDER BY instance_id LIMIT ?`,
        )
        .raw(),
      deleteThrough: this.db.prepare(`DELETE FROM ${table} WHERE instance_id <= ?`),
      clear: this.db.prepare(`DELETE FROM ${table}`),
    };
    this.groups.set(group, g);
    return g;
  }

  private checkOpen(): void {
    if (this.closed) throw new StorageError('E_CLOSED', `the paxos log ${this.path} is closed`);
    // The worker's checkpoint is over (its connection closed): the lock comes back now, not
    // when its answer gets an event-loop turn (a caller may not yield for a while).
    if (this.shared && this.checkpointPort?.released?.() === true) this.retakeLock();
  }

  private checkWritable(): void {
    this.checkOpen();
    if (this.failure !== undefined) throw this.failure;
    if (this.readonly) throw new StorageError('E_READ_ONLY', `${this.path} is open read-only`);
  }

  /** Resolves after a group commit that began after this call. */
  private durable(): Promise<void> {
    this.syncStats.syncWrites++;
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.kick();
    });
  }

  /**
   * The group commit: (1) fdatasync of the segments written since the last round began, and
   * fsync of directories with new segment files, in parallel; then (2) fsync of the WAL.
   */
  private kick(): void {
    if (this.syncing) return;
    this.segments.release(); // no fdatasync is using a dropped segment's descriptor now
    if (this.waiting.length === 0) {
      for (const wake of this.idleWaiters.splice(0)) wake();
      return;
    }
    const batch = this.waiting.splice(0);
    const walFd = this.walFd;
    if (walFd === undefined || this.failure !== undefined) {
      const e = this.failure ?? new StorageError('E_READ_ONLY', `${this.path} is open read-only`);
      for (const w of batch) w.reject(e);
      this.kick();
      return;
    }
    this.syncing = true;
    const fail = (err: unknown, what: string) => {
      // After a failed fsync the kernel may have dropped the unwritten pages and a retry can
      // succeed without them (PostgreSQL's "fsyncgate", 2018): fail this batch and every later
      // write rather than acknowledge data that may be gone.
      this.failure ??= wrap(err, 'E_IO', `${what} failed; the log refuses further writes`);
      this.syncing = false;
      for (const w of batch) w.reject(this.failure);
      this.kick();
    };
    const syncWal = () => {
      this.syncStats.fsyncs++;
      this.fsync(walFd, (err) => {
        if (err) return fail(err, `fsync of ${this.path}-wal`);
        this.syncing = false;
        for (const w of batch) w.resolve();
        if (this.walPages >= this.checkpointPages) this.scheduleCheckpoint(true);
        this.kick();
      });
    };
    const { fds, dirs } = this.segments.takeDirty();
    let pending = fds.length + dirs.length;
    if (pending === 0) return syncWal();
    let failed = false;
    const done = (err: unknown, what: string) => {
      if (failed) return;
      if (err) {
        failed = true;
        return fail(err, what);
      }
      if (--pending === 0) syncWal();
    };
    for (const fd of fds) {
      this.syncStats.fdatasyncs++;
      this.fdatasync(fd, (err) => done(err, 'fdatasync of a segment file'));
    }
    for (const dir of dirs) {
      let dirFd: number;
      try {
        dirFd = openSync(dir, 'r');
      } catch (e) {
        done(e, `open of ${dir}`);
        continue;
      }
      this.syncStats.fsyncs++;
      this.fsync(dirFd, (err) => {
        closeSync(dirFd);
        done(err, `fsync of ${dir}`);
      });
    }
  }

  /**
   * Counts the WAL pages a commit added (an estimate: its bytes, plus the pages it touches).
   * Past checkpointMaxPages a checkpoint is scheduled; once the WAL extends to twice that (a
   * checkpoint that cannot keep up, or a caller writing in a loop that never lets the event loop
   * turn) one runs here, inside the write, so the WAL stays bounded whatever the caller does.
   */
  private wrote(bytes: number, pages = 1): void {
    const n = pages + Math.floor(bytes / PAGE_BYTES);
    this.walPages += n;
    this.walEnd += n;
    if (this.walEnd >= 2 * this.checkpointMaxPages) this.checkpointHere();
    else if (this.walPages >= this.checkpointMaxPages) this.scheduleCheckpoint(false);
  }

  /**
   * Starts a checkpoint off every caller's path. On the worker (the default) it starts at once:
   * SQLite's fsyncs and the copy run on the worker's thread. Inline, it runs from setImmediate;
   * unless the WAL was just fsynced (by a group commit), it is first fsynced on the thread pool:
   * SQLite's own fsync of it inside the checkpoint then finds nothing to write, and the event
   * loop is held only while pages are copied and the database is fsynced.
   */
  private scheduleCheckpoint(walSynced: boolean): void {
    if (this.checkpointScheduled || this.checkpointRunning) return;
    if (this.closed || this.failure !== undefined || this.walFd === undefined) return;
    // After a group commit (sync writers) the checkpoint stays on the event loop, as the WAL is
    // already durable and it only copies: on the worker, the store's commits would run in
    // locking_mode NORMAL meanwhile, and single sync puts measured 0.72x of that (A/B, 5 runs).
    const port = walSynced ? undefined : this.checkpointPort;
    if (port !== undefined) {
      try {
        this.setLocking('NORMAL'); // lets the worker's connection in
        this.shared = true;
      } catch (e) {
        this.failure ??= wrap(e, 'E_IO', `checkpoint of ${this.path}: releasing the lock failed`);
        return;
      }
      this.checkpointRunning = true;
      this.pagesAtCheckpointStart = this.walPages;
      const inlineBefore = this.inlineCheckpoints;
      port.run((err, result) => {
        this.checkpointRunning = false;
        // The writes held back by the WAL's bound go on (a failure reaches them at their next write).
        for (const wake of this.checkpointWaiters.splice(0)) wake();
        this.retakeLock();
        if (err !== undefined && err !== null) {
          this.failure ??= wrap(
            err,
            'E_IO',
            `checkpoint of ${this.path} (worker); the log refuses further writes`,
          );
        } else if (result !== undefined && result.busy === 0) {
          this.syncStats.checkpoints++;
          if (this.inlineCheckpoints === inlineBefore) this.checkpointed(result);
        }
        this.kick(); // wakes a close() waiting for this
        // The WAL did not restart (writes came during the checkpoint): copy the rest.
        if (this.walEnd >= this.checkpointMaxPages && this.walPages > 0)
          this.scheduleCheckpoint(false);
      });
      return;
    }
    this.checkpointScheduled = true;
    const run = () => {
      this.checkpointScheduled = false;
      this.checkpointHere();
      this.kick(); // wakes a close() waiting for this
    };
    const walFd = this.walFd;
    if (walSynced) {
      setImmediate(run);
      return;
    }
    this.checkpointSyncing = true;
    this.syncStats.fsyncs++;
    this.fsync(walFd, (err) => {
      this.checkpointSyncing = false;
      if (err) {
        this.checkpointScheduled = false;
        this.failure ??= wrap(err, 'E_IO', `fsync of ${this.path}-wal before a checkpoint failed`);
        this.kick();
        return;
      }
      run();
    });
  }

  /** Sets SQLite's locking mode: NORMAL takes effect at a read, EXCLUSIVE at a write transaction. */
  private setLocking(mode: 'NORMAL' | 'EXCLUSIVE'): void {
    this.db.pragma(`locking_mode = ${mode}`);
    if (mode === 'EXCLUSIVE') {
      this.db.exec('BEGIN IMMEDIATE; COMMIT');
      return;
    }
    this.touch ??= this.db.prepare('SELECT 1 FROM schema_version LIMIT 1');
    this.touch.get();
  }

  /**
   * Back to locking_mode=EXCLUSIVE after a worker checkpoint (the worker's connection is closed
   * by then). SQLITE_BUSY (someone else has the database open) is counted, and the store stays
   * in NORMAL mode until the next checkpoint tries again; anything else fails the log.
   */
  private retakeLock(): void {
    if (this.closed || !this.shared) return;
    this.shared = false;
    try {
      this.setLocking('EXCLUSIVE');
    } catch (e) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      this.db.pragma('locking_mode = NORMAL');
      if (String((e as { code?: unknown })?.code ?? '').startsWith('SQLITE_BUSY')) {
        this.lockStats.retakeBusy++;
        return;
      }
      this.failure ??= wrap(e, 'E_IO', `checkpoint of ${this.path}: taking the lock back failed`);
    }
  }

  /** Updates the WAL estimates after a checkpoint that saw `result`. */
  private checkpointed(result: CheckpointResult): void {
    const during = Math.max(0, this.walPages - this.pagesAtCheckpointStart);
    this.walPages = during + Math.max(0, result.log - result.checkpointed);
    // The next write restarts the WAL only if every frame was copied and none came meanwhile.
    this.walEnd = this.walPages === 0 ? 0 : Math.max(result.log, 0) + during;
  }

  /**
   * Copies the WAL into the database on the store's connection, on the event loop (PASSIVE:
   * never waits; while the worker's checkpoint runs it finds SQLite's checkpoint lock taken and
   * does nothing, and the next write tries again). SQLite fsyncs the WAL before and the database
   * after (synchronous=NORMAL). A failure fails every later write, as a failed fsync does.
   */
  private checkpointHere(): void {
    if (this.closed || this.failure !== undefined || this.walFd === undefined) return;
    try {
      const [row] = this.db.pragma('wal_checkpoint(PASSIVE)') as CheckpointResult[];
      if (row === undefined || row.busy !== 0) return;
      this.syncStats.checkpoints++;
      this.syncStats.inlineCheckpoints++;
      this.inlineCheckpoints++;
      this.pagesAtCheckpointStart = this.walPages;
      this.checkpointed(row);
    } catch (e) {
      this.failure ??= wrap(
        e,
        'E_IO',
        `checkpoint of ${this.path}; the log refuses further writes`,
      );
    }
  }

  /** What every write does after its commit: nothing more, or wait for the group commit. */
  private settle(opts: WriteOptions): Promise<void> {
    if (opts.sync) return this.durable();
    // Backpressure: the WAL reached twice checkpointMaxPages while the worker's checkpoint runs
    // (the fallback on the event loop cannot run then: SQLite's checkpoint lock is taken), so
    // an unsynced write resolves only when that checkpoint is over. A writer that awaits its
    // writes (the learner does) cannot grow the WAL further than what it had in flight.
    if (this.checkpointRunning && this.walEnd >= 2 * this.checkpointMaxPages) {
      this.syncStats.backpressureWaits++;
      return new Promise((resolve) => this.checkpointWaiters.push(resolve));
    }
    return Promise.resolve();
  }

  /**
   * Writes records some of whose values go out of line: checks them all, appends those values
   * to the group's segment, then commits every index row in one transaction; if the commit
   * fails, the appended bytes are given back (the next append writes over them).
   */
  private putOutOfLine(group: number, g: GroupStatements, records: readonly AcceptorRecord[]) {
    const large: AcceptorRecord[] = [];
    let bytes = 0;
    for (const r of records) {
      checkRecordArgument(group, r, this.options);
      if (r.value.length > this.options.outOfLineValueBytes) large.push(r);
      else bytes += r.value.length;
    }
    const placements = this.segments.append(group, large);
    try {
      g.putMixed(records, placements);
    } catch (e) {
      this.segments.rolledBack(placements);
      throw e;
    }
    this.segments.committed(placements);
    this.wrote(bytes + 100 * records.length, 2);
  }

  private hasLarge(records: readonly AcceptorRecord[]): boolean {
    const limit = this.options.outOfLineValueBytes;
    for (const r of records) if ((r?.value?.length ?? 0) > limit) return true;
    return false;
  }

  put(group: number, record: AcceptorRecord, opts: WriteOptions): Promise<void> {
    try {
      this.checkWritable();
      checkGroup(group, this.options);
      checkRecordArgument(group, record, this.options);
      const g = this.group(group, true)!;
      if (record.value.length > this.options.outOfLineValueBytes) {
        this.putOutOfLine(group, g, [record]);
      } else {
        const bytes = encodeStored(group, record);
        g.put.run(record.instanceId, bytes);
        this.wrote(bytes.length);
      }
    } catch (e) {
      return Promise.reject(
        wrap(e, 'E_IO', `write of group ${group} instance ${record?.instanceId}`, {
          group,
          instanceId: record?.instanceId,
        }),
      );
    }
    return this.settle(opts);
  }

  putMany(group: number, records: readonly AcceptorRecord[], opts: WriteOptions): Promise<void> {
    try {
      this.checkWritable();
      checkGroup(group, this.options);
      checkRecords(group, records);
      if (records.length > 0) {
        const g = this.group(group, true)!;
        if (this.hasLarge(records)) {
          this.putOutOfLine(group, g, records);
        } else {
          g.putMany(records);
          let bytes = 0;
          for (const r of records) bytes += r.value.length + 64;
          this.wrote(bytes);
        }
      }
    } catch (e) {
      return Promise.reject(wrap(e, 'E_IO', `batch write of group ${group}`, { group }));
    }
    return this.settle(opts);
  }

  /**
   * A record from its stored row: an inline record decoded as it is; an out-of-line one's value
   * read from its segment (one pread) and checked against the CRC in the row.
   */
  private decodeRow(
    group: number,
    instanceId: number,
    bytes: Uint8Array,
    seg: number | null,
  ): AcceptorRecord {
    const record = decodeStored(group, instanceId, plain(bytes));
    if (seg === null) return record;
    const locator = decodeLocator(record.value);
    if (locator === undefined || locator.segment !== seg)
      throw corruptRecord(group, instanceId, `its locator does not name segment ${seg}`);
    let value: Uint8Array | undefined;
    try {
      value = this.segments.read(group, seg, locator.offset, locator.length);
    } catch (e) {
      throw wrap(e, 'E_IO', `read of segment ${seg} for instance ${instanceId}`, {
        group,
        instanceId,
      });
    }
    if (value === undefined)
      throw corruptRecord(group, instanceId, `its value is missing from segment ${seg}`);
    if (crc32(value) !== locator.crc)
      throw corruptRecord(group, instanceId, `its value in segment ${seg} fails its CRC`);
    // The value is a fresh buffer of ours: its CRC serves the sender's frame and the chain.
    rememberCrc(value, locator.crc);
    return { ...record, value };
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
    return row === undefined ? undefined : this.decodeRow(group, instanceId, row[0], row[1]);
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
    return this.iterate(group, fromInstanceId, toInstanceIdExclusive);
  }

  /**
   * Reads in chunks with .all(), never holding a statement open across a yield: better-sqlite3
   * refuses every other statement on the connection while one is being iterated, so a caller
   * that writes while it walks the log would fail. The first chunk assumes values of the maximum
   * size; later ones are sized by the row bytes seen so far, so a chunk holds about
   * rangeChunkBytes. An out-of-line value is read from its segment as its record is handed out,
   * so a chunk of index rows holds no value bytes.
   */
  private *iterate(group: number, from: number, to: number): IterableIterator<AcceptorRecord> {
    const { rangeChunkBytes, rangeChunkMaxRecords, maxValueBytes } = this.options;
    let limit = Math.max(
      1,
      Math.min(rangeChunkMaxRecords, Math.floor(rangeChunkBytes / maxValueBytes)),
    );
    let next = from;
    let seenRecords = 0;
    let seenBytes = 0;
    // After a chunk with out-of-line values, the next is read row by row at once (large values
    // come in runs): no blob query that would only decline.
    let byRows = false;
    while (next < to) {
      this.checkOpen();
      let rows: Array<[number, Uint8Array, number | null]> | undefined;
      let chunk: ChunkRows | undefined;
      try {
        const g = this.group(group, false);
        if (g === undefined) return;
        if (!byRows) chunk = readChunk(g, next, to, limit);
        if (chunk === undefined) {
          this.rangeStats.rowChunks++;
          rows = g.rangeChunk.all(next, to, limit) as typeof rows;
          byRows = rows!.some((row) => row[2] !== null);
        } else {
          this.rangeStats.blobChunks++;
        }
      } catch (e) {
        throw wrapRead(e, group, next, `range read of group ${group} from ${next}`);
      }
      let count: number;
      let last: number;
      if (chunk !== undefined) {
        const { blob, ids, ends } = chunk;
        count = ids.length;
        let at = 0;
        for (let i = 0; i < count; i++) {
          const end = ends[i]!;
          const start = at + KEY_BYTES;
          seenBytes += end - start;
          yield decodeStored(
            group,
            ids[i]!,
            new Uint8Array(blob.buffer, blob.byteOffset + start, end - start),
          );
          at = end;
        }
        last = count > 0 ? ids[count - 1]! : next;
      } else {
        for (const [id, bytes, seg] of rows!) {
          seenBytes += bytes.length;
          yield this.decodeRow(group, id, bytes, seg);
        }
        count = rows!.length;
        last = count > 0 ? rows![count - 1]![0] : next;
      }
      if (count < limit) return;
      next = last + 1;
      seenRecords += count;
      const average = Math.max(1, seenBytes / seenRecords);
      limit = Math.max(1, Math.min(rangeChunkMaxRecords, Math.floor(rangeChunkBytes / average)));
    }
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
      this.wrote(0);
    } catch (e) {
      return Promise.reject(wrap(e, 'E_IO', `min chosen instance id of group ${group}`, { group }));
    }
    return this.durable();
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
      this.wrote(value.length);
    } catch (e) {
      return Promise.reject(wrap(e, 'E_IO', `meta write ${key} of group ${group}`, { group }));
    }
    return this.settle(opts);
  }

  /**
   * Deletes the lowest rows below `instanceId` (bounded as the port says), then, in the same
   * transaction, the segments that hold only instances below both `instanceId` and the lowest
   * row left; their files are unlinked after the commit. The bytes a step frees are bounded by
   * maxDeleteBytes plus at most one partly freed segment.
   */
  deleteBelow(group: number, instanceId: number, maxRecords: number): number {
    this.checkWritable();
    checkGroup(group, this.options);
    checkInstanceId(instanceId, group);
    const limit = deleteLimit(maxRecords, group, this.options);
    if (limit === 0) return 0;
    try {
      const g = this.group(group, false);
      if (g === undefined) return 0;
      const lowest = g.lowest.all(instanceId, limit) as Array<[number, number]>;
      const count = deleteCount(
        lowest.map((row) => row[1]),
        this.options,
      );
      if (count === 0) return 0;
      let deleted = 0;
      let doomed: Segment[] = [];
      this.db.transaction(() => {
        // The `count` lowest records are exactly those up to the last one counted.
        deleted = g.deleteThrough.run(lowest[count - 1]![0]).changes;
        const left = g.min.get() as number | null;
        doomed = this.segments.below(group, Math.min(instanceId, left ?? instanceId));
        for (const s of doomed) this.segmentRows.delete.run(group, s.id);
      })();
      this.wrote(0, 1 + Math.floor(deleted / 50));
      this.segments.forget(doomed);
      if (!this.syncing) this.segments.release();
      // Not durable, like the row deletes: after a power cut the rows may come back without
      // their file, below the min chosen id; the next open deletes them again (forgetCompacted).
      this.segments.unlink(doomed);
      return deleted;
    } catch (e) {
      throw wrap(e, 'E_IO', `delete below ${instanceId} in group ${group}`, { group });
    }
  }

  /**
   * Removes the group's rows and segment rows, and runs `alsoInTransaction`, in one
   * transaction; once it is durable, unlinks the segment files.
   */
  private dropGroup(group: number, alsoInTransaction: () => void): Promise<void> {
    let doomed: Segment[];
    try {
      this.checkWritable();
      checkGroup(group, this.options);
      const g = this.group(group, false);
      doomed = this.segments.all(group);
      this.db.transaction(() => {
        g?.clear.run();
        this.segmentRows.clearGroup.run(group);
        alsoInTransaction();
      })();
      this.wrote(0, 4);
      this.segments.forget(doomed);
    } catch (e) {
      return Promise.reject(wrap(e, 'E_IO', `clear of group ${group}`, { group }));
    }
    // Unlinked only once the commit that forgot them is durable: a power cut before it brings
    // the rows back, and they must find their bytes. A crash after it leaves files no row
    // names, which the next open removes.
    return this.durable().then(() => {
      try {
        this.segments.unlink(doomed);
      } catch (e) {
        throw wrap(e, 'E_IO', `unlink of the segments of group ${group}`, { group });
      }
    });
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
   * Refuses new calls, waits for the group commits under way, fdatasyncs the segments written
   * since, then closes the database (SQLite then checkpoints the WAL into the database file,
   * with its fsyncs, and deletes the WAL): after close() every write is durable.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (
      this.syncing ||
      this.waiting.length > 0 ||
      this.checkpointSyncing ||
      this.checkpointRunning
    ) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
    // The worker's connection closes first: the store's is then the last one, and SQLite's
    // close checkpoints the WAL and deletes it.
    let workerError: unknown;
    try {
      await this.checkpointPort?.close();
    } catch (e) {
      workerError = e;
    }
    // Everything written is made durable: the segments here, the WAL by SQLite's close.
    let syncError: unknown;
    if (this.walFd !== undefined && this.failure === undefined) {
      const { fds, dirs } = this.segments.takeDirty();
      try {
        await Promise.all([
          ...fds.map((fd) => promisify(this.fdatasync, fd)),
          ...dirs.map(async (dir) => {
            const dirFd = openSync(dir, 'r');
            try {
              await promisify(this.fsync, dirFd);
            } finally {
              closeSync(dirFd);
            }
          }),
        ]);
      } catch (e) {
        syncError = e; // reported below, after the files are closed
      }
    }
    try {
      this.segments.close();
      if (this.walFd !== undefined) closeSync(this.walFd);
      this.walFd = undefined;
      this.db.close();
      this.lockDb?.close();
    } catch (e) {
      throw wrap(e, 'E_IO', `close of ${this.path}`);
    }
    if (workerError !== undefined)
      throw wrap(workerError, 'E_IO', `close of the checkpoint worker of ${this.path}`);
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

  /** What the last open repaired in the segment files (tests, status pages). */
  get recovery(): Readonly<{ truncatedBytes: number; orphanFiles: number; missingFiles: number }> {
    return this.segments.recovery;
  }
}

function promisify(fn: FsyncFn, fd: number): Promise<void> {
  return new Promise((resolve, reject) => fn(fd, (err) => (err ? reject(err) : resolve())));
}

/**
 * Refuses a log the OS will not let us write (read-only mount, write-protected file or
 * directory) before SQLite sees it: SQLite would open it read-only without a word and fail later
 * with a lock error. access(2), not open(2): this process may already hold the log open in
 * another store, and closing any descriptor of the file would drop that store's POSIX locks.
 */
function checkWritable(path: string): void {
  try {
    accessSync(dirname(path), constants.W_OK); // the WAL is created beside the database
    if (existsSync(path)) accessSync(path, constants.W_OK);
  } catch (e) {
    const code = String((e as { code?: unknown }).code ?? '');
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS')
      throw new StorageError('E_READ_ONLY', `the paxos log ${path} is write-protected (${code})`, {
        cause: e,
      });
    throw wrap(e, 'E_OPEN_FAILED', `cannot open the paxos log ${path}`);
  }
}

/** Bytes of a row's key in front of its record in a chunk read as one blob (rangeBlob). */
const KEY_BYTES = 8;
/** Offset of the value length (u32, little-endian) in a stored record (@tspaxos/crc-wasm layout). */
const RECORD_LENGTH_OFFSET = 4;

/** A chunk of inline rows read as one blob: their keys, and where each row ends in the blob. */
interface ChunkRows {
  blob: Uint8Array;
  ids: number[];
  ends: number[];
}

/**
 * Reads a chunk of rows as one blob (one SQLite statement step and one buffer for the whole
 * chunk, where .all() makes an array, a number and a buffer per row: the sender's profile
 * showed that per-row work as its largest cost). Undefined when the chunk must be read row by
 * row instead: it holds out-of-line values (their segment reads need the row), or the blob does
 * not split exactly into ascending keys in [from, to) each followed by a record of the length
 * its header says. The split checks only the framing; each record is then decoded and checked
 * (CRC, layout, filed under its key) as a row's is, and a damaged record that breaks the
 * framing is reported by the row-by-row read, which names it.
 */
function readChunk(
  g: GroupStatements,
  from: number,
  to: number,
  limit: number,
): ChunkRows | undefined {
  const [count, outOfLine, raw] = g.rangeBlob.get(from, to, limit) as [
    number,
    number,
    Uint8Array | null,
  ];
  if (count === 0) return { blob: new Uint8Array(0), ids: [], ends: [] };
  if (outOfLine !== 0 || !(raw instanceof Uint8Array)) return undefined;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const ids: number[] = new Array<number>(count);
  const ends: number[] = new Array<number>(count);
  let at = 0;
  let previous = from - 1;
  for (let i = 0; i < count; i++) {
    const headerEnd = at + KEY_BYTES + RECORD_HEADER_BYTES;
    if (headerEnd > raw.length) return undefined;
    const hi = view.getUint32(at, false);
    if (hi > 0x1fffff) return undefined;
    const id = hi * 0x1_0000_0000 + view.getUint32(at + 4, false);
    if (id <= previous || id >= to) return undefined;
    const end =
      at +
      KEY_BYTES +
      RECORD_OVERHEAD_BYTES +
      view.getUint32(at + KEY_BYTES + RECORD_LENGTH_OFFSET, true);
    if (end > raw.length) return undefined;
    ids[i] = id;
    ends[i] = end;
    previous = id;
    at = end;
  }
  return at === raw.length ? { blob: raw, ids, ends } : undefined;
}

/** A plain Uint8Array view of a Buffer SQLite returned (no copy): what callers get, on both stores. */
function plain(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function prepareMeta(db: Db) {
  return {
    get: db.prepare('SELECT value FROM meta WHERE grp = ? AND key = ?').pluck(),
    set: db.prepare('INSERT OR REPLACE INTO meta (grp, key, value) VALUES (?, ?, ?)'),
    clear: db.prepare('DELETE FROM meta WHERE grp = ?'),
  };
}

function prepareSegments(db: Db) {
  return {
    all: db.prepare('SELECT grp, seg, end_bytes, max_instance FROM segments').raw(),
    upsert: db.prepare(
      `INSERT INTO segments (grp, seg, end_bytes, max_instance) VALUES (?, ?, ?, ?)
       ON CONFLICT (grp, seg) DO UPDATE SET end_bytes = excluded.end_bytes,
         max_instance = max(max_instance, excluded.max_instance)`,
    ),
    delete: db.prepare('DELETE FROM segments WHERE grp = ? AND seg = ?'),
    clearGroup: db.prepare('DELETE FROM segments WHERE grp = ?'),
  };
}
