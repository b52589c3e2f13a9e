// The log's SQLite schema: its tables, the upgrade of older versions, and the prepared statements
// of each table.
//
// One rowid table per group, `records_<group>`, keyed by instance id: the key is (group,
// instanceId), and each group gets the cheapest B-tree SQLite has (the shape of the bench's raw
// baseline). A row holds a record as encodeRecord bytes; for a value kept out of line, the
// record with a locator in place of the value, its segment in `seg` and the value's length in
// `value_bytes` (NULL for an inline value). `segments` holds each segment's committed end and
// highest instance id; `meta` the meta values of each group, sealed with a CRC (codec.ts).
import { type AcceptorRecord, encodeRecordsInWindow } from '@tspaxos/crc-wasm';
import type Database from 'better-sqlite3';
import { encodeStored, sealMeta } from './codec';
import { StorageError } from './errors';
import { checkRecordArgument } from './log-store';
import type { StorageOptions } from './options';
import {
  encodeLocator,
  LOCATOR_BYTES,
  type Placement,
  type Segment,
  type SegmentRow,
} from './segments';

type Db = Database.Database;

/**
 * Version of the schema this code writes; opening a newer one refuses (E_SCHEMA_TOO_NEW).
 * 1: meta values stored bare. 2: meta values sealed with a CRC (opening a version 1 log
 * upgrades it in one transaction). 3: large values out of line: each records table gains the
 * columns `seg` and `value_bytes` (NULL for an inline value), and a `segments` table (a version
 * 1 or 2 log is upgraded in one transaction; its values all stay inline). 4: segment files
 * hold self-describing entries that an open replays past the index (segment-entry.ts,
 * recovery.ts), and the segments table keeps each dropped group's segment floor (a row with
 * seg = -1); no table changes, but older code would cut the entries the index does not name yet.
 */
export const SCHEMA_VERSION = 4;
/**
 * Rows per multi-row INSERT in putMany: one statement execution per 32 records instead of one
 * per record saves better-sqlite3's per-call cost (BENCHMARKS.md, storage notes).
 */
export const INSERT_ROWS_PER_STATEMENT = 32;

/**
 * Brings the database at `path` to SCHEMA_VERSION (an empty one is created), in one transaction.
 * Refuses a newer schema, a database that is not a tspaxos log, and an upgrade when read-only.
 */
export function migrate(db: Db, path: string, readonly: boolean): void {
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
        `${path} has schema version ${version}; this code knows ${SCHEMA_VERSION}: use a newer tspaxos`,
      );
    }
    if (version === SCHEMA_VERSION) return;
  } else {
    const tables = db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table'").pluck();
    if ((tables.get() as number) > 0)
      throw new StorageError('E_OPEN_FAILED', `${path} is a SQLite database but not a tspaxos log`);
  }
  if (readonly) {
    throw new StorageError(
      'E_OPEN_FAILED',
      `${path} needs an upgrade from schema ${version}; open it writable once`,
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
      for (const table of recordTableNames(db)) {
        db.exec(`ALTER TABLE ${table} ADD COLUMN seg INTEGER`);
        db.exec(`ALTER TABLE ${table} ADD COLUMN value_bytes INTEGER`);
      }
    }
    db.exec(`DELETE FROM schema_version; INSERT INTO schema_version VALUES (${SCHEMA_VERSION});`);
  })();
}

function recordTableNames(db: Db): string[] {
  return db
    .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'records_*'")
    .pluck()
    .all() as string[];
}

