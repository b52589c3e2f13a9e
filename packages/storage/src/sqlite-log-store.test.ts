// The SQLite store's own tests beside the shared contract (log-store.contract.ts). One idea, kept in
// one file though it passes 600 lines (issue 21): one scenario per `it` of what the store promises.
import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  existsSync,
  fdatasync,
  fdatasyncSync,
  fstatSync,
  fsync,
  fsyncSync,
  mkdirSync,
  readdirSync,
  writevSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { type AcceptorRecord, crc32, encodeRecord, knownCrc, rememberCrc } from '@tspaxos/crc-wasm';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { codeOf, describeLogStoreContract, record, text } from './log-store.contract';
import type { StorageOptions } from './options';
import {
  DATABASE_FILE,
  LOCK_FILE_SUFFIX,
  SCHEMA_VERSION,
  SEGMENTS_DIR,
  SqliteLogStore,
  type SqliteLogStoreOptions,
} from './sqlite-log-store';
import {
  type WalCheckpointPort,
  type WalCheckpointResult,
  workerWalCheckpointPort,
} from './wal-checkpoint-worker';
import { StorageError } from './errors';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tspaxos-storage-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function sqliteHarness(base: SqliteLogStoreOptions) {
  return async (options?: Partial<StorageOptions>) => {
    const dir = tempDir();
    const merged = { ...base, ...options };
    let store = SqliteLogStore.open(dir, merged);
    return {
      store,
      reopen: async () => {
        await store.close();
        store = SqliteLogStore.open(dir, merged);
        return store;
      },
      cleanup: async () => {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  };
}

describeLogStoreContract('SqliteLogStore', sqliteHarness({}));
// The whole suite again with almost every value out of line, in segments of 4 KiB: appends,
// rollovers, reads, compaction and resets of segments under every scenario of the contract.
describeLogStoreContract(
  'SqliteLogStore, values above 8 bytes out of line',
  sqliteHarness({ outOfLineValueBytes: 8, segmentBytes: 4096, segmentGrowBytes: 1024 }),
);

type Callback = (err: NodeJS.ErrnoException | null) => void;

/** An fsync the test completes by hand, recording which file each call was for. */
function manualFsync() {
  const calls: Array<{ fd: number; ino: number; done: Callback }> = [];
  return {
    calls,
    fsync: (fd: number, done: Callback) => calls.push({ fd, ino: fstatSync(fd).ino, done }),
  };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));
/** Lets the microtasks queued so far run (a round due by durableSoon starts). */
const microtask = () => Promise.resolve();
/** Lets the event loop turn until `done()` holds (a worker's reply takes a few turns). */
async function until(done: () => boolean, what: string): Promise<void> {
  const t0 = performance.now();
  while (!done()) {
    if (performance.now() - t0 > 30_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

describe('SqliteLogStore group commit', () => {
  it('shares one fsync among concurrent sync writes', async () => {
    const store = SqliteLogStore.open(tempDir());
    await Promise.all(
      Array.from({ length: 64 }, (_, i) => store.put(0, record(i), { sync: true })),
    );
    expect(store.syncStats.syncWrites).toBe(64);
    expect(store.syncStats.fsyncs).toBeLessThanOrEqual(3);
    await store.close();
  });

  it('writes the sync puts of one turn, and those that come during its fdatasync, with one pwritev and one fdatasync each', async () => {
    const dir = tempDir();
    const fdatasyncs = manualFsync();
    let appends = 0;
    const store = SqliteLogStore.open(dir, {
      fdatasync: fdatasyncs.fsync,
      writeSegment: (fd, buffers, position) => {
        appends++;
        writevSync(fd, buffers as Uint8Array[], position);
      },
    });
    const acked: number[] = [];
    const n = 64;
    const bytes = (i: number) => (i % 2 === 0 ? 100 : 20_000);
    const burst = (from: number) =>
      Array.from({ length: n }, (_, k) =>
        store.put(0, sized(from + k, bytes(from + k)), { sync: true }).then(() => acked.push(k)),
      );
    // One turn: the first put is written at its call, the other 63 are queued; the round,
    // due in a microtask, writes them in one pwritev and fdatasyncs all 64 once.
    const first = burst(0);
    expect(appends).toBe(1);
    await microtask();
    expect(appends).toBe(2);
    expect(fdatasyncs.calls.length).toBe(1);
    // 64 more while that fdatasync runs: queued, unwritten, for the next round.
    const second = burst(n);
    await tick();
    expect(appends).toBe(2);
    expect(acked).toEqual([]);
    fdatasyncs.calls[0]!.done(null); // the directories' fsyncs are real: wait for the round
    await until(() => acked.length >= n, 'the first burst');
    expect(acked.length).toBe(n);
    expect(appends).toBe(3);
    expect(fdatasyncs.calls.length).toBe(2);
    await tick();
    expect(acked.length).toBe(n); // none of the second before its fdatasync ends
    fdatasyncs.calls[1]!.done(null);
    await Promise.all([...first, ...second]);
    expect(store.syncStats).toMatchObject({
      fdatasyncs: 2,
      syncWrites: 2 * n,
      queuedSyncWrites: 2 * n - 1,
    });
    for (let i = 0; i < 2 * n; i++) expect(view(store.get(0, i))).toEqual(view(sized(i, bytes(i))));
    const closing = store.close();
    for (let i = 0; i < 20 && fdatasyncs.calls.length === 2; i++) await tick();
    for (const c of fdatasyncs.calls.slice(2)) c.done(null);
    await closing;
    // Each put is its own entry: all of them come back from the segment alone.
    rmSync(join(dir, DATABASE_FILE));
    const reopened = SqliteLogStore.open(dir);
    expect(reopened.recovery.replayedRecords).toBe(2 * n);
    expect(view(reopened.get(0, 2 * n - 1))).toEqual(view(sized(2 * n - 1, 20_000)));
    await reopened.close();
  });

  it('counts the WAL pages of queued sync puts per transaction: bursts of 64 checkpoint once per ~walCheckpointPages of WAL', async () => {
    // Counted per put (2 pages each), 20 bursts of 64 small puts passed 100 pages ~25 times
    // and checkpointed (two fsyncs each) every burst or so; one transaction of 63 rows of 100 B
    // adds a few pages.
    const store = SqliteLogStore.open(tempDir(), { walCheckpointPages: 100 });
    for (let r = 0; r < 20; r++)
      await Promise.all(
        Array.from({ length: 64 }, (_, k) => store.put(0, sized(r * 64 + k, 100), { sync: true })),
      );
    // (a burst that comes while a checkpoint's WAL fsync ends its round is queued whole)
    expect(store.syncStats.queuedSyncWrites).toBeGreaterThanOrEqual(20 * 63);
    expect(store.syncStats.fdatasyncs).toBe(20);
    expect(store.syncStats.walCheckpoints).toBeGreaterThanOrEqual(1); // ~9 pages a burst
    expect(store.syncStats.walCheckpoints).toBeLessThanOrEqual(3);
    await store.close();
  });

  it('sees a queued sync put at once (a read or another write first writes it), in order', async () => {
    const fdatasyncs = manualFsync();
    const store = SqliteLogStore.open(tempDir(), { fdatasync: fdatasyncs.fsync });
    const first = store.put(0, sized(1, 100), { sync: true }); // the round is due
    const queued = store.put(0, sized(2, 100), { sync: true }); // queued for it
    expect(store.get(0, 2)).toBeDefined(); // the read wrote it first
    const again = store.put(0, { ...sized(2, 100), promiseId: 9 }, { sync: true });
    await store.put(0, { ...sized(2, 100), promiseId: 10 }, { sync: false }); // last write wins
    expect(store.get(0, 2)?.promiseId).toBe(10);
    expect(fdatasyncs.calls.length).toBe(1);
    // A queued write keeps the bytes of its call: the caller's buffer may change afterwards.
    const large = Buffer.from(sized(4, 20_000).value);
    const kept = store.put(0, { ...sized(4, 0), value: large }, { sync: true });
    large.fill(0);
    // A bad record queued fails its own call only.
    const bad = store.put(0, { ...sized(3, 100), promiseId: -1 }, { sync: true });
    expect(await codeOf(bad)).toBe('E_UNSAFE_INTEGER');
    fdatasyncs.calls[0]!.done(null);
    // The first round ends after the real fsyncs of the new segment's directories.
    await until(() => fdatasyncs.calls.length === 2, 'the round of the large put');
    fdatasyncs.calls[1]!.done(null); // the round of the large put, queued during the first
    await Promise.all([first, queued, again, kept]);
    expect(store.get(0, 2)?.promiseId).toBe(10);
    expect(view(store.get(0, 4))).toEqual(view(sized(4, 20_000)));
    expect(store.syncStats).toMatchObject({ fdatasyncs: 2, syncWrites: 4, queuedSyncWrites: 3 });
    await store.close();
  });

  it('when the queued writes fail to go in together (a full disk), writes them one by one, each with its own outcome', async () => {
    let failures = 0;
    let appends = 0;
    const store = SqliteLogStore.open(tempDir(), {
      writeSegment: (fd, buffers, position) => {
        appends++;
        if (failures > 0) {
          failures--;
          throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
        }
        writevSync(fd, buffers as Uint8Array[], position);
      },
    });
    const puts = [1, 2, 3, 4, 5].map((id) =>
      store.put(0, sized(id, id === 3 ? 20_000 : 100), { sync: true }).then(
        () => 'ok',
        (e: StorageError) => e.code,
      ),
    );
    // Put 1 was written at its call; 2–5 are queued. The append of all four fails, then the
    // first of them alone (put 2); the others go in one by one.
    failures = 2;
    expect(await Promise.all(puts)).toEqual(['ok', 'E_DISK_FULL', 'ok', 'ok', 'ok']);
    expect(appends).toBe(1 + 1 + 4);
    expect(store.get(0, 2)).toBeUndefined();
    for (const id of [1, 3, 4, 5])
      expect(view(store.get(0, id))).toEqual(view(sized(id, id === 3 ? 20_000 : 100)));
    expect(store.syncStats).toMatchObject({ syncWrites: 4, queuedSyncWrites: 0 });
    await store.close();
  });

  it('acknowledges a sync write only after an fsync of the WAL that started after its commit (rows only)', async () => {
    const dir = tempDir();
    const io = manualFsync();
    const store = SqliteLogStore.open(dir, { fsync: io.fsync, journalSmallSyncWrites: false });
    const acked: number[] = [];
    const a = store.put(0, record(1), { sync: true }).then(() => acked.push(1));
    expect(io.calls.length).toBe(1); // the first fsync starts at once
    expect(fstatSync(io.calls[0]!.fd).ino).toBe(statSync(join(dir, `${DATABASE_FILE}-wal`)).ino);
    const b = store.put(0, record(2), { sync: true }).then(() => acked.push(2));
    const c = store.putMany(0, [record(3)], { sync: true }).then(() => acked.push(3));
    const d = store.put(0, record(4), { sync: false }).then(() => acked.push(4));
    await tick();
    expect(acked).toEqual([4]); // sync:false does not wait; 1 waits for its fsync
    io.calls[0]!.done(null);
    await tick();
    expect(acked).toEqual([4, 1]); // 2 and 3 committed during fsync 1: they need fsync 2
    expect(io.calls.length).toBe(2);
    io.calls[1]!.done(null);
    await Promise.all([a, b, c, d]);
    expect(acked).toEqual([4, 1, 2, 3]);
    expect(store.syncStats).toEqual({
      fsyncs: 2,
      fdatasyncs: 0,
      syncWrites: 3,
      queuedSyncWrites: 0,
      walCheckpoints: 0,
      inlineWalCheckpoints: 0,
      inlineFdatasyncs: 0,
      backpressureWaits: 0,
    });
    const closing = store.close();
    await closing;
  });

  it('after a failed fsync, fails that batch and every later write with E_IO; reads go on', async () => {
    const io = manualFsync();
    const store = SqliteLogStore.open(tempDir(), {
      fsync: io.fsync,
      journalSmallSyncWrites: false,
    });
    const a = store.put(0, record(1), { sync: true });
    io.calls[0]!.done(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
    await expect(a).rejects.toMatchObject({ code: 'E_IO' });
    expect(await codeOf(store.put(0, record(2), { sync: false }))).toBe('E_IO');
    expect(await codeOf(store.setMeta(0, 'x', new Uint8Array(1), { sync: false }))).toBe('E_IO');
    expect(await codeOf(() => store.deleteBelow(0, 5, 5))).toBe('E_IO');
    expect(store.get(0, 1)).toEqual(record(1)); // committed, just not known to be durable
    await store.close();
  });

  it('close() waits for the fsync under way', async () => {
    const io = manualFsync();
    const store = SqliteLogStore.open(tempDir(), {
      fsync: io.fsync,
      journalSmallSyncWrites: false,
    });
    let acked = false;
    const write = store.put(0, record(1), { sync: true }).then(() => (acked = true));
    let closed = false;
    const closing = store.close().then(() => (closed = true));
    await tick();
    expect([acked, closed]).toEqual([false, false]);
    io.calls[0]!.done(null);
    await Promise.all([write, closing]);
    expect([acked, closed]).toEqual([true, true]);
  });
});

/** Writes three records and closes, so they sit in the database file itself (not the WAL). */
async function logWithThreeRecords(dir: string) {
  const store = SqliteLogStore.open(dir);
  const records = [record(1, 'plain value one'), record(2, 'M'.repeat(300)), record(3, 'three')];
  await store.putMany(0, records, { sync: true });
  await store.setMeta(0, 'systemVariables', new Uint8Array(64).fill(0x5a), { sync: true });
  await store.close();
  return { path: join(dir, DATABASE_FILE), records };
}

function flipByte(path: string, at: number, mask: number): void {
  const bytes = readFileSync(path);
  bytes[at]! ^= mask;
  writeFileSync(path, bytes);
}

describe('SqliteLogStore range chunks', () => {
  it('reads chunks of inline rows as one blob each, byte for byte what the rows hold', async () => {
    const dir = tempDir();
    const store = SqliteLogStore.open(dir, { rangeChunkMaxRecords: 7 });
    // Values of every byte (NUL, invalid UTF-8) and many lengths, ids with holes and above 2^32.
    let seed = 12345;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 8;
    const ids = [0, 1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13, 20, 2 ** 32 + 1, 2 ** 40, 2 ** 53 - 2];
    const records: AcceptorRecord[] = ids.map((instanceId, i) => {
      const value = new Uint8Array(i === 3 ? 0 : rnd() % 3000);
      for (let k = 0; k < value.length; k++) value[k] = rnd() & 0xff;
      return { ...record(instanceId), value, checksum: rnd() >>> 0 };
    });
    await store.putMany(0, records, { sync: false });
    const view = (r: AcceptorRecord) => ({ ...r, value: [...r.value] });
    expect([...store.range(0, 0, 2 ** 53 - 1)].map(view)).toEqual(records.map(view));
    expect([...store.range(0, 6, 21)].map((r) => r.instanceId)).toEqual(ids.slice(4, 13));
    expect(store.rangeStats.rowChunks).toBe(0);
    expect(store.rangeStats.blobChunks).toBeGreaterThanOrEqual(5);
    await store.close();
  });

  it('falls back to rows for a chunk whose blob does not split (a damaged length), naming the record', async () => {
    const dir = tempDir();
    const { path } = await logWithThreeRecords(dir);
    const pristine = readFileSync(path);
    const raw = new Database(path);
    const stored = raw.prepare('SELECT record FROM records_0 WHERE instance_id = 2').pluck().get();
    raw.close();
    const at = pristine.indexOf(stored as Buffer);
    expect(at).toBeGreaterThan(0);
    flipByte(path, at + 4, 0x01); // the value length: the blob no longer splits at the next key
    const store = SqliteLogStore.open(dir);
    expect(() => [...store.range(0, 0, 10)]).toThrow(
      expect.objectContaining({ code: 'E_CORRUPT_RECORD', instanceId: 2 }),
    );
    expect(store.rangeStats.rowChunks).toBe(1);
    await store.close();
  });

  it('reads a chunk holding out-of-line values row by row', async () => {
    const store = SqliteLogStore.open(tempDir(), { outOfLineValueBytes: 64 });
    const records = [record(1, 'small'), record(2, 'L'.repeat(500)), record(3, 'tiny')];
    await store.putMany(0, records, { sync: false });
    expect([...store.range(0, 0, 10)].map(text)).toEqual(records.map(text));
    expect(store.rangeStats.rowChunks).toBeGreaterThanOrEqual(1);
    const { blobChunks, rowChunks } = store.rangeStats;
    expect([...store.range(0, 3, 10)].map(text)).toEqual(['tiny']);
    expect(store.rangeStats.rowChunks).toBe(rowChunks);
    expect(store.rangeStats.blobChunks).toBeGreaterThan(blobChunks);
    await store.close();
  });
});

describe('SqliteLogStore corruption', () => {
  it('reads flipped bytes anywhere in a record as E_CORRUPT_RECORD; other records still read', async () => {
    const dir = tempDir();
    const { path, records } = await logWithThreeRecords(dir);
    const pristine = readFileSync(path);
    const at = pristine.indexOf(encodeRecord(records[1]!));
    expect(at).toBeGreaterThan(0);
    const length = encodeRecord(records[1]!).length;
    // version, flags, length, instanceId, promiseId, ballot node, checksum, value, CRC trailer
    for (const offset of [0, 1, 5, 8, 14, 17, 30, 49, 52, 200, length - 1]) {
      writeFileSync(path, pristine);
      flipByte(path, at + offset, 1 << (offset % 8));
      const store = SqliteLogStore.open(dir);
      expect(() => store.get(0, 2), `flip at ${offset}`).toThrow(
        expect.objectContaining({ code: 'E_CORRUPT_RECORD', group: 0, instanceId: 2 }),
      );
      expect(() => [...store.range(0, 0, 10)]).toThrow(
        expect.objectContaining({ code: 'E_CORRUPT_RECORD', instanceId: 2 }),
      );
      expect([...store.range(0, 0, 2)]).toEqual([records[0]]);
      expect(store.get(0, 1)).toEqual(records[0]);
      expect(store.get(0, 3)).toEqual(records[2]);
      await store.close();
    }
  });

  it('reads a record filed under another instance id, or a damaged meta value, as corrupt', async () => {
    const dir = tempDir();
    const { path } = await logWithThreeRecords(dir);
    const raw = new Database(path);
    raw.exec('UPDATE records_0 SET instance_id = 5 WHERE instance_id = 3'); // a flipped key
    raw.close();
    const meta = readFileSync(path).indexOf(Buffer.alloc(64, 0x5a));
    flipByte(path, meta + 10, 0x10);
    const store = SqliteLogStore.open(dir);
    expect(() => store.get(0, 5)).toThrow(
      expect.objectContaining({ code: 'E_CORRUPT_RECORD', instanceId: 5 }),
    );
    expect(await codeOf(() => store.getMeta(0, 'systemVariables'))).toBe('E_CORRUPT_META');
    expect(text(store.get(0, 1))).toBe('plain value one');
    await store.close();
  });

  it('range() names a record filed under another instance id, read in one blob chunk', async () => {
    const dir = tempDir();
    const { path, records } = await logWithThreeRecords(dir);
    const raw = new Database(path);
    raw.exec('UPDATE records_0 SET instance_id = 5 WHERE instance_id = 3'); // a flipped key
    raw.close();
    const store = SqliteLogStore.open(dir);
    expect([...store.range(0, 0, 3)]).toEqual(records.slice(0, 2));
    expect(() => [...store.range(0, 0, 10)]).toThrow(
      expect.objectContaining({ code: 'E_CORRUPT_RECORD', instanceId: 5 }),
    );
    // The keys and records split cleanly: both chunks were read as blobs, and the record's own
    // check (filed under its key) caught the move.
    expect(store.rangeStats.rowChunks).toBe(0);
    expect(store.rangeStats.blobChunks).toBeGreaterThanOrEqual(2);
    await store.close();
  });

  it('reads a broken B-tree page as E_CORRUPT_RECORD, not as a raw SQLite error', async () => {
    const dir = tempDir();
    const store = SqliteLogStore.open(dir);
    await store.putMany(
      0,
      Array.from({ length: 3000 }, (_, i) => record(i, 'x'.repeat(100))),
      { sync: true },
    );
    await store.close();
    const path = join(dir, DATABASE_FILE);
    const raw = new Database(path, { readonly: true });
    const root = raw
      .prepare("SELECT rootpage FROM sqlite_master WHERE name = 'records_0'")
      .pluck()
      .get() as number;
    const pageBytes = raw.pragma('page_size', { simple: true }) as number;
    raw.close();
    const bytes = readFileSync(path);
    bytes.fill(0xff, (root - 1) * pageBytes, (root - 1) * pageBytes + 16); // the page header
    writeFileSync(path, bytes);
    const again = SqliteLogStore.open(dir);
    expect(() => again.get(0, 1500)).toThrow(
      expect.objectContaining({ code: 'E_CORRUPT_RECORD', group: 0, instanceId: 1500 }),
    );
    expect(() => [...again.range(0, 0, 3000)]).toThrow(
      expect.objectContaining({ code: 'E_CORRUPT_RECORD' }),
    );
    await again.close();
  });
});

describe('SqliteLogStore open', () => {
  it('refuses files it cannot use with a clear StorageError', async () => {
    const dir = tempDir();
    const junk = join(dir, 'junk.sqlite');
    writeFileSync(junk, 'this is not a database, just some text that is long enough'.repeat(100));
    expect(() => SqliteLogStore.open(junk)).toThrow(
      expect.objectContaining({ code: 'E_OPEN_FAILED' }),
    );
    const other = join(dir, 'other.sqlite');
    const db = new Database(other);
    db.exec('CREATE TABLE users (name TEXT)');
    db.close();
    expect(() => SqliteLogStore.open(other)).toThrow(/not a tspaxos log/);
    const newer = join(dir, 'newer');
    await SqliteLogStore.open(newer).close();
    const raw = new Database(join(newer, DATABASE_FILE));
    raw.exec(`UPDATE schema_version SET version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    expect(() => SqliteLogStore.open(newer)).toThrow(
      expect.objectContaining({ code: 'E_SCHEMA_TOO_NEW' }),
    );
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    expect(() => SqliteLogStore.open(file)).toThrow(
      expect.objectContaining({ code: 'E_OPEN_FAILED' }),
    );
  });

  it('refuses bad options with E_BAD_ARGUMENT', () => {
    const dir = tempDir();
    for (const options of [
      { maxValueBytes: -1 },
      { rangeChunkBytes: 0.5 },
      { walCheckpointPages: 0 },
      { maxDatabaseBytes: Number.NaN },
    ]) {
      expect(() => SqliteLogStore.open(dir, options), JSON.stringify(options)).toThrow(
        expect.objectContaining({ code: 'E_BAD_ARGUMENT' }),
      );
    }
  });

  it('upgrades a schema 1 log (bare meta values) in place', async () => {
    const dir = tempDir();
    const raw = new Database(join(dir, DATABASE_FILE));
    raw.exec(`
      CREATE TABLE meta (grp INTEGER NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
        PRIMARY KEY (grp, key)) WITHOUT ROWID;
      CREATE TABLE schema_version (version INTEGER NOT NULL);
      INSERT INTO schema_version VALUES (1);
      CREATE TABLE records_0 (instance_id INTEGER PRIMARY KEY, record BLOB NOT NULL);
    `);
    raw.prepare('INSERT INTO meta VALUES (0, ?, ?)').run('minChosenInstanceId', Buffer.from('42'));
    raw.prepare('INSERT INTO meta VALUES (0, ?, ?)').run('masterVariables', Buffer.from([1, 2]));
    raw.prepare('INSERT INTO records_0 VALUES (7, ?)').run(encodeRecord(record(7)));
    raw.close();
    const store = SqliteLogStore.open(dir);
    expect(store.getMinChosenInstanceId(0)).toBe(42);
    expect([...store.getMeta(0, 'masterVariables')!]).toEqual([1, 2]);
    expect(store.get(0, 7)).toEqual(record(7));
    await store.close();
  });

  it('lets one store at a time open a log (E_LOCKED), and another after it closes', async () => {
    const dir = tempDir();
    const first = SqliteLogStore.open(dir);
    expect(() => SqliteLogStore.open(dir)).toThrow(expect.objectContaining({ code: 'E_LOCKED' }));
    expect(() => SqliteLogStore.open(dir, { readonly: true })).toThrow(
      expect.objectContaining({ code: 'E_LOCKED' }),
    );
    const child = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import Database from 'better-sqlite3';
         try { const d = new Database(process.argv[1], { timeout: 0 }); d.prepare('SELECT 1 FROM sqlite_master').get(); console.log('opened'); }
         catch (e) { console.log(e.code); }`,
        join(dir, `${DATABASE_FILE}${LOCK_FILE_SUFFIX}`),
      ],
      { encoding: 'utf8', cwd: fileURLToPath(new URL('.', import.meta.url)) },
    );
    expect(child.stdout.trim()).toBe('SQLITE_BUSY'); // another process is locked out too
    await first.close();
    await SqliteLogStore.open(dir).close();
  });

  it('reports a write-protected log as E_READ_ONLY and a full disk as E_DISK_FULL, writing nothing', async () => {
    const dir = tempDir();
    const seeded = SqliteLogStore.open(dir);
    await seeded.put(0, record(1), { sync: true });
    await seeded.close();
    const readonly = SqliteLogStore.open(dir, { readonly: true });
    expect(readonly.get(0, 1)).toEqual(record(1));
    await expect(readonly.put(0, record(2), { sync: true })).rejects.toMatchObject({
      code: 'E_READ_ONLY',
    });
    await expect(readonly.setMinChosenInstanceId(0, 1)).rejects.toMatchObject({
      code: 'E_READ_ONLY',
    });
    await readonly.close();
    // A file the OS will not let us write: chattr +i as root (root ignores modes), else a mode.
    const path = join(dir, DATABASE_FILE);
    const asRoot = process.getuid?.() === 0;
    const protect = (on: boolean) =>
      asRoot
        ? spawnSync('chattr', [on ? '+i' : '-i', path]).status === 0
        : (chmodSync(path, on ? 0o444 : 0o644), true);
    if (protect(true)) {
      try {
        expect(() => SqliteLogStore.open(dir)).toThrow(
          expect.objectContaining({ code: 'E_READ_ONLY' }),
        );
      } finally {
        protect(false);
      }
    }
    // The cap is on the database file: the 256 KiB value is kept inline here to meet it.
    const full = SqliteLogStore.open(dir, {
      maxDatabaseBytes: 64 * 1024,
      outOfLineValueBytes: 1024 * 1024,
    });
    const big = { ...record(5), value: new Uint8Array(256 * 1024) };
    await expect(full.put(0, big, { sync: true })).rejects.toMatchObject({ code: 'E_DISK_FULL' });
    await expect(full.putMany(0, [record(6), big], { sync: false })).rejects.toMatchObject({
      code: 'E_DISK_FULL',
    });
    expect(full.get(0, 5)).toBeUndefined();
    expect(full.get(0, 6)).toBeUndefined();
    await full.put(0, record(2), { sync: true }); // small writes still fit
    expect(full.maxInstanceId(0)).toBe(2);
    await full.close();
  });
});

/** A record whose value is `bytes` long, above the default out-of-line threshold when large. */
function sized(id: number, bytes: number): AcceptorRecord {
  return { ...record(id), value: new Uint8Array(bytes).map((_, k) => (id * 31 + k) & 0xff) };
}
const view = (r: AcceptorRecord | undefined) =>
  r === undefined ? undefined : { ...r, value: Buffer.from(r.value).toString('hex') };
const segmentFiles = (dir: string, group = 0) => {
  const d = join(dir, SEGMENTS_DIR, String(group));
  return existsSync(d) ? readdirSync(d).sort((a, b) => parseInt(a) - parseInt(b)) : [];
};

/** fsync and fdatasync ports that count their calls and then do the real thing. */
function countingSyncs() {
  const counts = { fsync: 0, fdatasync: 0 };
  return {
    counts,
    fsync: (fd: number, done: Callback) => {
      counts.fsync++;
      fsync(fd, done);
    },
    fdatasync: (fd: number, done: Callback) => {
      counts.fdatasync++;
      fdatasync(fd, done);
    },
  };
}

describe('SqliteLogStore segments: durability', () => {
  it('does no fsync, fdatasync or checkpoint for a batch of sync:false writes; a sync write does them', async () => {
    const dir = tempDir();
    const io = countingSyncs();
    // A low walCheckpointPages: sync:false writes pass it many times and still checkpoint nothing.
    const store = SqliteLogStore.open(dir, { ...io, walCheckpointPages: 10 });
    for (let i = 0; i < 300; i += 10)
      await store.putMany(
        0,
        Array.from({ length: 10 }, (_, k) => sized(i + k, 100 * 1024)),
        { sync: false },
      );
    for (let i = 300; i < 40_300; i += 100)
      await store.putMany(
        0,
        Array.from({ length: 100 }, (_, k) => sized(i + k, 100)),
        { sync: false },
      );
    for (let i = 0; i < 200; i++) await store.put(0, sized(70_000 + i, 20_000), { sync: false });
    await tick();
    await tick();
    expect(io.counts).toEqual({ fsync: 0, fdatasync: 0 });
    expect(store.syncStats).toEqual({
      fsyncs: 0,
      fdatasyncs: 0,
      syncWrites: 0,
      queuedSyncWrites: 0,
      walCheckpoints: 0,
      inlineWalCheckpoints: 0,
      inlineFdatasyncs: 0,
      backpressureWaits: 0,
    });
    // SQLite did not checkpoint by itself either: its default would have kept the WAL near
    // 1000 pages (4 MiB); ~6.5 MB of small rows went into it.
    expect(statSync(join(dir, `${DATABASE_FILE}-wal`)).size).toBeGreaterThan(5 * 1024 * 1024);
    expect(segmentFiles(dir).length).toBe(1);
    // The first sync write: an entry in the segment (one file) fdatasynced and the new
    // directories fsynced; as the WAL is over walCheckpointPages, the round also fsyncs it
    // (after the segment) and checkpoints it at its end.
    await store.put(0, sized(80_000, 100), { sync: true });
    expect(io.counts.fdatasync).toBe(1);
    expect(io.counts.fsync).toBe(4); // data dir, segments/, segments/0, the WAL
    await until(() => store.syncStats.walCheckpoints === 1, 'the checkpoint');
    // On the event loop, before any other write (the store keeps its exclusive lock for the
    // sync writers' commits).
    expect(store.syncStats.inlineWalCheckpoints).toBe(1);
    expect(view(store.get(0, 299))).toEqual(view(sized(299, 100 * 1024)));
    await store.close();
  });

  it('checkpoints sync:false-only writes once the WAL reaches walCheckpointMaxPages, not inside a write (inline)', async () => {
    // Real syncs that report back at the next setImmediate: the test's own tick() after each
    // write then waits for them (a real fsync may take longer than a tick).
    const counts = { fsync: 0, fdatasync: 0 };
    const io = {
      fsync: (fd: number, done: Callback) => {
        counts.fsync++;
        fsyncSync(fd);
        setImmediate(() => done(null));
      },
      fdatasync: (fd: number, done: Callback) => {
        counts.fdatasync++;
        fdatasyncSync(fd);
        setImmediate(() => done(null));
      },
    };
    const dir = tempDir();
    const store = SqliteLogStore.open(dir, {
      ...io,
      walCheckpointMaxPages: 200,
      walCheckpointIn: 'inline',
    });
    let checkpointsInsideWrites = 0;
    for (let i = 0; i < 20_000; i += 100) {
      const before = store.syncStats.walCheckpoints;
      const p = store.putMany(
        0,
        Array.from({ length: 100 }, (_, k) => sized(i + k, 100)),
        { sync: false },
      );
      checkpointsInsideWrites += store.syncStats.walCheckpoints - before;
      await p;
      await tick();
    }
    expect(checkpointsInsideWrites).toBe(0);
    expect(store.syncStats.walCheckpoints).toBeGreaterThan(1);
    // Each preceded by one fsync of the WAL on the thread pool; nothing else was synced.
    expect(counts).toEqual({ fsync: store.syncStats.walCheckpoints, fdatasync: 0 });
    // A caller that never lets setImmediate run: the write itself checkpoints at twice the
    // threshold, so the WAL stays bounded (400 pages here, ~1.6 MB).
    const before = store.syncStats.walCheckpoints;
    for (let i = 20_000; i < 30_000; i++) await store.put(0, sized(i, 100), { sync: false });
    expect(store.syncStats.walCheckpoints - before).toBeGreaterThan(10);
    expect(statSync(join(dir, `${DATABASE_FILE}-wal`)).size).toBeLessThan(3 * 1024 * 1024);
    await store.close();
  });

  it('makes a sync write durable with one fdatasync of its segment, no WAL fsync, and acknowledges after it', async () => {
    const dir = tempDir();
    const fsyncs = manualFsync();
    const fdatasyncs = manualFsync();
    const store = SqliteLogStore.open(dir, { fsync: fsyncs.fsync, fdatasync: fdatasyncs.fsync });
    const walIno = statSync(join(dir, `${DATABASE_FILE}-wal`)).ino;
    const isWal = (c: { ino: number }) => c.ino === walIno;
    let acked = 0;
    const a = store.put(0, sized(1, 50_000), { sync: true }).then(() => acked++);
    const b = store.put(0, sized(2, 50_000), { sync: false }); // committed before the round: covered
    await microtask();
    expect(fdatasyncs.calls.length).toBe(1);
    expect(fstatSync(fdatasyncs.calls[0]!.fd).ino).toBe(
      statSync(join(dir, SEGMENTS_DIR, '0', '1.seg')).ino,
    );
    expect(fsyncs.calls.length).toBe(3); // the three directories of the new segment file
    for (const c of fsyncs.calls) c.done(null);
    await tick();
    expect(acked).toBe(0); // still waiting for the segment
    fdatasyncs.calls[0]!.done(null);
    await Promise.all([a, b]);
    expect(acked).toBe(1);
    expect(fsyncs.calls.some(isWal)).toBe(false);
    // Single sync writes, large and small: one fdatasync each, nothing else.
    for (const [id, bytes] of [
      [3, 50_000],
      [4, 100],
    ] as const) {
      const c = store.put(0, sized(id, bytes), { sync: true });
      await microtask();
      expect(fdatasyncs.calls.length).toBe(id - 1);
      fdatasyncs.calls[id - 2]!.done(null);
      await c;
    }
    expect(fsyncs.calls.length).toBe(3);
    // A write durable only through the WAL (a meta value) after a segment append: the segment
    // is fdatasynced first, then the WAL fsynced, so no durable index row names bytes that
    // are not.
    const d = store.put(0, sized(5, 50_000), { sync: false });
    const m = store.setMeta(0, 'k', new Uint8Array([1]), { sync: true });
    expect(fdatasyncs.calls.length).toBe(4);
    expect(fsyncs.calls.length).toBe(3);
    fdatasyncs.calls[3]!.done(null);
    await tick();
    expect(fsyncs.calls.length).toBe(4);
    expect(isWal(fsyncs.calls[3]!)).toBe(true);
    fsyncs.calls[3]!.done(null);
    await Promise.all([d, m]);
    expect(store.syncStats).toMatchObject({ fsyncs: 4, fdatasyncs: 4, syncWrites: 4 });
    expect(view(store.get(0, 4))).toEqual(view(sized(4, 100)));
    const closing = store.close();
    for (let i = 0; i < 20 && fdatasyncs.calls.length > 4; i++) await tick();
    for (const c of fdatasyncs.calls.slice(4)) c.done(null);
    await closing;
  });

  it('acknowledges a sync put only after the fdatasync of its bytes, also when a WAL checkpoint due at its commit syncs the segments first', async () => {
    // The checkpoint's own fdatasync of the segments (rows durable only after their entries)
    // once took the put's segment out of the round, which then found nothing to sync and
    // acknowledged the put while that fdatasync still ran.
    const fdatasyncs = manualFsync();
    const store = SqliteLogStore.open(tempDir(), {
      fdatasync: fdatasyncs.fsync,
      walCheckpointPages: 1_000_000, // no checkpoint after a round: only the WAL's bound
      walCheckpointMaxPages: 3, // reached by the second put's commit
    });
    const first = store.put(0, sized(1, 100), { sync: true });
    await until(() => fdatasyncs.calls.length === 1, 'the first round');
    fdatasyncs.calls[0]!.done(null);
    await first;
    let acked = false;
    const second = store.put(0, sized(2, 100), { sync: true }).then(() => {
      acked = true;
    });
    await until(() => fdatasyncs.calls.length >= 1 + 1, 'the fdatasync of the second put');
    for (let i = 0; i < 20; i++) await tick();
    expect(fdatasyncs.calls.length).toBe(2); // one fdatasync covers it, whoever issued it
    expect(acked).toBe(false); // its bytes are not durable yet
    fdatasyncs.calls[1]!.done(null);
    await second;
    await until(() => store.syncStats.walCheckpoints === 1, 'the checkpoint after it');
    expect(store.syncStats).toMatchObject({ fdatasyncs: 2, syncWrites: 2 });
    const closing = store.close();
    for (let i = 0; i < 20 && fdatasyncs.calls.length === 2; i++) await tick();
    for (const c of fdatasyncs.calls.slice(2)) c.done(null);
    await closing;
  });

  it('when a WAL checkpoint is due, the round fsyncs the WAL after its segments (its writes acknowledged first) and checkpoints at its end, with no fdatasync on the event loop', async () => {
    // Sync puts' rounds fsync only segments, so a checkpoint after one found the WAL not
    // durable: SQLite fsynced megabytes of it, and the segments written since, on the event loop.
    const dir = tempDir();
    const fsyncs = manualFsync();
    const fdatasyncs = manualFsync();
    const store = SqliteLogStore.open(dir, {
      fsync: fsyncs.fsync,
      fdatasync: fdatasyncs.fsync,
      walCheckpointPages: 6,
    });
    const walIno = statSync(join(dir, `${DATABASE_FILE}-wal`)).ino;
    const walFsyncs = () => fsyncs.calls.filter((c) => c.ino === walIno);
    let puts = 0;
    while (walFsyncs().length === 0 && puts < 20) {
      puts++;
      let acked = false;
      const put = store.put(0, sized(puts, 100), { sync: true }).then(() => {
        acked = true;
      });
      await until(() => fdatasyncs.calls.length === puts, `the fdatasync of put ${puts}`);
      expect(walFsyncs().length).toBe(0); // the segment first
      for (const c of fsyncs.calls.splice(0)) c.done(null); // new directories
      fdatasyncs.calls[puts - 1]!.done(null);
      await until(() => acked, `put ${puts}`);
      await put;
      await tick();
    }
    expect(walFsyncs().length).toBe(1); // the round of the put that passed walCheckpointPages
    expect(puts).toBeGreaterThan(1);
    expect(store.syncStats.walCheckpoints).toBe(0); // not before the WAL is durable
    walFsyncs()[0]!.done(null);
    await until(() => store.syncStats.walCheckpoints === 1, 'the checkpoint');
    expect(store.syncStats.inlineWalCheckpoints).toBe(1);
    // Every fdatasync went through the port, on the thread pool: none on the event loop.
    expect(store.syncStats.fdatasyncs).toBe(fdatasyncs.calls.length);
    expect(store.syncStats.fdatasyncs).toBe(puts);
    // The checkpoint copied every frame: the next rounds fsync no WAL until it fills again.
    const next = store.put(0, sized(100, 100), { sync: true });
    await until(() => fdatasyncs.calls.length === puts + 1, 'the next fdatasync');
    fdatasyncs.calls[puts]!.done(null);
    await next;
    expect(walFsyncs().length).toBe(1);
    const closing = store.close();
    for (let i = 0; i < 20 && fdatasyncs.calls.length === puts + 1; i++) await tick();
    for (const c of fdatasyncs.calls.slice(puts + 1)) c.done(null);
    await closing;
  });

  it('checkpoints after a round only once every segment is fdatasynced, also bytes written during its WAL fsync; catches a planted checkpoint that does not wait', async () => {
    /** Whether the checkpoint came before the fdatasync of a large value written meanwhile. */
    async function checkpointBeforeFdatasync(faults?: SqliteLogStoreOptions['unsafeFaults']) {
      const dir = tempDir();
      const fsyncs = manualFsync();
      const fdatasyncs = manualFsync();
      const store = SqliteLogStore.open(dir, {
        fsync: fsyncs.fsync,
        fdatasync: fdatasyncs.fsync,
        walCheckpointPages: 6,
        unsafeFaults: faults,
      });
      const walIno = statSync(join(dir, `${DATABASE_FILE}-wal`)).ino;
      const walFsync = () => fsyncs.calls.find((c) => c.ino === walIno);
      for (let id = 1; walFsync() === undefined && id <= 20; id++) {
        const put = store.put(0, sized(id, 100), { sync: true });
        await until(() => fdatasyncs.calls.length === id, `the fdatasync of put ${id}`);
        for (let i = fsyncs.calls.length - 1; i >= 0; i--)
          if (fsyncs.calls[i]!.ino !== walIno) fsyncs.calls.splice(i, 1)[0]!.done(null); // directories
        fdatasyncs.calls[id - 1]!.done(null);
        await put;
        await tick();
      }
      expect(walFsync()).toBeDefined();
      const synced = fdatasyncs.calls.length;
      // During the round's WAL fsync: a large value, its entry written but not fdatasynced.
      await store.put(0, sized(1000, 50_000), { sync: false });
      fsyncs.calls.splice(fsyncs.calls.indexOf(walFsync()!), 1)[0]!.done(null);
      for (let i = 0; i < 20; i++) await tick();
      const early = store.syncStats.walCheckpoints > 0;
      // Complete whatever comes, once each (the real store: the segment's fdatasync, then the
      // checkpoint).
      let completed = synced;
      const completeAll = () => {
        for (const c of fdatasyncs.calls.slice(completed)) c.done(null);
        completed = fdatasyncs.calls.length;
        for (const c of fsyncs.calls.splice(0)) c.done(null);
      };
      await until(() => {
        completeAll();
        return store.syncStats.walCheckpoints > 0;
      }, 'the checkpoint');
      expect(view(store.get(0, 1000))).toEqual(view(sized(1000, 50_000)));
      let closed = false;
      const closing = store.close().then(() => {
        closed = true;
      });
      await until(() => {
        completeAll();
        return closed;
      }, 'close');
      await closing;
      return early;
    }
    expect(await checkpointBeforeFdatasync()).toBe(false);
    expect(await checkpointBeforeFdatasync({ checkpointOverUnsyncedSegments: true })).toBe(true);
  });

  it('after a failed fdatasync, fails that batch and every later write with E_IO', async () => {
    const fdatasyncs = manualFsync();
    const store = SqliteLogStore.open(tempDir(), { fdatasync: fdatasyncs.fsync });
    const a = store.put(0, sized(1, 50_000), { sync: true });
    await microtask();
    fdatasyncs.calls[0]!.done(Object.assign(new Error('EIO: i/o error'), { code: 'EIO' }));
    await expect(a).rejects.toMatchObject({ code: 'E_IO' });
    expect(await codeOf(store.put(0, sized(2, 50_000), { sync: false }))).toBe('E_IO');
    await store.close();
  });

  it('syncInline: a round whose only sync is one segment fdatasync runs it on the event loop, before the write is acknowledged; any other round goes to the pool', async () => {
    const dir = tempDir();
    const io = countingSyncs();
    const inline: number[] = [];
    let acked = 0;
    const store = SqliteLogStore.open(dir, {
      ...io,
      syncInline: true,
      fdatasyncSync: (fd) => {
        // The write it covers is not acknowledged yet.
        inline.push(acked);
        fdatasyncSync(fd);
      },
    });
    const bytesOf = (id: number) => (id === 1 ? 50_000 : id % 2 === 0 ? 100 * 1024 : 100);
    // The first write creates the segment file: its directories are fsynced too (the pool).
    await store.put(0, sized(1, bytesOf(1)), { sync: true });
    acked++;
    expect(io.counts).toEqual({ fsync: 3, fdatasync: 1 });
    expect(inline).toEqual([]);
    // One value per round, large and small: each one fdatasync on the event loop.
    for (let id = 2; id <= 11; id++) {
      await store.put(0, sized(id, bytesOf(id)), { sync: true });
      acked++;
    }
    expect(inline).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(io.counts).toEqual({ fsync: 3, fdatasync: 1 });
    // A write durable through the WAL (a meta value) needs the WAL's fsync: the pool.
    await store.setMeta(0, 'k', new Uint8Array([1]), { sync: true });
    expect(io.counts.fsync).toBe(4);
    expect(inline.length).toBe(10);
    expect(store.syncStats).toMatchObject({ fdatasyncs: 11, inlineFdatasyncs: 10 });
    await store.close();
    const again = SqliteLogStore.open(dir);
    for (let id = 1; id <= 11; id++)
      expect(view(again.get(0, id))).toEqual(view(sized(id, bytesOf(id))));
    await again.close();
  });

  it('syncInline: a failed inline fdatasync fails that write and every later one with E_IO', async () => {
    let fail = false;
    const store = SqliteLogStore.open(tempDir(), {
      syncInline: true,
      fdatasyncSync: (fd) => {
        if (fail) throw Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
        fdatasyncSync(fd);
      },
    });
    await store.put(0, sized(1, 50_000), { sync: true }); // creates the segment (pool)
    fail = true;
    await expect(store.put(0, sized(2, 50_000), { sync: true })).rejects.toMatchObject({
      code: 'E_IO',
    });
    expect(store.syncStats.inlineFdatasyncs).toBe(1);
    expect(await codeOf(store.put(0, sized(3, 100), { sync: true }))).toBe('E_IO');
    await store.close();
  });

  it('unlinks the segments of a reset group only once the reset is durable', async () => {
    const dir = tempDir();
    const fsyncs = manualFsync();
    const store = SqliteLogStore.open(dir, {
      fsync: fsyncs.fsync,
      fdatasync: (_fd, done) => done(null),
    });
    await store.putMany(0, [sized(1, 50_000), sized(2, 50_000)], { sync: false });
    let reset = false;
    const p = store.resetGroup(0, { minChosenInstanceId: 10 }).then(() => (reset = true));
    await tick();
    expect(segmentFiles(dir)).toEqual(['1.seg']);
    while (!reset) {
      await tick();
      for (const c of fsyncs.calls.splice(0)) c.done(null);
    }
    await p;
    expect(segmentFiles(dir)).toEqual([]);
    expect(store.getMinChosenInstanceId(0)).toBe(10);
    const closing = store.close();
    for (const c of fsyncs.calls.splice(0)) c.done(null);
    await closing;
  });
});

describe('SqliteLogStore segments: recovery and damage', () => {
  async function logWithLargeValues(dir: string, options: SqliteLogStoreOptions = {}) {
    const store = SqliteLogStore.open(dir, options);
    const records = [sized(1, 30_000), sized(2, 100), sized(3, 40_000), sized(4, 25_000)];
    await store.putMany(0, records, { sync: true });
    await store.close();
    return { records, segment: join(dir, SEGMENTS_DIR, '0', '1.seg') };
  }

  it('truncates bytes past the last committed row and removes segment files no row names', async () => {
    const dir = tempDir();
    const { records, segment } = await logWithLargeValues(dir);
    const committed = statSync(segment).size;
    // Four entries (the 100 B record too: a sync batch), each 28 + 56 bytes beyond its value;
    // close() gives back the grown room.
    expect(committed).toBe(30_000 + 100 + 40_000 + 25_000 + 4 * (28 + 56));
    appendFileSync(segment, Buffer.alloc(12_345, 7)); // an append whose rows never committed
    writeFileSync(join(dir, SEGMENTS_DIR, '0', '77.seg'), 'orphan'); // a segment never committed
    mkdirSync(join(dir, SEGMENTS_DIR, '5'));
    writeFileSync(join(dir, SEGMENTS_DIR, '5', '3.seg'), 'orphan of a group never committed');
    const store = SqliteLogStore.open(dir);
    expect(store.recovery).toEqual({
      truncatedBytes: 12_345,
      orphanFiles: 2,
      missingFiles: 0,
      replayedRecords: 0,
      tornTails: 2, // the garbage past the entries, and the junk in 5/3.seg
      droppedEntries: 0,
    });
    expect(statSync(segment).size).toBe(committed);
    expect(segmentFiles(dir)).toEqual(['1.seg']);
    expect(existsSync(join(dir, SEGMENTS_DIR, '5'))).toBe(false);
    expect([...store.range(0, 0, 10)].map(view)).toEqual(records.map(view));
    await store.put(0, sized(5, 20_000), { sync: true }); // appended where the garbage was
    expect(view(store.get(0, 5))).toEqual(view(sized(5, 20_000)));
    await store.close();
  });

  /** Forgets every index row of group 0 and each segment's committed end (a lost WAL). */
  function forgetIndex(dir: string) {
    const raw = new Database(join(dir, DATABASE_FILE));
    raw.exec('DELETE FROM records_0; UPDATE segments SET end_bytes = 0 WHERE seg >= 0');
    raw.close();
  }

  it('rebuilds lost index rows from the segment entries, whole batches only, and logs a torn tail', async () => {
    const dir = tempDir();
    const store = SqliteLogStore.open(dir);
    const batch = [sized(1, 30_000), sized(2, 100), sized(3, 20_000)];
    await store.putMany(0, batch, { sync: true });
    await store.put(0, sized(4, 50), { sync: true }); // a small sync put: an entry too
    const last = [sized(5, 10_000), sized(6, 40)];
    await store.putMany(0, last, { sync: true });
    await store.close();
    forgetIndex(dir);
    const segment = join(dir, SEGMENTS_DIR, '0', '1.seg');
    const bytes = readFileSync(segment);
    // The power cut took the end of the last batch: its first entry is whole, its second torn.
    writeFileSync(segment, bytes.subarray(0, bytes.length - 30));
    const logged: Array<[string, Record<string, unknown>]> = [];
    const again = SqliteLogStore.open(dir, {
      logger: (_level, event, fields) => logged.push([event, fields]),
    });
    expect(again.recovery).toMatchObject({ replayedRecords: 4, tornTails: 1, droppedEntries: 1 });
    expect([...again.range(0, 0, 10)].map(view)).toEqual([...batch, sized(4, 50)].map(view));
    expect(logged.map(([event]) => event)).toEqual([
      'storage-torn-tail',
      'storage-unfinished-batch',
    ]);
    await again.put(0, sized(7, 5000), { sync: true }); // appended where the torn bytes were
    await again.close();
    const third = SqliteLogStore.open(dir);
    expect(third.recovery).toMatchObject({ replayedRecords: 0, tornTails: 0 });
    expect(view(third.get(0, 7))).toEqual(view(sized(7, 5000)));
    await third.close();
  });

  it('removes, not replays, segment files of a reset group that a crash left behind (the floor)', async () => {
    const dir = tempDir();
    const store = SqliteLogStore.open(dir);
    await store.putMany(0, [sized(1, 30_000), sized(2, 30_000)], { sync: true });
    const file = join(dir, SEGMENTS_DIR, '0', '1.seg');
    const bytes = readFileSync(file);
    await store.resetGroup(0, { minChosenInstanceId: 1 });
    await store.close();
    // The crash came after the reset's commit was durable, before the unlink reached the disk.
    mkdirSync(join(dir, SEGMENTS_DIR, '0'), { recursive: true });
    writeFileSync(file, bytes);
    const again = SqliteLogStore.open(dir);
    expect(again.recovery).toMatchObject({ orphanFiles: 1, replayedRecords: 0 });
    expect(again.get(0, 2)).toBeUndefined();
    expect(existsSync(file)).toBe(false);
    // New segments take ids above the floor: the next write's file is not named 1.seg again.
    await again.put(0, sized(1, 30_000), { sync: true });
    expect(segmentFiles(dir)).toEqual(['2.seg']);
    await again.close();
  });

  it('refuses to open (E_CORRUPT_RECORD) when an entry a later entry says was synced is damaged', async () => {
    const dir = tempDir();
    const store = SqliteLogStore.open(dir);
    for (let id = 1; id <= 3; id++) await store.put(0, sized(id, 20_000), { sync: true });
    await store.close();
    forgetIndex(dir);
    const segment = join(dir, SEGMENTS_DIR, '0', '1.seg');
    const pristine = readFileSync(segment);
    // Entry 2 was fdatasynced before entry 3 was written, and entry 3 says so.
    flipByte(segment, pristine.lastIndexOf(Buffer.from(sized(2, 20_000).value)) + 99, 0x01);
    expect(() => SqliteLogStore.open(dir)).toThrow(
      expect.objectContaining({ code: 'E_CORRUPT_RECORD', group: 0 }),
    );
    // The same damage to the last entry is a torn tail: cut, and the rest replayed.
    writeFileSync(segment, pristine);
    flipByte(segment, pristine.lastIndexOf(Buffer.from(sized(3, 20_000).value)) + 99, 0x01);
    const again = SqliteLogStore.open(dir);
    expect(again.recovery).toMatchObject({ replayedRecords: 2, tornTails: 1 });
    expect(again.get(0, 3)).toBeUndefined();
    await again.close();
  });

  it('reads a value with flipped, missing or cut bytes, or a damaged locator, as E_CORRUPT_RECORD', async () => {
    const dir = tempDir();
    const { records, segment } = await logWithLargeValues(dir);
    const corrupt = (id: number) =>
      expect.objectContaining({ code: 'E_CORRUPT_RECORD', group: 0, instanceId: id });
    const pristine = readFileSync(segment);
    // The last occurrence: the values are periodic, so a shorter one also occurs inside a longer.
    const at = (id: number) => pristine.lastIndexOf(Buffer.from(records[id - 1]!.value));
    // A flipped bit in the value of instance 3.
    flipByte(segment, at(3) + 17, 0x04);
    let store = SqliteLogStore.open(dir);
    expect(() => store.get(0, 3)).toThrow(corrupt(3));
    expect(() => [...store.range(0, 0, 10)]).toThrow(corrupt(3));
    expect(view(store.get(0, 4))).toEqual(view(records[3]));
    expect(view(store.get(0, 2))).toEqual(view(records[1]));
    await store.close();
    // Cut: the file lost its last bytes (a power cut before they reached the disk).
    writeFileSync(segment, pristine.subarray(0, at(4) + 100));
    store = SqliteLogStore.open(dir);
    expect(() => store.get(0, 4)).toThrow(corrupt(4));
    expect(view(store.get(0, 3))).toEqual(view(records[2]));
    await store.close();
    // A row pointing at another segment (a flipped `seg`).
    writeFileSync(segment, pristine);
    const raw = new Database(join(dir, DATABASE_FILE));
    raw.exec('UPDATE records_0 SET seg = 2 WHERE instance_id = 1');
    raw.close();
    store = SqliteLogStore.open(dir);
    expect(() => store.get(0, 1)).toThrow(corrupt(1));
    await store.close();
    // The whole file gone, above the min chosen id: every value in it reads as corrupt.
    rmSync(segment);
    store = SqliteLogStore.open(dir);
    expect(store.recovery.missingFiles).toBe(1);
    expect(() => store.get(0, 3)).toThrow(corrupt(3));
    expect(view(store.get(0, 2))).toEqual(view(records[1]));
    await store.close();
  });

  it('hands out the CRC it checked with each large value read, and stores a known CRC as it is', async () => {
    const dir = tempDir();
    const { records } = await logWithLargeValues(dir);
    let store = SqliteLogStore.open(dir);
    const read = [...store.range(0, 0, 10)];
    expect(read.map((r) => knownCrc(r.value))).toEqual([
      crc32(records[0]!.value),
      undefined, // 100 B: inline, never recorded
      crc32(records[2]!.value),
      crc32(records[3]!.value),
    ]);
    // Copying a value read from one log into another: no second pass, the same CRC.
    await store.put(0, { ...read[2]!, instanceId: 9 }, { sync: true });
    expect(view(store.get(0, 9))).toEqual(view({ ...records[2]!, instanceId: 9 }));
    // Planted: a recorded CRC that does not match the bytes is written as it is, and the read
    // of that record fails its check: a stale CRC never passes other bytes.
    const planted = sized(10, 30_000);
    rememberCrc(planted.value, crc32(planted.value) ^ 1);
    await store.put(0, planted, { sync: true });
    await store.close();
    store = SqliteLogStore.open(dir);
    expect(() => store.get(0, 10)).toThrow(
      expect.objectContaining({ code: 'E_CORRUPT_RECORD', instanceId: 10 }),
    );
    await store.close();
  });

  it('drops whole segments in deleteBelow, and forgets rows a power cut brought back without their file', async () => {
    const dir = tempDir();
    const options = { segmentBytes: 64 * 1024 };
    const store = SqliteLogStore.open(dir, options);
    // 20 KiB values, 3 per segment: segments 0, 3, 6, … 27.
    for (let i = 0; i < 30; i += 5)
      await store.putMany(
        0,
        Array.from({ length: 5 }, (_, k) => sized(i + k, 20 * 1024)),
        { sync: false },
      );
    expect(segmentFiles(dir)).toEqual([
      '0.seg',
      '3.seg',
      '6.seg',
      '9.seg',
      '12.seg',
      '15.seg',
      '18.seg',
      '21.seg',
      '24.seg',
      '27.seg',
    ]);
    await store.setMinChosenInstanceId(0, 20);
    expect(store.deleteBelow(0, 20, 4)).toBe(4); // rows 0–3: segment 0 goes, 3 (3–5) stays
    expect(segmentFiles(dir)[0]).toBe('3.seg');
    while (store.deleteBelow(0, 20, 4) > 0);
    // 18.seg holds 18–20: it stays while 20 is in the log.
    expect(segmentFiles(dir)).toEqual(['18.seg', '21.seg', '24.seg', '27.seg']);
    expect(view(store.get(0, 20))).toEqual(view(sized(20, 20 * 1024)));
    await store.close();
    // A power cut undoes the delete of segment 3's rows but not the unlink: rows below the min
    // chosen id whose file is gone. The open deletes them again.
    const raw = new Database(join(dir, DATABASE_FILE));
    raw.prepare('INSERT INTO segments VALUES (0, 3, 61440, 5)').run();
    const header = raw.prepare('SELECT record FROM records_0 WHERE instance_id = 20').pluck().get();
    raw.prepare('INSERT INTO records_0 VALUES (4, ?, 3, 20480)').run(header);
    raw.prepare('INSERT INTO segments VALUES (0, 40, 100, 45)').run(); // above the min: kept
    raw.close();
    const again = SqliteLogStore.open(dir, options);
    expect(again.recovery.missingFiles).toBe(2);
    expect(again.get(0, 4)).toBeUndefined();
    expect(again.getMinChosenInstanceId(0)).toBe(20);
    expect([...again.range(0, 0, 100)].map((r) => r.instanceId)).toEqual(
      Array.from({ length: 10 }, (_, k) => 20 + k),
    );
    await again.close();
  });

  it('upgrades a schema 2 log in place: old values stay inline, new large ones go out of line', async () => {
    const dir = tempDir();
    const raw = new Database(join(dir, DATABASE_FILE));
    raw.exec(`
      CREATE TABLE meta (grp INTEGER NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
        PRIMARY KEY (grp, key)) WITHOUT ROWID;
      CREATE TABLE schema_version (version INTEGER NOT NULL);
      INSERT INTO schema_version VALUES (2);
      CREATE TABLE records_0 (instance_id INTEGER PRIMARY KEY, record BLOB NOT NULL);
      CREATE TABLE records_3 (instance_id INTEGER PRIMARY KEY, record BLOB NOT NULL);
    `);
    const old = [sized(1, 100 * 1024), sized(2, 10)];
    for (const r of old)
      raw.prepare('INSERT INTO records_0 VALUES (?, ?)').run(r.instanceId, encodeRecord(r));
    raw.prepare('INSERT INTO records_3 VALUES (9, ?)').run(encodeRecord(sized(9, 5)));
    raw.close();
    const store = SqliteLogStore.open(dir);
    expect([...store.range(0, 0, 10)].map(view)).toEqual(old.map(view));
    await store.put(0, sized(3, 100 * 1024), { sync: true });
    await store.put(3, sized(10, 50 * 1024), { sync: true });
    expect(segmentFiles(dir)).toEqual(['3.seg']);
    expect(store.deleteBelow(0, 2, 10)).toBe(1); // the old inline large value, by its size
    await store.close();
    const check = new Database(join(dir, DATABASE_FILE), { readonly: true });
    expect(check.prepare('SELECT version FROM schema_version').pluck().get()).toBe(SCHEMA_VERSION);
    expect(
      check.prepare('SELECT seg, value_bytes FROM records_0 ORDER BY instance_id').raw().all(),
    ).toEqual([
      [null, null],
      [3, 100 * 1024],
    ]);
    check.close();
    const again = SqliteLogStore.open(dir);
    expect(view(again.get(0, 3))).toEqual(view(sized(3, 100 * 1024)));
    expect(view(again.get(3, 10))).toEqual(view(sized(10, 50 * 1024)));
    expect(view(again.get(3, 9))).toEqual(view(sized(9, 5)));
    await again.close();
  });

  it('reports a segment write on a full disk as E_DISK_FULL, writing nothing, and goes on after', async () => {
    const dir = tempDir();
    let full = false;
    const store = SqliteLogStore.open(dir, {
      segmentBytes: 100_000,
      writeSegment: (fd, buffers, position) => {
        if (full)
          throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
        writevSync(fd, buffers as Uint8Array[], position);
      },
    });
    await store.putMany(0, [sized(1, 40_000), sized(2, 40_000)], { sync: true });
    full = true;
    // A batch that fills the current segment and starts a new one: its appends fail.
    const batch = [sized(3, 15_000), sized(4, 50_000), sized(5, 10)];
    expect(await codeOf(store.putMany(0, batch, { sync: true }))).toBe('E_DISK_FULL');
    expect(await codeOf(store.put(0, sized(6, 50_000), { sync: false }))).toBe('E_DISK_FULL');
    expect(store.get(0, 3)).toBeUndefined();
    expect(store.get(0, 5)).toBeUndefined();
    full = false;
    await store.putMany(0, batch, { sync: true });
    await store.close();
    const again = SqliteLogStore.open(dir);
    expect([...again.range(0, 0, 10)].map(view)).toEqual(
      [sized(1, 40_000), sized(2, 40_000), ...batch].map(view),
    );
    await again.close();
  });

  it('reads large values from a log opened read-only, and refuses writes there', async () => {
    const dir = tempDir();
    const { records } = await logWithLargeValues(dir);
    const store = SqliteLogStore.open(dir, { readonly: true });
    expect([...store.range(0, 0, 10)].map(view)).toEqual(records.map(view));
    expect(await codeOf(store.put(0, sized(9, 50_000), { sync: false }))).toBe('E_READ_ONLY');
    await store.close();
  });
});

/**
 * A sync:false stream as the learner writes it (batches of 2,048 100 B records, the event loop
 * turning after each) that passes walCheckpointMaxPages once (not twice: no fallback), then waits for
 * the checkpoint. Returns the longest time the event loop was held between two turns by anything
 * but the test's own work (building a batch and the putMany call, which a loaded machine
 * stretches alike in both modes), and the store's checkpoint counts.
 */
async function streamStall(options: SqliteLogStoreOptions) {
  const store = SqliteLogStore.open(tempDir(), options);
  const maxPages = options.walCheckpointMaxPages ?? 4096;
  // ~33 records per 4 KiB page of WAL (100 B values plus the record's bytes and the B-tree's).
  const records = Math.ceil(maxPages * 33 * 1.3);
  let longest = 0;
  let last = performance.now();
  const turn = async (own: number) => {
    await tick();
    const now = performance.now();
    longest = Math.max(longest, now - last - own);
    last = now;
  };
  for (let id = 0; id < records; id += 2048) {
    const t0 = performance.now();
    await store.putMany(
      0,
      Array.from({ length: 2048 }, (_, k) => sized(id + k, 100)),
      { sync: false },
    );
    await turn(performance.now() - t0);
  }
  while (store.syncStats.walCheckpoints === 0) await turn(0);
  const stats = { ...store.syncStats, longestTurnMs: longest };
  await store.close();
  return stats;
}

/**
 * A checkpoint connection that holds the WAL's write lock for `ms` (BEGIN IMMEDIATE), as
 * SQLite's does for a moment when it re-reads the WAL index's header, then checkpoints.
 */
const HOLD_WRITE_LOCK_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
const db = new Database(workerData.path, { fileMustExist: true, timeout: 5000 });
db.exec('BEGIN IMMEDIATE');
Atomics.store(workerData.held, 0, 1);
Atomics.wait(workerData.held, 1, 0, workerData.ms);
db.exec('COMMIT');
const row = db.pragma('wal_checkpoint(PASSIVE)')[0];
db.close();
Atomics.store(workerData.held, 0, 2);
parentPort.postMessage({ busy: row.busy, log: row.log, checkpointed: row.checkpointed });
`;
const requireHere = createRequire(import.meta.url);

describe('SqliteLogStore checkpoints on a worker thread', () => {
  it('does not hold the event loop for a checkpoint; inline (the planted bug) does', async () => {
    const worker = [];
    const inline = [];
    for (let r = 0; r < 3; r++) {
      worker.push(await streamStall({}));
      inline.push(await streamStall({ walCheckpointIn: 'inline' }));
    }
    for (const w of worker) {
      expect(w.walCheckpoints).toBeGreaterThanOrEqual(1);
      expect(w.fsyncs).toBe(0); // and none through the store's fsync port
    }
    // The fallback on the event loop runs only if the worker cannot keep up (slow fsyncs on a
    // loaded machine): the best of three runs needs none.
    expect(Math.min(...worker.map((w) => w.inlineWalCheckpoints))).toBe(0);
    for (const i of inline) expect(i.inlineWalCheckpoints).toBeGreaterThanOrEqual(1);
    const best = (xs: Array<{ longestTurnMs: number }>) =>
      Math.min(...xs.map((x) => x.longestTurnMs));
    // The best of three each: the machine is shared, and a turn also holds GC and the batch.
    console.log(
      'longest turn, worker',
      worker.map((x) => x.longestTurnMs),
      'inline',
      inline.map((x) => x.longestTurnMs),
    );
    expect(best(worker)).toBeLessThan(best(inline));
    // Six streams of fixed work (a few seconds on a quiet machine): room for a loaded one.
  }, 180_000);

  it('reports a failed checkpoint as a coded StorageError to the next write, and close still ends', async () => {
    let runs = 0;
    const failing = (): WalCheckpointPort => ({
      run: (done) => {
        runs++;
        setImmediate(() =>
          done(Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_WRITE' })),
        );
      },
      close: () => Promise.resolve(),
    });
    const store = SqliteLogStore.open(tempDir(), {
      walCheckpointMaxPages: 50,
      walCheckpointPort: failing,
    });
    for (let i = 0; i < 50; i++) await store.put(0, sized(i, 1000), { sync: false });
    await until(() => runs === 1, 'the checkpoint');
    await tick();
    const err = await store.put(0, sized(1000, 100), { sync: false }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StorageError);
    expect(err).toMatchObject({ code: 'E_IO' });
    expect((err as Error).message).toMatch(/checkpoint/);
    expect(store.get(0, 1000)).toBeUndefined(); // refused, nothing written
    expect(store.syncStats.walCheckpoints).toBe(0);
    await store.close();
  });

  it('reports a real worker that cannot open the log (E_OPEN_FAILED) to the next write', async () => {
    let replied = 0;
    const store = SqliteLogStore.open(tempDir(), {
      walCheckpointMaxPages: 50,
      walCheckpointPort: (path) => {
        const real = workerWalCheckpointPort(`${path}.missing`);
        return {
          run: (done) => real.run((e, r) => (replied++, done(e, r))),
          close: () => real.close(),
        };
      },
    });
    for (let i = 0; i < 50; i++) await store.put(0, sized(i, 1000), { sync: false });
    await until(() => replied === 1, 'the worker');
    expect(await codeOf(store.put(0, sized(5000, 100), { sync: false }))).toBe('E_OPEN_FAILED');
    expect(await codeOf(store.put(0, sized(5001, 100), { sync: true }))).toBe('E_OPEN_FAILED');
    await store.close();
  });

  it('close() waits for a running checkpoint, then closes the worker', async () => {
    const events: string[] = [];
    let finish: (() => void) | undefined;
    const slow = (): WalCheckpointPort => ({
      run: (done) => {
        events.push('run');
        finish = () => {
          events.push('done');
          done(undefined, { busy: 0, log: 10, checkpointed: 10 });
        };
      },
      close: () => {
        events.push('close');
        return Promise.resolve();
      },
    });
    const store = SqliteLogStore.open(tempDir(), {
      walCheckpointMaxPages: 50,
      walCheckpointPort: slow,
    });
    for (let i = 0; i < 50; i++) await store.put(0, sized(i, 1000), { sync: false });
    expect(events).toEqual(['run']);
    let closed = false;
    const closing = store.close().then(() => (closed = true));
    await tick();
    await tick();
    expect(closed).toBe(false);
    finish!();
    await closing;
    expect(events).toEqual(['run', 'done', 'close']);
    expect(store.syncStats.walCheckpoints).toBe(1);
  });

  it('keeps the WAL bounded when the checkpoint cannot keep up: it falls back to one on the event loop', async () => {
    // A worker that does not finish while the writes go on: they must not let the WAL grow
    // without bound. It answers (having copied nothing) once the writes are done.
    let pending: ((err: unknown, result?: WalCheckpointResult) => void) | undefined;
    const stuck = (): WalCheckpointPort => ({
      run: (done) => (pending = done),
      close: () => Promise.resolve(),
    });
    const dir = tempDir();
    const store = SqliteLogStore.open(dir, {
      walCheckpointMaxPages: 200,
      walCheckpointPort: stuck,
    });
    for (let i = 0; i < 60_000; i += 500) {
      await store.putMany(
        0,
        Array.from({ length: 500 }, (_, k) => sized(i + k, 100)),
        { sync: false },
      );
      await tick();
    }
    // ~8 MB of rows went through a WAL of at most ~2 × 200 pages plus a batch.
    expect(store.syncStats.inlineWalCheckpoints).toBeGreaterThan(5);
    expect(statSync(join(dir, `${DATABASE_FILE}-wal`)).size).toBeLessThan(3 * 1024 * 1024);
    pending!(undefined, { busy: 0, log: 0, checkpointed: 0 });
    await store.close();
  });

  it('holds an unsynced write back while the worker cannot restart the WAL past its bound (backpressure)', async () => {
    // The worker's checkpoint does not finish, and a reader pins the WAL so the fallback on the
    // event loop cannot restart it either: a writer that awaits its writes must be held back.
    let other: InstanceType<typeof Database> | undefined;
    let pending: ((err: unknown, result?: WalCheckpointResult) => void) | undefined;
    let unpinned = false;
    const pinned = (path: string): WalCheckpointPort => ({
      run: (done) => {
        if (unpinned) {
          setImmediate(() => done(undefined, { busy: 0, log: 0, checkpointed: 0 }));
          return;
        }
        pending = done;
        if (other === undefined) {
          other = new Database(path, { timeout: 0 });
          other.prepare('BEGIN').run();
          other.prepare('SELECT count(*) FROM sqlite_master').get(); // a read snapshot
        }
      },
      close: () => Promise.resolve(),
    });
    const store = SqliteLogStore.open(tempDir(), {
      walCheckpointMaxPages: 100,
      walCheckpointPort: pinned,
    });
    let held: Promise<void> | undefined;
    for (let i = 0; held === undefined && i < 200_000; i += 500) {
      const write = store.putMany(
        0,
        Array.from({ length: 500 }, (_, k) => sized(i + k, 100)),
        { sync: false },
      );
      let settled = false;
      void write.then(() => (settled = true));
      await tick();
      if (!settled) held = write;
    }
    expect(held).toBeDefined();
    expect(store.syncStats.backpressureWaits).toBeGreaterThanOrEqual(1);
    await tick();
    let released = false;
    void held!.then(() => (released = true));
    await tick();
    expect(released).toBe(false); // still held while the checkpoint runs
    other!.prepare('COMMIT').run();
    other!.close();
    unpinned = true; // later checkpoints answer at once
    pending!(undefined, { busy: 0, log: 0, checkpointed: 0 });
    await held;
    await store.close();
  });

  it('keeps the WAL bounded under a continuous stream with the real worker', async () => {
    const dir = tempDir();
    const store = SqliteLogStore.open(dir, { walCheckpointMaxPages: 200 });
    for (let i = 0; i < 100_000; i += 2048) {
      await store.putMany(
        0,
        Array.from({ length: 2048 }, (_, k) => sized(i + k, 100)),
        { sync: false },
      );
      await tick();
    }
    expect(store.syncStats.walCheckpoints).toBeGreaterThan(5);
    // Twice the threshold (1.6 MB) plus what one checkpoint lets through.
    expect(statSync(join(dir, `${DATABASE_FILE}-wal`)).size).toBeLessThan(6 * 1024 * 1024);
    for (let i = 0; i < 100_000; i += 7919)
      expect(view(store.get(0, i))).toEqual(view(sized(i, 100)));
    await store.close();
  });

  it('holds a write back, not fails it with E_LOCKED, while the checkpoint connection has the WAL write lock for a moment', async () => {
    // SQLite's own checkpoint connection takes the WAL's write lock for a moment when it reads
    // the WAL index's header while the store writes it (walIndexReadHdr re-reads it under that
    // lock); the store's connection has no busy timeout (0), so a put then failed with E_LOCKED
    // (SQLITE_BUSY): the bench's "longest event-loop turn ... by a yielding caller" did, at
    // random. Here the checkpoint's connection (on its own thread) holds the lock for 300 ms;
    // before the fix the put below failed at once, every run.
    const held = new Int32Array(new SharedArrayBuffer(8));
    let runs = 0;
    const locking = (path: string): WalCheckpointPort => ({
      run: (done) => {
        runs++;
        const w = new Worker(HOLD_WRITE_LOCK_SOURCE, {
          eval: true,
          workerData: { sqlite: requireHere.resolve('better-sqlite3'), path, held, ms: 300 },
        });
        w.once('message', (m: WalCheckpointResult) => {
          void w.terminate();
          done(undefined, m);
        });
        w.once('error', (e) => done(e));
      },
      close: () => Promise.resolve(),
    });
    const store = SqliteLogStore.open(tempDir(), {
      walCheckpointMaxPages: 20,
      walCheckpointPort: locking,
    });
    let i = 0;
    for (; runs === 0; i++) await store.put(0, sized(i, 100), { sync: false });
    await until(() => Atomics.load(held, 0) === 1, 'the write lock taken');
    const t0 = performance.now();
    await store.put(0, sized(i, 100), { sync: false });
    expect(performance.now() - t0).toBeGreaterThan(20); // it waited for the lock
    expect(view(store.get(0, i))).toEqual(view(sized(i, 100)));
    await until(() => !store['walCheckpointer']['running'], 'the checkpoint');
    // Back in locking_mode EXCLUSIVE, and the connection never waits there.
    expect(store['db'].pragma('locking_mode', { simple: true })).toBe('exclusive');
    expect(store['db'].pragma('busy_timeout', { simple: true })).toBe(0);
    await store.put(0, sized(i + 1, 100), { sync: true });
    await store.close();
  });

  it('never fails a write with E_LOCKED while the worker checkpoints (a caller yielding after each 100 B put)', async () => {
    // The bench's "longest event-loop turn ... by a yielding caller" shape, with checkpoints
    // every 20 WAL pages: one sync:false put per event-loop turn, so the worker's connection
    // opens, checkpoints and closes while the store writes in locking_mode NORMAL, many times.
    // A race, so not every run catches it: before the fix, 20,000 such puts (store built from
    // main, walCheckpointMaxPages 10 and 20, two processes at once on a loaded machine) failed
    // with E_LOCKED in 3 runs of 23; the test above catches it every time.
    const store = SqliteLogStore.open(tempDir(), { walCheckpointMaxPages: 20 });
    const value = new Uint8Array(100).fill(7);
    const onWorker = () => store.syncStats.walCheckpoints - store.syncStats.inlineWalCheckpoints;
    // 6,000 puts, and on until the worker has checkpointed 6 times: on a loaded machine (a CI
    // run) the worker thread gets the CPU late and most checkpoints ran inline (4 on the worker).
    let n = 0;
    for (; n < 6000 || (onWorker() <= 5 && n < 60_000); n++) {
      await store.put(0, { ...sized(n, 0), value }, { sync: false });
      await tick();
    }
    expect(store.syncStats.walCheckpoints).toBeGreaterThan(20);
    expect(store.syncStats.walCheckpoints - store.syncStats.inlineWalCheckpoints).toBeGreaterThan(
      5,
    );
    expect(store.maxInstanceId(0)).toBe(n - 1);
    await store.close();
  });

  it('runs in locking_mode NORMAL while another connection holds the database open, and counts it', async () => {
    let other: InstanceType<typeof Database> | undefined;
    let runs = 0;
    const intruding = (path: string): WalCheckpointPort => ({
      run: (done) => {
        runs++;
        if (runs === 1) {
          other = new Database(path, { timeout: 0 }); // a tool that ignored the lock file
          other.prepare('SELECT count(*) FROM sqlite_master').get();
        }
        setImmediate(() => done(undefined, { busy: 0, log: 0, checkpointed: 0 }));
      },
      close: () => Promise.resolve(),
    });
    const store = SqliteLogStore.open(tempDir(), {
      walCheckpointMaxPages: 50,
      walCheckpointPort: intruding,
    });
    let i = 0;
    for (; runs < 1; i++) await store.put(0, sized(i, 1000), { sync: false });
    await until(() => store.lockStats.retakeBusy === 1, 'the lock retake');
    // Writes and reads go on in NORMAL mode, sync or not.
    await store.put(0, sized(i, 100), { sync: true });
    expect(view(store.get(0, i))).toEqual(view(sized(i, 100)));
    other!.close();
    for (const start = runs; runs === start; i++)
      await store.put(0, sized(i + 1, 1000), { sync: false });
    await until(() => !store['walCheckpointer']['running'], 'the second checkpoint');
    expect(store.lockStats.retakeBusy).toBe(1); // taken back this time
    await store.close();
  });
});
