// Durable single writes (issue 22, "one fsync per durable write"): one writer awaiting each
// sync:true put, measured against baselines in the same run, interleaved (ours, baseline, …;
// each ratio is the median of the per-pair ratios).
// - 100 B: ours (the record a segment entry, durable by one fdatasync; the index row in the
//   WAL, fsynced later) against raw better-sqlite3 inserting the same encoded bytes with
//   synchronous=FULL (one fsync inside each commit), and against ours with
//   journalSmallSyncWrites: false (the row only, durable by the WAL's fsync: the previous path).
// - 100 KiB: ours against a plain append of the same record bytes plus one fdatasync on the
//   thread pool per write (the physical floor).
// - The syncs per durable write (syncStats: fsyncs + fdatasyncs per sync write, directories of
//   new segment files included).
// Run alone: `node bench/durable.mjs` (BENCH_RUNS pairs, default 7).
import { closeSync, fdatasync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { encodeRecord } from '@tspaxos/crc-wasm';
import { SqliteLogStore } from '../dist/sqlite.js';
import { RUNS, median, report } from '../../../scripts/bench-harness.mjs';

/** A record as both benches write it (promise and acceptance 1, checksum from the id). */
export const record = (id, value) => ({
  instanceId: id,
  promiseId: 1,
  promiseNodeId: 1,
  acceptedId: 1,
  acceptedNodeId: 1,
  value,
  checksum: id % 2 ** 32,
});

function withDir(fn) {
  const dir = mkdtempSync(join(tmpdir(), 'tspaxos-durable-'));
  return Promise.resolve(fn(dir)).finally(() => rmSync(dir, { recursive: true, force: true }));
}

/** records/s of `count` awaited sync puts, and the syncs each cost. */
function ours(value, count, options = {}) {
  return withDir(async (dir) => {
    const store = SqliteLogStore.open(dir, options);
    await store.put(0, record(0, value), { sync: true }); // the segment file and its directories
    const before = { ...store.syncStats };
    const t0 = performance.now();
    for (let id = 1; id <= count; id++) await store.put(0, record(id, value), { sync: true });
    const rate = count / ((performance.now() - t0) / 1000);
    const s = store.syncStats;
    const syncs = (s.fsyncs - before.fsyncs + s.fdatasyncs - before.fdatasyncs) / count;
    await store.close();
    return { rate, syncs };
  });
}

function rawFull(encoded, count) {
  return withDir((dir) => {
    const db = new Database(join(dir, 'raw.sqlite'));
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
    const insert = db.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
    insert.run(0, encoded);
    const t0 = performance.now();
    for (let id = 1; id <= count; id++) insert.run(id, encoded);
    const rate = count / ((performance.now() - t0) / 1000);
    db.close();
    return { rate };
  });
}

function plainAppend(encoded, count) {
  return withDir(async (dir) => {
    const fd = openSync(join(dir, 'plain.bin'), 'w');
    const t0 = performance.now();
    for (let i = 0; i < count; i++) {
      writeSync(fd, encoded, 0, encoded.length, i * encoded.length);
      await new Promise((resolve, reject) => fdatasync(fd, (e) => (e ? reject(e) : resolve())));
    }
    const rate = count / ((performance.now() - t0) / 1000);
    closeSync(fd);
    return { rate };
  });
}

/** Interleaved pairs: medians of ours, of the baseline and of the per-pair ratios. */
async function paired(a, b, runs) {
  const xs = [];
  const ys = [];
  for (let r = 0; r < runs; r++) {
    xs.push(await a());
    ys.push(await b());
  }
  return {
    ours: median(xs.map((x) => x.rate)),
    base: median(ys.map((y) => y.rate)),
    ratio: median(xs.map((x, i) => x.rate / ys[i].rate)),
    syncs: median(xs.map((x) => x.syncs ?? 0)),
  };
}

export async function durableRows(runs = RUNS) {
  const rows = [];
  const small = randomBytes(100);
  const smallEncoded = Buffer.from(encodeRecord(record(0, small)));
  const vsRaw = await paired(
    () => ours(small, 300),
    () => rawFull(smallEncoded, 300),
    runs,
  );
  rows.push({
    name: 'durable put 100 B, 1 writer',
    value: vsRaw.ours,
    unit: 'records/s',
    ratio: vsRaw.ratio,
    baseline: 'raw better-sqlite3, synchronous=FULL',
  });
  rows.push({ name: 'durable put 100 B: syncs per write', value: vsRaw.syncs, unit: 'calls' });
  const vsRows = await paired(
    () => ours(small, 300),
    () => ours(small, 300, { journalSmallSyncWrites: false }),
    runs,
  );
  rows.push({
    name: 'durable put 100 B, entry + fdatasync',
    value: vsRows.ours,
    unit: 'records/s',
    ratio: vsRows.ratio,
    baseline: 'ours, row only + WAL fsync',
  });
  const large = randomBytes(100 * 1024);
  const largeEncoded = Buffer.from(encodeRecord(record(0, large)));
  const vsPlain = await paired(
    () => ours(large, 200),
    () => plainAppend(largeEncoded, 200),
    runs,
  );
  rows.push({
    name: 'durable put 100 KiB, 1 writer',
    value: vsPlain.ours,
    unit: 'records/s',
    ratio: vsPlain.ratio,
    baseline: 'plain append + fdatasync per write',
  });
  rows.push({ name: 'durable put 100 KiB: syncs per write', value: vsPlain.syncs, unit: 'calls' });
  for (const r of rows)
    console.error(`${r.name}: ${r.value.toFixed(2)} ${r.ratio?.toFixed(2) ?? ''}`);
  return rows;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  report('storage-durable', await durableRows());
}
