import { spawn } from 'node:child_process';
import {
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { describeLogStoreContract, record } from './log-store.contract';
import { DATABASE_FILE, SCHEMA_VERSION, SqliteLogStore } from './sqlite-log-store';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'tspaxos-storage-'));
}

describeLogStoreContract('SqliteLogStore', async () => {
  const dir = tempDir();
  let store = SqliteLogStore.open(dir);
  return {
    store,
    reopen: async () => {
      await store.close();
      store = SqliteLogStore.open(dir);
      return store;
    },
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('SqliteLogStore', () => {
  it('shares one fsync among concurrent sync writes (group commit)', async () => {
    const dir = tempDir();
    const store = SqliteLogStore.open(dir);
    await Promise.all(
      Array.from({ length: 64 }, (_, i) => store.put(0, record(i), { sync: true })),
    );
    expect(store.syncStats.syncWrites).toBe(64);
    expect(store.syncStats.fsyncs).toBeLessThanOrEqual(3);
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads flipped bytes in a record as E_CORRUPT_RECORD; other records still read', async () => {
    const dir = tempDir();
    const store = SqliteLogStore.open(dir);
    const marker = 'MARKER-'.repeat(20);
    await store.put(0, record(1, 'plain value one'), { sync: true });
    await store.put(0, record(2, marker), { sync: true });
    await store.put(0, record(3, 'plain value three'), { sync: true });
    await store.close(); // checkpoints the WAL into the database file
    const path = join(dir, DATABASE_FILE);
    const size = statSync(path).size;
    const bytes = Buffer.alloc(size);
    const fd = openSync(path, 'r+');
    readSync(fd, bytes, 0, size, 0);
    const at = bytes.indexOf(marker);
    expect(at).toBeGreaterThan(0);
    writeSync(fd, Buffer.from([bytes[at + 10]! ^ 0x04]), 0, 1, at + 10);
    closeSync(fd);
    const again = SqliteLogStore.open(dir);
    expect(() => again.get(0, 2)).toThrow(
      expect.objectContaining({ code: 'E_CORRUPT_RECORD', group: 0, instanceId: 2 }),
    );
    expect(() => [...again.range(0, 0, 10)]).toThrow(
      expect.objectContaining({ code: 'E_CORRUPT_RECORD' }),
    );
    expect(new TextDecoder().decode(again.get(0, 1)!.value)).toBe('plain value one');
    expect(new TextDecoder().decode(again.get(0, 3)!.value)).toBe('plain value three');
    await again.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses files it cannot use with a clear StorageError', async () => {
    const dir = tempDir();
    // Not a database at all.
    const junk = join(dir, 'junk.sqlite');
    writeFileSync(junk, 'this is not a database, just some text that is long enough'.repeat(100));
    expect(() => SqliteLogStore.open(junk)).toThrow(
      expect.objectContaining({ code: 'E_OPEN_FAILED' }),
    );
    // A SQLite database of something else.
    const other = join(dir, 'other.sqlite');
    const db = new Database(other);
    db.exec('CREATE TABLE users (name TEXT)');
    db.close();
    expect(() => SqliteLogStore.open(other)).toThrow(/not a tspaxos log/);
    // A newer schema.
    const newer = join(dir, 'newer');
    await SqliteLogStore.open(newer).close();
    const raw = new Database(join(newer, DATABASE_FILE));
    raw.exec(`UPDATE schema_version SET version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    expect(() => SqliteLogStore.open(newer)).toThrow(
      expect.objectContaining({ code: 'E_SCHEMA_TOO_NEW' }),
    );
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports a read-only log and a full disk as E_READ_ONLY and E_DISK_FULL, writing nothing', async () => {
    const dir = tempDir();
    await SqliteLogStore.open(dir).close();
    const readonly = SqliteLogStore.open(dir, { readonly: true });
    await expect(readonly.put(0, record(1), { sync: true })).rejects.toMatchObject({
      code: 'E_READ_ONLY',
    });
    await readonly.close();
    const full = SqliteLogStore.open(dir, { maxDatabaseBytes: 64 * 1024 });
    const big = { ...record(1), value: new Uint8Array(256 * 1024) };
    await expect(full.put(0, big, { sync: true })).rejects.toMatchObject({ code: 'E_DISK_FULL' });
    expect(full.get(0, 1)).toBeUndefined();
    await full.put(0, record(2), { sync: true }); // small writes still fit
    await full.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps every acknowledged sync write across SIGKILL, and never returns a half-written record', async () => {
    const dir = tempDir();
    const writer = new URL('../test/crash-writer.mjs', import.meta.url).pathname;
    let next = 0;
    const rounds = Number(process.env.CRASH_ROUNDS ?? 25);
    for (let round = 0; round < rounds; round++) {
      const acked: number[] = [];
      const child = spawn(process.execPath, [writer, dir, String(next)], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let buffered = '';
      child.stdout.on('data', (d: Buffer) => {
        buffered += d.toString();
        const lines = buffered.split('\n');
        buffered = lines.pop()!;
        for (const l of lines) acked.push(Number(l));
      });
      const killAfterMs = 40 + Math.floor(Math.random() * 200);
      await new Promise((r) => setTimeout(r, killAfterMs));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const store = SqliteLogStore.open(dir);
      for (const id of acked) {
        const r = store.get(0, id);
        expect(r, `acknowledged write ${id} (round ${round})`).toBeDefined();
        expect(new TextDecoder().decode(r!.value).startsWith(`value-${id}-`)).toBe(true);
      }
      for (const r of store.range(0, 0, Number.MAX_SAFE_INTEGER))
        expect(r.checksum).toBe(r.instanceId); // decodes: intact
      next = (store.maxInstanceId(0) ?? next) + 1;
      await store.close();
    }
    expect(next).toBeGreaterThan(rounds); // the writer made progress
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);
});
