import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  fstatSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeRecord } from '@tspaxos/crc-wasm';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { codeOf, describeLogStoreContract, record, text } from './log-store.contract';
import type { StorageOptions } from './options';
import {
  DATABASE_FILE,
  SCHEMA_VERSION,
  SqliteLogStore,
  type SqliteLogStoreOptions,
} from './sqlite-log-store';

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
  const calls: Array<{ fd: number; done: Callback }> = [];
  return { calls, fsync: (fd: number, done: Callback) => calls.push({ fd, done }) };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

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

  it('acknowledges a sync write only after an fsync of the WAL that started after its commit', async () => {
    const dir = tempDir();
    const io = manualFsync();
    const store = SqliteLogStore.open(dir, { fsync: io.fsync });
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
    expect(store.syncStats).toEqual({ fsyncs: 2, fdatasyncs: 0, syncWrites: 3, checkpoints: 0 });
    const closing = store.close();
    await closing;
  });

  it('after a failed fsync, fails that batch and every later write with E_IO; reads go on', async () => {
    const io = manualFsync();
    const store = SqliteLogStore.open(tempDir(), { fsync: io.fsync });
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
    const store = SqliteLogStore.open(tempDir(), { fsync: io.fsync });
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
      { checkpointPages: 0 },
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
    const child = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import Database from 'better-sqlite3';
         try { const d = new Database(process.argv[1], { timeout: 0 }); d.prepare('SELECT 1 FROM meta').get(); console.log('opened'); }
         catch (e) { console.log(e.code); }`,
        join(dir, DATABASE_FILE),
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
