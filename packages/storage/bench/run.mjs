// @tspaxos/storage benchmark (`npm run bench`): records/s and MB/s writing 100 B and 100 KiB
// values one per transaction and in batches of 100 and 1,000, sync true and false; range reads;
// the group commit; the cost of one deleteBelow step and of the longest single write call.
//
// Baseline, measured in the same run and interleaved with ours (ours, raw, ours, raw, …):
// raw better-sqlite3 inserting the same bytes (the encoded records, encoded once up front) into a
// bare (id INTEGER PRIMARY KEY, v BLOB) table with the same pragmas: locking_mode=EXCLUSIVE,
// journal_mode=WAL, and synchronous=NORMAL for sync:false or FULL for sync:true (an fsync per
// commit: the durability our sync:true gives). Each ratio is the median of the per-pair ratios.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { crc32, encodeRecord } from '@tspaxos/crc-wasm';
import { SqliteLogStore } from '../dist/sqlite.js';
import { RUNS, median, medianOf, report } from '../../../scripts/bench-harness.mjs';

const dirs = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'tspaxos-bench-'));
  dirs.push(d);
  return d;
};
const cleanup = () => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
};
const record = (id, value) => ({
  instanceId: id,
  promiseId: 1,
  promiseNodeId: 1,
  acceptedId: 1,
  acceptedNodeId: 1,
  value,
  checksum: id % 2 ** 32,
});
const seconds = (t0) => (performance.now() - t0) / 1000;

