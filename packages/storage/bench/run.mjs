// @tspaxos/storage benchmark: records/s and MB/s writing 100 B and 100 KiB values one per
// transaction and in batches of 100 and 1,000, sync true and false; range reads; group commit.
// Every figure against raw better-sqlite3 writing the same bytes into a bare
// (id INTEGER PRIMARY KEY, v BLOB) table in the same run (WAL; synchronous=NORMAL for sync:false,
// FULL for sync:true: the same durability as ours).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { encodeRecord } from '@tspaxos/crc-wasm';
import { SqliteLogStore } from '../dist/index.js';
import { medianOf, report } from '../../../scripts/bench-harness.mjs';

const dirs = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'tspaxos-bench-'));
  dirs.push(d);
  return d;
};
const record = (id, value) => ({ instanceId: id, promiseId: 1, promiseNodeId: 1, acceptedId: 1, acceptedNodeId: 1, value, checksum: id });

function rawDb(sync) {
  const db = new Database(join(tmp(), 'raw.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${sync ? 'FULL' : 'NORMAL'}`);
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
  return db;
}

const rows = [];
const MB = 1e6;

for (const [label, size] of [['100 B', 100], ['100 KiB', 100 * 1024]]) {
  const value = randomBytes(size);
  const recordBytes = encodeRecord(record(0, value)).length;
  for (const batch of [1, 100, 1000]) {
    for (const sync of [false, true]) {
      // Keep each measurement around a fixed number of bytes and records.
      let total = size > 1000 ? 1000 : 20_000;
      if (batch === 1) total = sync ? (size > 1000 ? 100 : 300) : size > 1000 ? 500 : 5000;
      const ours = await medianOf(async () => {
        const store = SqliteLogStore.open(tmp());
        const t0 = performance.now();
        for (let id = 0; id < total; id += batch) {
          if (batch === 1) await store.put(0, record(id, value), { sync });
          else await store.putMany(0, Array.from({ length: batch }, (_, k) => record(id + k, value)), { sync });
        }
        const s = (performance.now() - t0) / 1000;
        await store.close();
        return total / s;
      });
      const raw = await medianOf(async () => {
        const db = rawDb(sync);
        const insert = db.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
        const many = db.transaction((from, n) => {
          for (let k = 0; k < n; k++) insert.run(from + k, value);
        });
        const t0 = performance.now();
        for (let id = 0; id < total; id += batch) {
          if (batch === 1) insert.run(id, value);
          else many(id, batch);
        }
        const s = (performance.now() - t0) / 1000;
        db.close();
        return total / s;
      });
      const name = `write ${label}, batch ${batch}, sync ${sync}`;
      rows.push({ name, value: ours, unit: 'records/s', ratio: ours / raw, baseline: 'raw better-sqlite3' });
      rows.push({ name: `${name} (MB/s)`, value: (ours * recordBytes) / MB, unit: 'MB/s' });
    }
  }
  // Range reads.
  const n = size > 1000 ? 2000 : 50_000;
  const dir = tmp();
  const store = SqliteLogStore.open(dir);
  await store.putMany(0, Array.from({ length: n }, (_, i) => record(i, value)), { sync: false });
  const db = rawDb(false);
  db.transaction(() => {
    const insert = db.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
    for (let i = 0; i < n; i++) insert.run(i, value);
  })();
  const select = db.prepare('SELECT id, v FROM t WHERE id >= ? AND id < ? ORDER BY id').raw();
  const oursRead = await medianOf(async () => {
    const t0 = performance.now();
    let k = 0;
    for (const r of store.range(0, 0, n)) k += r.value.length > 0 ? 1 : 0;
    return k / ((performance.now() - t0) / 1000);
  });
  const rawRead = await medianOf(async () => {
    const t0 = performance.now();
    let k = 0;
    for (const r of select.iterate(0, n)) k += r[1].length > 0 ? 1 : 0;
    return k / ((performance.now() - t0) / 1000);
  });
  rows.push({ name: `range read ${label}`, value: oursRead, unit: 'records/s', ratio: oursRead / rawRead, baseline: 'raw better-sqlite3' });
  await store.close();
  db.close();
}

// Group commit: 64 concurrent sync writers vs the same 64 writes one after another.
{
  const value = randomBytes(100);
  const rounds = 20;
  const concurrent = await medianOf(async () => {
    const store = SqliteLogStore.open(tmp());
    const t0 = performance.now();
    for (let r = 0; r < rounds; r++) await Promise.all(Array.from({ length: 64 }, (_, k) => store.put(0, record(r * 64 + k, value), { sync: true })));
    const s = (performance.now() - t0) / 1000;
    await store.close();
    return (rounds * 64) / s;
  });
  const sequential = await medianOf(async () => {
    const store = SqliteLogStore.open(tmp());
    const t0 = performance.now();
    for (let i = 0; i < 5 * 64; i++) await store.put(0, record(i, value), { sync: true });
    const s = (performance.now() - t0) / 1000;
    await store.close();
    return (5 * 64) / s;
  });
  rows.push({ name: '64 sequential sync writers', value: sequential, unit: 'records/s', ratio: 1, baseline: 'sequential' });
  rows.push({ name: '64 concurrent sync writers (group commit)', value: concurrent, unit: 'records/s', ratio: concurrent / sequential, baseline: 'sequential' });
}

report('storage', rows);
for (const d of dirs) rmSync(d, { recursive: true, force: true });
