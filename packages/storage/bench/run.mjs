// @tspaxos/storage benchmark (`npm run bench`): durable single puts (bench/durable.mjs); records/s and MB/s writing 100 B and 100 KiB
// values one per transaction and in batches of 100 and 1,000, sync true and false; range reads;
// the group commit; the cost of one deleteBelow step and of the longest single write call; the
// out-of-line threshold; by strace, the fsyncs of a sync:false catch-up; and the event-loop stalls
// of a sync:false stream (checkpoints on the worker thread against inline: bench/stall.mjs).
//
// Baselines, measured in the same run and interleaved with ours (ours, baseline, ours, …; each
// ratio is the median of the per-pair ratios):
// - 100 B values (kept inline in SQLite): raw better-sqlite3 inserting the same bytes (the
//   encoded records, encoded once up front) into a bare (id INTEGER PRIMARY KEY, v BLOB) table
//   with the same pragmas: locking_mode=EXCLUSIVE, journal_mode=WAL, and synchronous=NORMAL for
//   sync:false or FULL for sync:true (an fsync per commit: the durability our sync:true gives).
// - 100 KiB values (out of line, in segment files): the physical floor, a plain file append of
//   the same bytes (one pwrite per record, at the end of one file), plus for sync:true one
//   fdatasync per batch on the thread pool (as ours runs its syncs); range reads against plain
//   preads of the same bytes into fresh buffers plus the same CRC-32 check.
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  fdatasync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeSync,
  writevSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { crc32, encodeRecord } from '@tspaxos/crc-wasm';
import { SqliteLogStore } from '../dist/sqlite.js';
import { fileURLToPath } from 'node:url';
import { RUNS, median, medianOf, report } from '../../../scripts/bench-harness.mjs';
import { durableRows, record } from './durable.mjs';
import { stallRows } from './stall.mjs';

const dirs = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'tspaxos-bench-'));
  dirs.push(d);
  return d;
};
const cleanup = () => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
};
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

// Durable single writes against raw better-sqlite3 (FULL) and a plain append + fdatasync
// (bench/durable.mjs).
const rows = [...(await durableRows())];
const MB = 1e6;
const BASELINE = 'raw better-sqlite3';
const PLAIN = 'plain file append';
const PLAIN_SYNC = 'plain append + fdatasync per batch';
const PLAIN_READ = 'plain pread + crc32';

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
      // The physical floor for large values: append the same bytes to a plain file, and for
      // sync:true one fdatasync per batch, on the thread pool as ours.
      const plain = async () => {
        const fd = openSync(join(tmp(), 'plain.bin'), 'w');
        const t0 = performance.now();
        let position = 0;
        for (let id = 0; id < total; id += batch) {
          for (let k = 0; k < batch; k++) {
            writeSync(fd, encoded, 0, encoded.length, position);
            position += encoded.length;
          }
          if (sync)
            await new Promise((resolve, reject) =>
              fdatasync(fd, (e) => (e ? reject(e) : resolve())),
            );
        }
        const rate = total / seconds(t0);
        closeSync(fd);
        return rate;
      };
      const baseline = big ? (sync ? PLAIN_SYNC : PLAIN) : BASELINE;
      const m = await paired(ours, big ? plain : raw);
      const name = `write ${label}, batch ${batch}, sync ${sync}`;
      rows.push({ name, value: m.ours, unit: 'records/s', ratio: m.ratio, baseline });
      rows.push({ name: `${name} (MB/s)`, value: (m.ours * encoded.length) / MB, unit: 'MB/s' });
      console.error(`${name}: ${m.ours.toFixed(0)}/s vs ${baseline} ${m.raw.toFixed(0)}/s`);
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
  // Large values: the same bytes in a plain file, read back one pread per value into a fresh
  // buffer (as ours), each CRC-checked.
  const plainFile = join(tmp(), 'plain.bin');
  const plainFd = openSync(plainFile, 'w+');
  for (let i = 0; i < n; i++) writeSync(plainFd, value, 0, size, i * size);
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
    if (big) {
      for (let i = 0; i < n; i++) {
        const buffer = Buffer.allocUnsafeSlow(size);
        readSync(plainFd, buffer, 0, size, i * size);
        k += crc32(buffer) !== 1 ? 1 : 0;
      }
    } else {
      for (const row of select.iterate(0, n)) k += row[1].length === encoded.length ? 1 : 0;
    }
    rawReads.push(k / seconds(t0));
    if (big) continue;
    // The same raw read plus the CRC check every record of ours gets (same crc32 dispatch):
    // what an integrity-checked read can reach, so the ratio to it shows what the check costs.
    t0 = performance.now();
    k = 0;
    for (const row of select.iterate(0, n)) k += crc32(row[1]) !== 1 ? 1 : 0;
    rawCrcReads.push(k / seconds(t0));
  }
  closeSync(plainFd);
  const ratio = median(reads.map((x, i) => x / rawReads[i]));
  const name = `range read ${label}`;
  rows.push({
    name,
    value: median(reads),
    unit: 'records/s',
    ratio,
    baseline: big ? PLAIN_READ : BASELINE,
  });
  rows.push({ name: `${name} (MB/s)`, value: (median(reads) * encoded.length) / MB, unit: 'MB/s' });
  if (!big)
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
  // 20 MB, by a caller that never lets setImmediate run (so the checkpoints come inside writes,
  // at twice walCheckpointMaxPages: the worst case).
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
  // The same with a caller that lets the event loop turn after each put (as a node does): the
  // longest turn, the put and whatever ran before the next setImmediate (checkpoints included).
  const turn = await medianOf(async () => {
    const s = SqliteLogStore.open(tmp());
    let worst = 0;
    const count = Math.ceil(20e6 / encoded.length);
    for (let id = 0; id < count; id++) {
      const t0 = performance.now();
      await s.put(0, record(id, value), { sync: false });
      await new Promise((resolve) => setImmediate(resolve));
      worst = Math.max(worst, performance.now() - t0);
    }
    await s.close();
    cleanup();
    return worst;
  });
  rows.push({
    name: `longest event-loop turn, ${label}, 20 MB written by a yielding caller`,
    value: turn,
    unit: 'ms',
  });
}