function rawDb(sync) {
  const db = new Database(join(tmp(), 'raw.sqlite'));
  db.pragma('locking_mode = EXCLUSIVE');
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${sync ? 'FULL' : 'NORMAL'}`);
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
  return db;
}

/** Runs `ours` and `raw` alternately RUNS times; medians of each and of the per-pair ratios. */
async function paired(ours, raw) {
  const a = [];
  const b = [];
  for (let r = 0; r < RUNS; r++) {
    a.push(await ours());
    b.push(await raw());
    cleanup();
  }
  return { ours: median(a), raw: median(b), ratio: median(a.map((x, i) => x / b[i])) };
}

const rows = [];
const MB = 1e6;
const BASELINE = 'raw better-sqlite3';

for (const [label, size] of [
  ['100 B', 100],
  ['100 KiB', 100 * 1024],
]) {
  const value = randomBytes(size);
  const encoded = Buffer.from(encodeRecord(record(0, value))); // the bytes both sides store
  const big = size > 1000;
  for (const batch of [1, 100, 1000]) {
    for (const sync of [false, true]) {
      let total = big ? 2000 : 100_000;
      if (batch === 1) total = sync ? (big ? 200 : 400) : big ? 1000 : 20_000;
      const ours = async () => {
        const store = SqliteLogStore.open(tmp());
        const t0 = performance.now();
        for (let id = 0; id < total; id += batch) {
          if (batch === 1) await store.put(0, record(id, value), { sync });
          else {
            const records = Array.from({ length: batch }, (_, k) => record(id + k, value));
            await store.putMany(0, records, { sync });
          }
        }
        const rate = total / seconds(t0);
        await store.close();
        return rate;
      };
      const raw = async () => {
        const db = rawDb(sync);
        const insert = db.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
        const many = db.transaction((from, n) => {
          for (let k = 0; k < n; k++) insert.run(from + k, encoded);
        });
        const t0 = performance.now();
        for (let id = 0; id < total; id += batch) {
          if (batch === 1) insert.run(id, encoded);
          else many(id, batch);
        }
        const rate = total / seconds(t0);
        db.close();
        return rate;
      };
      const m = await paired(ours, raw);
      const name = `write ${label}, batch ${batch}, sync ${sync}`;
      rows.push({ name, value: m.ours, unit: 'records/s', ratio: m.ratio, baseline: BASELINE });
      rows.push({ name: `${name} (MB/s)`, value: (m.ours * encoded.length) / MB, unit: 'MB/s' });
      console.error(`${name}: ${m.ours.toFixed(0)}/s vs raw ${m.raw.toFixed(0)}/s`);
    }
  }

  // Range reads: the whole log, in order, every record decoded and its CRC checked.
  const n = big ? 2000 : 100_000;
  const store = SqliteLogStore.open(tmp());
  for (let id = 0; id < n; id += 1000) {
    const records = Array.from({ length: Math.min(1000, n - id) }, (_, k) => record(id + k, value));
    await store.putMany(0, records, { sync: false });
  }
  const db = rawDb(false);
  const insert = db.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
  db.transaction(() => {
    for (let i = 0; i < n; i++) insert.run(i, encoded);
  })();
  const select = db.prepare('SELECT id, v FROM t WHERE id >= ? AND id < ? ORDER BY id').raw();
  const reads = [];
  const rawReads = [];
  const rawCrcReads = [];
  for (let r = 0; r < RUNS; r++) {
    let t0 = performance.now();
    let k = 0;
    for (const rec of store.range(0, 0, n)) k += rec.value.length === size ? 1 : 0;
    reads.push(k / seconds(t0));
    t0 = performance.now();
    k = 0;
    for (const row of select.iterate(0, n)) k += row[1].length === encoded.length ? 1 : 0;
    rawReads.push(k / seconds(t0));
    // The same raw read plus the CRC check every record of ours gets (same crc32 dispatch):
    // what an integrity-checked read can reach, so the ratio to it shows what the check costs.
    t0 = performance.now();
    k = 0;
    for (const row of select.iterate(0, n)) k += crc32(row[1]) !== 1 ? 1 : 0;
    rawCrcReads.push(k / seconds(t0));
  }
  const ratio = median(reads.map((x, i) => x / rawReads[i]));
  const name = `range read ${label}`;
  rows.push({ name, value: median(reads), unit: 'records/s', ratio, baseline: BASELINE });
  rows.push({ name: `${name} (MB/s)`, value: (median(reads) * encoded.length) / MB, unit: 'MB/s' });
  rows.push({
    name: `${name}, vs raw + CRC check`,
    value: median(reads),
    unit: 'records/s',
    ratio: median(reads.map((x, i) => x / rawCrcReads[i])),
    baseline: 'raw better-sqlite3 + crc32',
  });

  // The cleaner's step: one deleteBelow call with the default limits (maxDeleteRecords records,
  // maxDeleteBytes bytes, whichever comes first).
  const stepMs = [];
  let stepRecords = 0;
  while (stepMs.length < RUNS) {
    const t0 = performance.now();
    const deleted = store.deleteBelow(0, n, Number.MAX_SAFE_INTEGER);
    const ms = performance.now() - t0;
    if (deleted === 0) break;
    stepMs.push(ms);
    stepRecords = deleted;
  }
  rows.push({
    name: `deleteBelow step, ${label} (${stepRecords} records)`,
    value: median(stepMs),
    unit: 'ms',
  });
  await store.close();
  db.close();
  cleanup();

  // The longest a single write call holds the event loop: sync:false puts, one per call, for
  // 20 MB, SQLite's automatic checkpoints (every 1000 WAL pages) included.
  const stall = await medianOf(async () => {
    const s = SqliteLogStore.open(tmp());
    let worst = 0;
    const count = Math.ceil(20e6 / encoded.length);
    for (let id = 0; id < count; id++) {
      const t0 = performance.now();
      const p = s.put(0, record(id, value), { sync: false });
      worst = Math.max(worst, performance.now() - t0);
      await p;
    }
    await s.close();
    cleanup();
    return worst;
  });
  rows.push({ name: `longest single put, ${label}, 20 MB written`, value: stall, unit: 'ms' });
}

// Group commit: 64 concurrent sync writers against the same 64 writes one after another.
{
  const value = randomBytes(100);
  const rounds = 20;
  const concurrent = await medianOf(async () => {
    const store = SqliteLogStore.open(tmp());
    const t0 = performance.now();
    for (let r = 0; r < rounds; r++) {
      const writes = Array.from({ length: 64 }, (_, k) =>
        store.put(0, record(r * 64 + k, value), { sync: true }),
      );
      await Promise.all(writes);
    }
    const rate = (rounds * 64) / seconds(t0);
    await store.close();
    cleanup();
    return rate;
  });
  const sequential = await medianOf(async () => {
    const store = SqliteLogStore.open(tmp());
    const t0 = performance.now();
    for (let i = 0; i < 5 * 64; i++) await store.put(0, record(i, value), { sync: true });
    const rate = (5 * 64) / seconds(t0);
    await store.close();
    cleanup();
    return rate;
  });
  rows.push({ name: '64 sequential sync writers', value: sequential, unit: 'records/s' });
  rows.push({
    name: '64 concurrent sync writers (group commit)',
    value: concurrent,
    unit: 'records/s',
    ratio: concurrent / sequential,
    baseline: '64 sequential',
  });
}

report('storage', rows);
cleanup();