/** A plain Uint8Array view of a Buffer SQLite returned (no copy): what callers get, on both stores. */
export function plain(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export interface MetaStatements {
  get: Database.Statement;
  set: Database.Statement;
  clear: Database.Statement;
}

export function prepareMeta(db: Db): MetaStatements {
  return {
    get: db.prepare('SELECT value FROM meta WHERE grp = ? AND key = ?').pluck(),
    set: db.prepare('INSERT OR REPLACE INTO meta (grp, key, value) VALUES (?, ?, ?)'),
    clear: db.prepare('DELETE FROM meta WHERE grp = ?'),
  };
}

export interface SegmentStatements {
  all: Database.Statement;
  upsert: Database.Statement;
  delete: Database.Statement;
  clearGroup: Database.Statement;
}

export function prepareSegments(db: Db): SegmentStatements {
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

/** The `seg` of a group's floor row: segment ids below its end_bytes were dropped. */
export const FLOOR_SEGMENT = -1;

/** Every segment's row, and each group's floor (the open hands them to Segments). */
export function segmentRowsOf(statements: SegmentStatements): {
  rows: SegmentRow[];
  floors: Map<number, number>;
} {
  const rows: SegmentRow[] = [];
  const floors = new Map<number, number>();
  for (const [group, id, endBytes, maxInstanceId] of statements.all.all() as Array<
    [number, number, number, number]
  >) {
    if (id === FLOOR_SEGMENT) floors.set(group, endBytes);
    else rows.push({ group, id, endBytes, maxInstanceId });
  }
  return { rows, floors };
}

/** The statements of one group's records table. */
export interface GroupStatements {
  put: Database.Statement;
  putIndex: Database.Statement;
  putMany: Database.Transaction<(records: readonly AcceptorRecord[]) => void>;
  /** putEntryRows in a transaction of its own. */
  putMixed: Database.Transaction<
    (records: readonly AcceptorRecord[], placements: readonly Placement[]) => void
  >;
  /** The index rows of records just appended as entries, inside the caller's transaction. */
  putEntryRows: (records: readonly AcceptorRecord[], placements: readonly Placement[]) => void;
  get: Database.Statement;
  rangeChunk: Database.Statement;
  rangeBlob: Database.Statement;
  max: Database.Statement;
  min: Database.Statement;
  lowest: Database.Statement;
  deleteThrough: Database.Statement;
  clear: Database.Statement;
}

/** The records tables, each created at its group's first write (reads of a group never written find nothing). */
export class RecordTables {
  private readonly tables: Set<string>;
  private readonly groups = new Map<number, GroupStatements>();

  constructor(
    private readonly db: Db,
    private readonly options: StorageOptions,
    private readonly segmentRows: SegmentStatements,
  ) {
    this.tables = new Set(recordTableNames(db));
  }

  has(group: number): boolean {
    return this.tables.has(`records_${group}`);
  }

  /** The group's statements; undefined when it has no table and `create` is false. */
  statements(group: number, create: boolean): GroupStatements | undefined {
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
    g = this.prepare(group, table);
    this.groups.set(group, g);
    return g;
  }

  /** Deletes the rows of one segment (the open's repair of a compaction a power cut undid). */
  deleteSegment(group: number, segment: number): void {
    if (this.has(group)) this.db.prepare(`DELETE FROM records_${group} WHERE seg = ?`).run(segment);
  }

  private prepare(group: number, table: string): GroupStatements {
    const db = this.db;
    // Inline values: the two-column INSERT of before (seg and value_bytes default to NULL).
    const insert = 'INSERT OR REPLACE INTO ' + table + ' (instance_id, record) VALUES ';
    const put = db.prepare(`${insert}(?, ?)`);
    const putRows = db.prepare(
      insert + new Array(INSERT_ROWS_PER_STATEMENT).fill('(?, ?)').join(', '),
    );
    const putIndex = db.prepare(
      `INSERT OR REPLACE INTO ${table} (instance_id, record, seg, value_bytes) VALUES (?, ?, ?, ?)`,
    );
    const args: unknown[] = new Array(2 * INSERT_ROWS_PER_STATEMENT);
    const encoded: Uint8Array[] = new Array<Uint8Array>(INSERT_ROWS_PER_STATEMENT);
    const options = this.options;
    const upsertSegment = this.segmentRows.upsert;
    // Records just appended to segments as entries (`placements[i]` is records[i]'s): their
    // index rows, a large value's with its locator, a small one's with the whole record (the
    // entry is its durable copy, the row serves reads; its bytes from the entry when it has
    // them), and each touched segment's new committed end, in the same transaction
    // (recovery.ts replays from there).
    const putEntryRows = (records: readonly AcceptorRecord[], placements: readonly Placement[]) => {
      for (let i = 0; i < records.length; i++) {
        const r = records[i]!;
        const p = placements[i]!;
        if (r.value.length > options.outOfLineValueBytes) {
          const locator = encodeLocator(p.segment.id, p.offset, p.length, p.crc);
          const header = encodeStored(group, { ...r, value: locator });
          putIndex.run(r.instanceId, header, p.segment.id, p.length);
        } else {
          put.run(r.instanceId, p.record ?? encodeStored(group, r));
        }
      }
      let last: Segment | undefined;
      for (const p of placements) {
        if (p.segment === last) continue;
        last = p.segment;
        upsertSegment.run(group, last.id, last.writtenBytes, last.maxInstanceId);
      }
    };
    return {
      put,
      putIndex,
      // Checked and encoded inside the transaction: a bad record throws, which rolls back the
      // records before it, so nothing is written, without a second pass over the batch.
      putMany: db.transaction((records: readonly AcceptorRecord[]) => {
        const n = records.length;
        let i = 0;
        for (; i + INSERT_ROWS_PER_STATEMENT <= n; i += INSERT_ROWS_PER_STATEMENT) {
          for (let k = 0; k < INSERT_ROWS_PER_STATEMENT; k++) {
            const r = records[i + k]!;
            checkRecordArgument(group, r, options);
            args[2 * k] = r.instanceId;
          }
          // Encoded in place in WASM memory, which the insert copies at once: no buffer per
          // record (the encode's allocations and copies showed in the catch-up's profile).
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
      putMixed: db.transaction(putEntryRows),
      putEntryRows,
      get: db.prepare(`SELECT record, seg FROM ${table} WHERE instance_id = ?`).raw(),
      rangeChunk: db
        .prepare(
          `SELECT instance_id, record, seg FROM ${table} WHERE instance_id >= ? AND instance_id < ? ORDER BY instance_id LIMIT ?`,
        )
        .raw(),
      // The same chunk as one blob (range-reader.ts): count, out-of-line rows, and each row's key
      // as 8 big-endian bytes followed by its record, in instance id order.
      rangeBlob: db
        .prepare(
          `SELECT count(*), count(seg), CAST(group_concat(unhex(printf('%016x', instance_id)) || record, x'') AS BLOB) FROM (SELECT instance_id, record, seg FROM ${table} WHERE instance_id >= ? AND instance_id < ? ORDER BY instance_id LIMIT ?)`,
        )
        .raw(),
      max: db.prepare(`SELECT max(instance_id) FROM ${table}`).pluck(),
      min: db.prepare(`SELECT min(instance_id) FROM ${table}`).pluck(),
      // The size of a record as stored inline, whether it is or not (so the limits of a delete
      // step mean the same on both stores). length() of a blob is read from the cell header:
      // the overflow pages are not touched.
      lowest: db
        .prepare(
          `SELECT instance_id, length(record) + coalesce(value_bytes - ${LOCATOR_BYTES}, 0) FROM ${table} WHERE instance_id < ? ORDER BY instance_id LIMIT ?`,
        )
        .raw(),
      deleteThrough: db.prepare(`DELETE FROM ${table} WHERE instance_id <= ?`),
      clear: db.prepare(`DELETE FROM ${table}`),
    };
  }
}