// Group commit: 64 concurrent sync writers against the same 64 writes one after another; and
// what one burst of 64 costs (load-independent): appends (pwritev) and fdatasyncs, CPU time.
{
  const value = randomBytes(100);
  const rounds = 20;
  const perBurst = [];
  const concurrent = await medianOf(async () => {
    let appends = 0;
    const store = SqliteLogStore.open(tmp(), {
      writeSegment: (fd, buffers, position) => {
        appends++;
        // One pwritev, as the store's own append (a short one would be finished there).
        let total = 0;
        for (const b of buffers) total += b.length;
        if (writevSync(fd, buffers, position) !== total) throw new Error('short segment write');
      },
    });
    const before = { ...store.syncStats };
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let r = 0; r < rounds; r++) {
      const writes = Array.from({ length: 64 }, (_, k) =>
        store.put(0, record(r * 64 + k, value), { sync: true }),
      );
      await Promise.all(writes);
    }
    const rate = (rounds * 64) / seconds(t0);
    const cpu = process.cpuUsage(cpu0);
    perBurst.push({
      appends: appends / rounds,
      fdatasyncs: (store.syncStats.fdatasyncs - before.fdatasyncs) / rounds,
      cpuUs: (cpu.user + cpu.system) / (rounds * 64),
    });
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
  for (const [key, name, unit] of [
    ['appends', 'group commit: segment appends per burst of 64', 'calls'],
    ['fdatasyncs', 'group commit: fdatasyncs per burst of 64', 'calls'],
    ['cpuUs', 'group commit: CPU per put (process, user + system)', 'us'],
  ])
    rows.push({ name, value: median(perBurst.map((x) => x[key])), unit });
}

// The out-of-line threshold: values of 1–64 KiB written in batches of 100 (sync:false) and read
// back with range(), kept inline in SQLite against out of line in a segment, interleaved.
for (const kib of [1, 2, 3, 4, 16, 64]) {
  const size = kib * 1024;
  const value = randomBytes(size);
  const total = Math.max(200, Math.round(40e6 / size / 100) * 100);
  const measure = async (outOfLine) => {
    const store = SqliteLogStore.open(tmp(), { outOfLineValueBytes: outOfLine ? size - 1 : size });
    let t0 = performance.now();
    for (let id = 0; id < total; id += 100) {
      const records = Array.from({ length: 100 }, (_, k) => record(id + k, value));
      await store.putMany(0, records, { sync: false });
    }
    const write = total / seconds(t0);
    t0 = performance.now();
    let k = 0;
    for (const rec of store.range(0, 0, total)) k += rec.value.length === size ? 1 : 0;
    const read = k / seconds(t0);
    await store.close();
    cleanup();
    return { write, read };
  };
  const out = [];
  const inline = [];
  for (let r = 0; r < RUNS; r++) {
    out.push(await measure(true));
    inline.push(await measure(false));
  }
  for (const what of ['write', 'read']) {
    const ours = out.map((x) => x[what]);
    rows.push({
      name: `${what} ${kib} KiB out of line (MB/s)`,
      value: (median(ours) * size) / MB,
      unit: 'MB/s',
      ratio: median(ours.map((x, i) => x / inline[i][what])),
      baseline: 'the same values inline in SQLite',
    });
  }
  console.error(`threshold ${kib} KiB measured`);
}

// fsyncs of a catch-up, counted by strace: a child writes 2,000 values of 100 KiB with putMany
// (batches of 100, sync:false, as the learner does) and exits; only the syscalls between two
// markers it prints after the open and after the last write are counted.
{
  const probe = spawnSync('strace', ['-V'], { encoding: 'utf8' });
  if (probe.status === 0) {
    const dist = new URL('../dist/sqlite.js', import.meta.url).href;
    const child = `
      import { SqliteLogStore } from ${JSON.stringify(dist)};
      import { randomBytes } from 'node:crypto';
      const store = SqliteLogStore.open(process.argv[1]);
      const value = randomBytes(100 * 1024);
      const r = (id) => ({ instanceId: id, promiseId: 1, promiseNodeId: 1, acceptedId: 1,
        acceptedNodeId: 1, value, checksum: 0 });
      process.stderr.write('catch-up start\\n');
      for (let id = 0; id < 2000; id += 100)
        await store.putMany(0, Array.from({ length: 100 }, (_, k) => r(id + k)), { sync: false });
      await new Promise((resolve) => setTimeout(resolve, 50)); // any checkpoint would run here
      process.stderr.write('catch-up end\\n');
      process.exit(0);`;
    const log = join(tmp(), 'strace.log');
    const run = spawnSync(
      'strace',
      [
        '-f',
        '-o',
        log,
        '-e',
        'trace=fsync,fdatasync,pwritev,pwritev2,pwrite64,write',
        process.execPath,
        '--input-type=module',
        '-e',
        child,
        tmp(),
      ],
      { encoding: 'utf8', cwd: fileURLToPath(new URL('.', import.meta.url)) },
    );
    if (run.status !== 0) throw new Error(`strace run failed: ${run.stderr}`);
    const lines = readFileSync(log, 'utf8').split('\n');
    const from = lines.findIndex((l) => l.includes('catch-up start'));
    const to = lines.findIndex((l) => l.includes('catch-up end'));
    if (from < 0 || to < 0) throw new Error('strace log lacks the markers');
    const between = lines.slice(from, to);
    const count = (re) => between.filter((l) => re.test(l)).length;
    const syncs = count(/\b(fsync|fdatasync)\(/);
    const appends = count(/\bpwritev2?\(/);
    if (appends === 0) throw new Error('strace saw no segment appends: the count means nothing');
    rows.push({
      name: 'fsync + fdatasync calls, catch-up of 2,000 × 100 KiB sync:false (strace)',
      value: syncs,
      unit: 'calls',
    });
    rows.push({
      name: 'segment appends (pwritev) in that catch-up (strace)',
      value: appends,
      unit: 'calls',
    });
    console.error(`strace: ${syncs} fsync/fdatasync, ${appends} pwritev`);
  } else {
    console.error('strace not found: the catch-up fsync count is not measured');
  }
}

// Event-loop stalls of the learner's sync:false stream: checkpoints on the worker thread against
// the same store checkpointing on the event loop, interleaved (bench/stall.mjs).
rows.push(...(await stallRows()));

report('storage', rows);
cleanup();
