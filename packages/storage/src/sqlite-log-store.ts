// SqliteLogStore: the paxos log in one SQLite database per node data directory (better-sqlite3,
// WAL mode). Records are stored as encodeRecord bytes, one rowid table per group keyed by
// instance id (`records_<group>`: the key is (group, instanceId), and each group's table is the
// cheapest B-tree SQLite has, the same shape as the raw baseline of the benchmark). A `meta`
// table holds, per group, the min chosen instance id, the checkpoint instance id, and system and
// master variables as bytes, each sealed with a CRC (codec.ts).
//
// Durability and group commit. Commits run with synchronous=NORMAL: a committed transaction is
// in the WAL file, so the OS has it and a process kill cannot lose it, but it is not yet
// fsynced. A `sync: true` write then waits for an fsync of the WAL file done on libuv's thread
// pool (fs.fsync), so the event loop never blocks on it: every sync write committed before an
// fsync starts resolves when it ends, and writes committed meanwhile share the next one. One
// fsync serves any number of concurrent writers (bench: 64 writers, ~13× faster than one by one).
// Why an fsync of the WAL is enough: recovery replays every WAL frame up to the last valid commit
// frame, so once the frames of a commit are on disk, so is the commit. When SQLite checkpoints
// (copies the WAL into the database and later restarts the WAL from its start), it fsyncs the WAL
// before and the database after, in synchronous=NORMAL too, so nothing acknowledged lives only in
// a part of the WAL that is about to be reused. The WAL is reused in place, never deleted while
// the log is open (it is deleted only by close()), so the descriptor we keep always names the
// file SQLite writes to.
//
// One process per log: the database is opened with locking_mode=EXCLUSIVE, so a second node
// pointed at the same directory fails at open with E_LOCKED instead of sharing an acceptor's
// promises (and the WAL index lives in heap memory: no -shm file).
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  fsync,
  fsyncSync,
  mkdirSync,
  openSync,
  statSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import type { AcceptorRecord } from '@tspaxos/crc-wasm';
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
  type WriteOptions,
} from './log-store';
import { resolveStorageOptions, type StorageOptions } from './options';

/**
 * Version of the schema this code writes; opening a newer one refuses (E_SCHEMA_TOO_NEW).
 * 1: meta values stored bare. 2: meta values sealed with a CRC (opening a version 1 log
 * upgrades it in one transaction).
 */
export const SCHEMA_VERSION = 2;
/** File name of the database inside a node's data directory. */
export const DATABASE_FILE = 'paxos.sqlite';
/**
 * Rows per multi-row INSERT in putMany: one statement execution per 32 records instead of one
 * per record; the per-call cost of better-sqlite3 is what it saves (bench: ~1.3× at 100 B;
 * 16 gains less, 64 nothing more).
 */
export const INSERT_ROWS_PER_STATEMENT = 32;

