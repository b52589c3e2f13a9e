// SqliteLogStore: the paxos log in one SQLite database per node data directory (better-sqlite3,
// WAL mode). Records are stored as encodeRecord bytes, one rowid table per group keyed by instance
// id; a meta table holds, per group, the min chosen instance id, checkpoint instance id, and system/master
// variables.
//
// Durability. Commits run with synchronous=NORMAL, so a commit is in the WAL (and survives a
// process kill: the OS has the bytes) but is not yet fsynced. A `sync: true` write then waits
// for an fsync of the WAL file: group commit. All sync writes committed before an fsync starts
// resolve when it ends; those that arrive meanwhile share the next one. SQLite itself fsyncs the
// WAL before each checkpoint and the database after it, so checkpointed data is durable too.
import { closeSync, existsSync, fsync, mkdirSync, openSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { AcceptorRecord } from '@tspaxos/crc-wasm';
import Database from 'better-sqlite3';
import { decodeStored, encodeStored } from './codec';
import { StorageError, type StorageErrorCode } from './errors';
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

/** Version of the schema this code writes; opening a newer one refuses (E_SCHEMA_TOO_NEW). */
export const SCHEMA_VERSION = 1;
/** File name of the database inside a node's data directory. */
export const DATABASE_FILE = 'paxos.sqlite';

type Db = Database.Database;

interface GroupStatements {
  put: Database.Statement;
  putMany: Database.Transaction<(records: readonly AcceptorRecord[]) => void>;
  get: Database.Statement;
  range: Database.Statement;
  max: Database.Statement;
  deleteBelow: Database.Statement;
  clear: Database.Statement;
}

function classify(e: unknown, fallback: StorageErrorCode): StorageErrorCode {
  const code = (e as { code?: string }).code ?? '';
  if (code.startsWith('SQLITE_FULL')) return 'E_DISK_FULL';
  if (code.startsWith('SQLITE_READONLY')) return 'E_READ_ONLY';
  if (code.startsWith('SQLITE_NOTADB') || code.startsWith('SQLITE_CORRUPT')) return 'E_OPEN_FAILED';
  if (code.startsWith('SQLITE_CANTOPEN')) return 'E_OPEN_FAILED';
  if (code === 'EROFS' || code === 'EACCES') return 'E_READ_ONLY';
  if (code === 'ENOSPC') return 'E_DISK_FULL';
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
  return new StorageError(code, `${what}: ${(e as Error).message ?? String(e)}`, {
    ...where,
    cause: e,
  });
}

export interface SqliteLogStoreOptions extends Partial<StorageOptions> {
  /** Open read-only (inspection tools); writes fail with E_READ_ONLY. */
  readonly?: boolean;
  /** Cap on the database size; writes beyond it fail with E_DISK_FULL, as on a full disk. */
  maxDatabaseBytes?: number;
}

export class SqliteLogStore implements LogStore {
  readonly options: StorageOptions;
  readonly path: string;
  private readonly db: Db;
  private readonly stmt: ReturnType<SqliteLogStore['prepare']>;
  private readonly groups = new Map<number, GroupStatements>();
  private readonly tables: Set<string>;
  private walFd: number | undefined;
  private waiting: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  private syncing = false;
  private closed = false;
  /** fsyncs done, and sync writes they covered: the group commit's effect. */
  readonly syncStats = { fsyncs: 0, syncWrites: 0 };

  /** Opens (creating if needed) the log in `dataDir`/paxos.sqlite, or at a file path ending in .sqlite. */
  static open(dataDirOrFile: string, options: SqliteLogStoreOptions = {}): SqliteLogStore {
    return new SqliteLogStore(dataDirOrFile, options);
  }

  private constructor(dataDirOrFile: string, options: SqliteLogStoreOptions) {
    this.options = { ...DEFAULT_STORAGE_OPTIONS, ...options };
    const isFile = dataDirOrFile.endsWith('.sqlite') || dataDirOrFile.endsWith('.db');
    try {
      if (!isFile && !options.readonly) mkdirSync(dataDirOrFile, { recursive: true });
    } catch (e) {
      throw wrap(e, 'E_OPEN_FAILED', `cannot create data directory ${dataDirOrFile}`);
    }
    this.path = isFile ? dataDirOrFile : join(dataDirOrFile, DATABASE_FILE);
    let db: Db | undefined;
    try {
      db = new Database(this.path, {
        readonly: options.readonly ?? false,
        fileMustExist: options.readonly ?? false,
      });
      if (!options.readonly) {
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = NORMAL');
      }
      db.pragma('busy_timeout = 5000');
      if (options.maxDatabaseBytes !== undefined) {
        const pageBytes = db.pragma('page_size', { simple: true }) as number;
        db.pragma(
          `max_page_count = ${Math.max(1, Math.floor(options.maxDatabaseBytes / pageBytes))}`,
        );
      }
      this.migrate(db, options.readonly ?? false);
    } catch (e) {
      db?.close();
      throw wrap(e, 'E_OPEN_FAILED', `cannot open the paxos log ${this.path}`);
    }
    this.db = db;
    this.stmt = this.prepare(db);
    this.tables = new Set(this.stmt.tables.all() as string[]);
  }

  private migrate(db: Db, readonly: boolean): void {
    const hasSchema = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
      .get();
    if (hasSchema) {
      const row = db.prepare('SELECT version FROM schema_version').get() as
        { version: number } | undefined;
      const version = row?.version ?? 0;
      if (version > SCHEMA_VERSION) {
        throw new StorageError(
          'E_SCHEMA_TOO_NEW',
          `${this.path} has schema version ${version}; this code knows ${SCHEMA_VERSION}: use a newer tspaxos`,
        );
      }
      if (version === SCHEMA_VERSION) return;
    }
    const tables = db
      .prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'")
      .get() as { n: number };
    if (!hasSchema && tables.n > 0) {
      throw new StorageError(
        'E_OPEN_FAILED',
        `${this.path} is a SQLite database but not a tspaxos log`,
      );
    }
    if (readonly) throw new StorageError('E_OPEN_FAILED', `${this.path} has no tspaxos schema`);
    db.exec(`
      CREATE TABLE IF NOT EXISTS meta (
        grp INTEGER NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (grp, key)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
      DELETE FROM schema_version;
      INSERT INTO schema_version (version) VALUES (${SCHEMA_VERSION});
    `);
  }

  private prepare(db: Db) {
    return {
      getMeta: db.prepare('SELECT value FROM meta WHERE grp = ? AND key = ?').pluck(),
      setMeta: db.prepare('INSERT OR REPLACE INTO meta (grp, key, value) VALUES (?, ?, ?)'),
      clearMeta: db.prepare('DELETE FROM meta WHERE grp = ?'),
      tables: db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'records\\_%' ESCAPE '\\'").pluck(),
    };
  }

  /**
   * Each group's records live in their own rowid table keyed by instance id (records_<group>):
   * the cheapest B-tree SQLite has, the same shape as the raw baseline of the benchmark. The
   * table is created on the first write; reads of a group never written find nothing.
   */
  private group(group: number, create: boolean): GroupStatements | undefined {
    let g = this.groups.get(group);
    if (g !== undefined) return g;
    const table = `records_${group}`;
    if (!this.tables.has(table)) {
      if (!create) return undefined;
      this.db.exec(`CREATE TABLE IF NOT EXISTS ${table} (instance_id INTEGER PRIMARY KEY, record BLOB NOT NULL)`);
      this.tables.add(table);
    }
    const put = this.db.prepare(`INSERT OR REPLACE INTO ${table} (instance_id, record) VALUES (?, ?)`);
    g = {
      put,
      putMany: this.db.transaction((records: readonly AcceptorRecord[]) => {
        for (const r of records) {
          checkRecordArgument(group, r, this.options);
          put.run(r.instanceId, encodeStored(group, r));
        }
      }),
      get: this.db.prepare(`SELECT record FROM ${table} WHERE instance_id = ?`).pluck(),
      range: this.db.prepare(`SELECT instance_id, record FROM ${table} WHERE instance_id >= ? AND instance_id < ? ORDER BY instance_id`).raw(),
      max: this.db.prepare(`SELECT max(instance_id) FROM ${table}`).pluck(),
      deleteBelow: this.db.prepare(
        `DELETE FROM ${table} WHERE instance_id IN (SELECT instance_id FROM ${table} WHERE instance_id < ? ORDER BY instance_id LIMIT ?)`,
      ),
      clear: this.db.prepare(`DELETE FROM ${table}`),
    };
    this.groups.set(group, g);
    return g;
  }

  private open(): void {
    if (this.closed) throw new StorageError('E_CLOSED', `the paxos log ${this.path} is closed`);
  }

  /** Resolves after an fsync of the WAL that began after this call: group commit. */
  private durable(): Promise<void> {
    this.syncStats.syncWrites++;
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.syncing || this.waiting.length === 0) return;
    if (this.walFd === undefined) {
      const wal = `${this.path}-wal`;
      try {
        this.walFd = openSync(existsSync(wal) ? wal : this.path, 'r');
      } catch (e) {
        const batch = this.waiting.splice(0);
        for (const w of batch) w.reject(wrap(e, 'E_IO', 'cannot open the WAL for fsync'));
        return;
      }
    }
    const batch = this.waiting.splice(0);
    this.syncing = true;
    this.syncStats.fsyncs++;
    fsync(this.walFd, (err) => {
      this.syncing = false;
      if (err) for (const w of batch) w.reject(wrap(err, 'E_IO', 'fsync of the WAL failed'));
      else for (const w of batch) w.resolve();
      this.kick();
    });
  }

  put(group: number, record: AcceptorRecord, opts: WriteOptions): Promise<void> {
    try {
      this.open();
      checkGroup(group, this.options);
      checkRecordArgument(group, record, this.options);
      const bytes = encodeStored(group, record);
      this.group(group, true)!.put.run(record.instanceId, bytes);
    } catch (e) {
      return Promise.reject(
        wrap(e, 'E_IO', `write of group ${group} instance ${record?.instanceId}`, { group }),
      );
    }
    return opts.sync ? this.durable() : Promise.resolve();
  }

  putMany(group: number, records: readonly AcceptorRecord[], opts: WriteOptions): Promise<void> {
    try {
      this.open();
      checkGroup(group, this.options);
      // Checked and encoded inside the transaction: a bad record throws, which rolls back the
      // records before it, so nothing is written, without a second pass over the batch.
      this.group(group, true)!.putMany(records);
    } catch (e) {
      return Promise.reject(wrap(e, 'E_IO', `batch write of group ${group}`, { group }));
    }
    return opts.sync ? this.durable() : Promise.resolve();
  }

  get(group: number, instanceId: number): AcceptorRecord | undefined {
    this.open();
    checkGroup(group, this.options);
    checkInstanceId(instanceId, group);
    const bytes = this.group(group, false)?.get.get(instanceId) as Uint8Array | undefined;
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
    const g = this.group(group, false);
    if (g === undefined) return;
    for (const row of g.range.iterate(fromInstanceId, toInstanceIdExclusive) as IterableIterator<[number, Uint8Array]>) {
      yield decodeStored(group, row[0], row[1]);
    }
  }

  maxInstanceId(group: number): number | undefined {
    this.open();
    checkGroup(group, this.options);
    const max = this.group(group, false)?.max.get() as number | null | undefined;
    return max === null || max === undefined ? undefined : max;
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
    const value = this.stmt.getMeta.get(group, key) as Uint8Array | undefined;
    return value === undefined ? undefined : new Uint8Array(value);
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
      this.stmt.setMeta.run(group, key, value);
    } catch (e) {
      return Promise.reject(wrap(e, 'E_IO', `meta write ${key} of group ${group}`, { group }));
    }
    return opts.sync ? this.durable() : Promise.resolve();
  }

  deleteBelow(group: number, instanceId: number, maxRecords: number): number {
    this.open();
    checkGroup(group, this.options);
    checkInstanceId(instanceId, group);
    const limit = Math.min(Math.max(0, Math.floor(maxRecords)), this.options.maxDeleteRecords);
    if (limit === 0) return 0;
    try {
      return this.group(group, false)?.deleteBelow.run(instanceId, limit).changes ?? 0;
    } catch (e) {
      throw wrap(e, 'E_IO', `delete below ${instanceId} in group ${group}`, { group });
    }
  }

  clearGroup(group: number): Promise<void> {
    try {
      this.open();
      checkGroup(group, this.options);
      const g = this.group(group, false);
      this.db.transaction(() => {
        g?.clear.run();
        this.stmt.clearMeta.run(group);
      })();
    } catch (e) {
      return Promise.reject(wrap(e, 'E_IO', `clear group ${group}`, { group }));
    }
    return this.durable();
  }

  /** Waits for pending fsyncs, then closes (SQLite checkpoints the WAL into the database). */
  async close(): Promise<void> {
    if (this.closed) return;
    while (this.syncing || this.waiting.length > 0) {
      await new Promise<void>((resolve) => {
        this.waiting.push({ resolve, reject: () => resolve() });
        this.kick();
      });
    }
    this.closed = true;
    if (this.walFd !== undefined) closeSync(this.walFd);
    this.db.close();
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