type Db = Database.Database;
type FsyncFn = (fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => void;

interface GroupStatements {
  put: Database.Statement;
  putMany: Database.Transaction<(records: readonly AcceptorRecord[]) => void>;
  get: Database.Statement;
  rangeChunk: Database.Statement;
  max: Database.Statement;
  lowest: Database.Statement;
  deleteThrough: Database.Statement;
  clear: Database.Statement;
}

function classify(e: unknown, fallback: StorageErrorCode): StorageErrorCode {
  const code = String((e as { code?: unknown })?.code ?? '');
  if (code.startsWith('SQLITE_FULL') || code === 'ENOSPC') return 'E_DISK_FULL';
  if (code.startsWith('SQLITE_READONLY') || code === 'EROFS' || code === 'EACCES')
    return 'E_READ_ONLY';
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return 'E_LOCKED';
  if (code.startsWith('SQLITE_NOTADB') || code.startsWith('SQLITE_CANTOPEN'))
    return 'E_OPEN_FAILED';
  if (code.startsWith('SQLITE_IOERR')) return 'E_IO';
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
  /** Cap on the database size in bytes; writes beyond it fail with E_DISK_FULL, as on a full disk. */
  maxDatabaseBytes?: number;
  /**
   * WAL pages (4 KiB) after which a commit also checkpoints the WAL into the database (SQLite's
   * wal_autocheckpoint; its default, 1000, is ours). Small values exercise WAL restarts (tests).
   */
  checkpointPages?: number;
  /** Replaces fs.fsync in the group commit: fault injection and tests only. */
  fsync?: FsyncFn;
}

export class SqliteLogStore implements LogStore {
  readonly options: StorageOptions;
  readonly path: string;
  private readonly db: Db;
  private readonly meta: ReturnType<typeof prepareMeta>;
  private readonly groups = new Map<number, GroupStatements>();
  private readonly tables: Set<string>;
  private readonly fsync: FsyncFn;
  /** The WAL file, kept open for the group commit's fsync (undefined when read-only). */
  private walFd: number | undefined;
  /** Sync writes committed and waiting for the next fsync to start. */
  private waiting: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  private syncing = false;
  private idleWaiters: Array<() => void> = [];
  /** Set by a failed fsync: the kernel may have dropped the dirty pages, so no later write can be trusted. */
  private failure: StorageError | undefined;
  private closed = false;
  /** fsyncs done, and sync writes they covered: the group commit's effect. */
  readonly syncStats = { fsyncs: 0, syncWrites: 0 };

  /** Opens (creating if needed) the log in `dataDir`/paxos.sqlite, or at a path ending in .sqlite or .db. */
  static open(dataDirOrFile: string, options: SqliteLogStoreOptions = {}): SqliteLogStore {
    return new SqliteLogStore(dataDirOrFile, options);
  }

  private constructor(dataDirOrFile: string, options: SqliteLogStoreOptions) {
    this.options = resolveStorageOptions(options);
    this.fsync = options.fsync ?? fsync;
    const readonly = options.readonly ?? false;
    const isFile = dataDirOrFile.endsWith('.sqlite') || dataDirOrFile.endsWith('.db');
    this.path = isFile ? dataDirOrFile : join(dataDirOrFile, DATABASE_FILE);
    try {
      if (!isFile && !readonly) mkdirSync(dataDirOrFile, { recursive: true });
    } catch (e) {
      throw wrap(e, 'E_OPEN_FAILED', `cannot create the data directory ${dataDirOrFile}`);
    }
    if (!readonly) checkWritable(this.path);
    let db: Db | undefined;
    try {
      db = new Database(this.path, { readonly, fileMustExist: readonly, timeout: 0 });
      if (!readonly) {
        db.pragma('locking_mode = EXCLUSIVE'); // before WAL mode: WAL index in heap, no -shm
        const mode = db.pragma('journal_mode = WAL', { simple: true });
        if (mode !== 'wal') throw new StorageError('E_OPEN_FAILED', `WAL mode refused (${mode})`);
        db.pragma('synchronous = NORMAL');
        const pages = options.checkpointPages ?? 1000;
        if (!Number.isSafeInteger(pages) || pages < 1)
          throw new StorageError('E_BAD_ARGUMENT', `checkpointPages must be a positive integer`);
        db.pragma(`wal_autocheckpoint = ${pages}`);
      }
      if (options.maxDatabaseBytes !== undefined) {
        if (!Number.isSafeInteger(options.maxDatabaseBytes) || options.maxDatabaseBytes < 1)
          throw new StorageError('E_BAD_ARGUMENT', 'maxDatabaseBytes must be a positive integer');
        const pageBytes = db.pragma('page_size', { simple: true }) as number;
        const pages = Math.max(1, Math.floor(options.maxDatabaseBytes / pageBytes));
        db.pragma(`max_page_count = ${pages}`);
      }
      this.migrate(db, readonly); // its first read takes the exclusive lock
      this.meta = prepareMeta(db);
      this.tables = new Set(
        db
          .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'records_*'")
          .pluck()
          .all() as string[],
      );
      if (!readonly) this.walFd = this.openWal(dirname(this.path));
    } catch (e) {
      try {
        db?.close();
      } catch {
        // the open failure is what matters
      }
      throw wrap(e, 'E_OPEN_FAILED', `cannot open the paxos log ${this.path}`);
    }
    this.db = db;
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
      `);
      if (version === 1) {
        // Version 1 kept meta values bare: seal each with its CRC.
        const rows = db.prepare('SELECT grp, key, value FROM meta').raw().all() as Array<
          [number, string, Uint8Array]
        >;
        const update = db.prepare('UPDATE meta SET value = ? WHERE grp = ? AND key = ?');
        for (const [grp, key, value] of rows) update.run(sealMeta(key, value), grp, key);
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
        `CREATE TABLE IF NOT EXISTS ${table} (instance_id INTEGER PRIMARY KEY, record BLOB NOT NULL)`,
      );
      this.tables.add(table);
    }
    const insert = 'INSERT OR REPLACE INTO ' + table + ' (instance_id, record) VALUES ';
    const put = this.db.prepare(`${insert}(?, ?)`);
    const putRows = this.db.prepare(
      insert + new Array(INSERT_ROWS_PER_STATEMENT).fill('(?, ?)').join(', '),
    );
    const args: unknown[] = new Array(2 * INSERT_ROWS_PER_STATEMENT);
    const options = this.options;
    g = {
      put,
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
            args[2 * k + 1] = encodeStored(group, r);
          }
          putRows.run(args);
        }
        for (; i < n; i++) {
          const r = records[i]!;
          checkRecordArgument(group, r, options);
          put.run(r.instanceId, encodeStored(group, r));
        }
      }),
      get: this.db.prepare(`SELECT record FROM ${table} WHERE instance_id = ?`).pluck(),
      rangeChunk: this.db
        .prepare(
          `SELECT instance_id, record FROM ${table} WHERE instance_id >= ? AND instance_id < ? ORDER BY instance_id LIMIT ?`,
        )
        .raw(),
      max: this.db.prepare(`SELECT max(instance_id) FROM ${table}`).pluck(),
      // length() of a blob is read from the cell header: the overflow pages are not touched.
      lowest: this.db
        .prepare(
          `SELECT instance_id, length(record) FROM ${table} WHERE instance_id < ? ORDER BY instance_id LIMIT ?`,
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
  }

  private checkWritable(): void {
    this.checkOpen();
    if (this.failure !== undefined) throw this.failure;
  }

  /** Resolves after an fsync of the WAL that began after this call (group commit). */
  private durable(): Promise<void> {
    this.syncStats.syncWrites++;
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.syncing) return;
    if (this.waiting.length === 0) {
      for (const wake of this.idleWaiters.splice(0)) wake();
      return;
    }
    const batch = this.waiting.splice(0);
    if (this.walFd === undefined || this.failure !== undefined) {
      const e = this.failure ?? new StorageError('E_READ_ONLY', `${this.path} is open read-only`);
      for (const w of batch) w.reject(e);
      this.kick();
      return;
    }
    this.syncing = true;
    this.syncStats.fsyncs++;
    this.fsync(this.walFd, (err) => {
      this.syncing = false;
      if (err) {
        // After a failed fsync the kernel may have dropped the unwritten pages and a retry can
        // succeed without them (PostgreSQL's "fsyncgate", 2018): fail this batch and every
        // later write rather than acknowledge data that may be gone.
        this.failure ??= wrap(
          err,
          'E_IO',
          `fsync of ${this.path}-wal failed; the log refuses further writes`,
        );
        for (const w of batch) w.reject(this.failure);
      } else {
        for (const w of batch) w.resolve();
      }
      this.kick();
    });
  }

  /** What every write does after its commit: nothing more, or wait for the group commit. */
  private settle(opts: WriteOptions): Promise<void> {
    return opts.sync ? this.durable() : Promise.resolve();
  }

  put(group: number, record: AcceptorRecord, opts: WriteOptions): Promise<void> {
    try {
      this.checkWritable();
      checkGroup(group, this.options);
      checkRecordArgument(group, record, this.options);
      const bytes = encodeStored(group, record);
      this.group(group, true)!.put.run(record.instanceId, bytes);
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
      if (records.length > 0) this.group(group, true)!.putMany(records);
    } catch (e) {
      return Promise.reject(wrap(e, 'E_IO', `batch write of group ${group}`, { group }));
    }
    return this.settle(opts);
  }

  get(group: number, instanceId: number): AcceptorRecord | undefined {
    this.checkOpen();
    checkGroup(group, this.options);
    checkInstanceId(instanceId, group);
    let bytes: Uint8Array | undefined;
    try {
      bytes = this.group(group, false)?.get.get(instanceId) as Uint8Array | undefined;
    } catch (e) {
      throw wrapRead(e, group, instanceId, `read of group ${group} instance ${instanceId}`);
    }
    return bytes === undefined ? undefined : decodeStored(group, instanceId, plain(bytes));
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
   * size; later ones are sized by the bytes seen so far, so a chunk holds about rangeChunkBytes.
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
    while (next < to) {
      this.checkOpen();
      let rows: Array<[number, Uint8Array]>;
      try {
        const g = this.group(group, false);
        if (g === undefined) return;
        rows = g.rangeChunk.all(next, to, limit) as Array<[number, Uint8Array]>;
      } catch (e) {
        throw wrapRead(e, group, next, `range read of group ${group} from ${next}`);
      }
      for (const [id, bytes] of rows) {
        seenBytes += bytes.length;
        yield decodeStored(group, id, plain(bytes));
      }
      if (rows.length < limit) return;
      next = rows[rows.length - 1]![0] + 1;
      seenRecords += rows.length;
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
    } catch (e) {
      return Promise.reject(wrap(e, 'E_IO', `meta write ${key} of group ${group}`, { group }));
    }
    return this.settle(opts);
  }

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
      // The `count` lowest records are exactly those up to the last one counted.
      return g.deleteThrough.run(lowest[count - 1]![0]).changes;
    } catch (e) {
      throw wrap(e, 'E_IO', `delete below ${instanceId} in group ${group}`, { group });
    }
  }

  clearGroup(group: number): Promise<void> {
    try {
      this.checkWritable();
      checkGroup(group, this.options);
      const g = this.group(group, false);
      this.db.transaction(() => {
        g?.clear.run();
        this.meta.clear.run(group);
      })();
    } catch (e) {
      return Promise.reject(wrap(e, 'E_IO', `clear group ${group}`, { group }));
    }
    return this.durable();
  }

  resetGroup(group: number, opts: { minChosenInstanceId: number }): Promise<void> {
    try {
      this.checkWritable();
      checkGroup(group, this.options);
      checkInstanceId(opts?.minChosenInstanceId, group);
      const g = this.group(group, false);
      this.db.transaction(() => {
        g?.clear.run();
        this.meta.set.run(
          group,
          MIN_CHOSEN_KEY,
          sealMeta(MIN_CHOSEN_KEY, encodeInstanceId(opts.minChosenInstanceId)),
        );
      })();
    } catch (e) {
      return Promise.reject(wrap(e, 'E_IO', `reset of group ${group}`, { group }));
    }
    return this.durable();
  }

  /**
   * Refuses new calls, waits for the fsyncs under way, then closes the database (SQLite then
   * checkpoints the WAL into the database file and deletes the WAL).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.syncing || this.waiting.length > 0) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
    try {
      if (this.walFd !== undefined) closeSync(this.walFd);
      this.walFd = undefined;
      this.db.close();
    } catch (e) {
      throw wrap(e, 'E_IO', `close of ${this.path}`);
    }
  }

  /** Size of the database and WAL files in bytes (status pages). */
  sizeBytes(): number {
    let n = 0;
    for (const f of [this.path, `${this.path}-wal`]) {
      try {
        n += statSync(f).size;
      } catch {
        // absent
      }
    }
    return n;
  }
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
