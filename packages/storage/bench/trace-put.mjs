// Where the time of one durable put goes (issue 22): one writer awaiting each 100 B `sync: true`
// put, every step stamped through the store's injected ports, against the raw floor (a 100 B
// pwrite + fdatasync on libuv's pool) measured in the same run, interleaved.
// Steps of one put (ms, median and p90 over the puts, and the sum over all puts):
// - call → append: argument checks, encoding (the put's synchronous work before its segment write)
// - append: the segment's pwritev
// - append → put returns: the SQLite index commit (and any inline WAL checkpoint it runs)
// - returns → fdatasync issued: the microtask hop that starts the round
// - fdatasync issued → done: the pool thread's wait, the fdatasync and the hop back (an
//   fdatasyncSync of the same size is timed beside it to split the syscall from the hops)
// - fdatasync done → caller resumes: the acknowledgement's hops
// Event-loop work between puts (WAL checkpoints on the store's connection, their fdatasyncs) is
// timed by wrapping the connection's pragma(): `wal_checkpoint` on the event loop, summed.
// Run: `node bench/trace-put.mjs [puts]` (BENCH_RUNS pairs of ours and the floor, default 7).
import {
  closeSync,
  fdatasync,
  fdatasyncSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeSync,
  writevSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
// TRACE_DIST: another build's dist (before/after comparisons).
const { SqliteLogStore } = await import(process.env.TRACE_DIST ?? '../dist/sqlite.js');
import { RUNS, median } from '../../../scripts/bench-harness.mjs';
import { record } from './durable.mjs';

const PUTS = Number(process.argv[2] ?? 2000);
const now = () => performance.now();
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
};

async function ours(value, options = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tspaxos-trace-'));
  let stamps;
  const store = SqliteLogStore.open(dir, {
    ...options,
    writeSegment: (fd, buffers, position) => {
      stamps.appendStart ??= now();
      let total = 0;
      for (const b of buffers) total += b.length;
      if (writevSync(fd, buffers, position) !== total) throw new Error('short segment write');
      stamps.appendEnd = now();
    },
    fdatasync: (fd, cb) => {
      stamps.syncStart ??= now();
      fdatasync(fd, (err) => {
        stamps.syncEnd ??= now();
        cb(err);
      });
    },
  });
  let checkpointMs = 0;
  const db = store.db; // the trace reaches into the store: it times SQLite's checkpoints
  const pragma = db.pragma.bind(db);
  db.pragma = (source, o) => {
    if (!String(source).startsWith('wal_checkpoint')) return pragma(source, o);
    const t = now();
    try {
      return pragma(source, o);
    } finally {
      checkpointMs += now() - t;
    }
  };
  stamps = {};
  await store.put(0, record(0, value), { sync: true });
  const steps = { check: [], append: [], index: [], hop: [], sync: [], ack: [], total: [] };
  const before = { ...store.syncStats };
  const cpu0 = process.cpuUsage();
  const t0 = now();
  for (let id = 1; id <= PUTS; id++) {
    stamps = {};
    const call = now();
    const p = store.put(0, record(id, value), { sync: true });
    const returned = now();
    await p;
    const resumed = now();
    const s = stamps;
    steps.check.push(s.appendStart - call);
    steps.append.push(s.appendEnd - s.appendStart);
    steps.index.push(returned - s.appendEnd);
    steps.hop.push(s.syncStart - returned);
    steps.sync.push(s.syncEnd - s.syncStart);
    steps.ack.push(resumed - s.syncEnd);
    steps.total.push(resumed - call);
  }
  const wall = now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const st = store.syncStats;
  const out = {
    steps,
    wall,
    cpuUsPerPut: (cpu.user + cpu.system) / PUTS,
    checkpointMs,
    walCheckpoints: st.walCheckpoints - before.walCheckpoints,
    inlineWalCheckpoints: st.inlineWalCheckpoints - before.inlineWalCheckpoints,
    fdatasyncsPerPut: (st.fdatasyncs - before.fdatasyncs) / PUTS,
    fsyncsPerPut: (st.fsyncs - before.fsyncs) / PUTS,
  };
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return out;
}

/** The floor: a pwrite + fdatasync on the pool per put; and the same fdatasync done inline. */
async function floor(bytes) {
  const dir = mkdtempSync(join(tmpdir(), 'tspaxos-trace-floor-'));
  const fd = openSync(join(dir, 'plain.bin'), 'w');
  // Room written ahead and synced, as a segment grows ahead of its appends: an fdatasync then
  // flushes the data only, not the file's size.
  writeSync(fd, Buffer.alloc(PUTS * bytes.length));
  fdatasyncSync(fd);
  const pool = [];
  const inline = [];
  for (let i = 0; i < PUTS; i++) {
    const t = now();
    writeSync(fd, bytes, 0, bytes.length, i * bytes.length);
    if (i % 2 === 0) {
      await new Promise((resolve, reject) => fdatasync(fd, (e) => (e ? reject(e) : resolve())));
      pool.push(now() - t);
    } else {
      fdatasyncSync(fd);
      inline.push(now() - t);
    }
  }
  closeSync(fd);
  rmSync(dir, { recursive: true, force: true });
  return { pool, inline };
}

const value = randomBytes(100);
const runs = [];
for (let r = 0; r < RUNS; r++) {
  const o = await ours(value);
  const f = await floor(Buffer.alloc(150, 1));
  runs.push({ o, f });
}
const m = (fn) => median(runs.map(fn));
const fmt = (x) => x.toFixed(3);
console.log(`one 100 B sync put, ${PUTS} puts × ${RUNS} runs (medians of the runs' figures), ms`);
console.log('step | p50 | p90 | mean');
for (const k of ['check', 'append', 'index', 'hop', 'sync', 'ack', 'total']) {
  const xs = (r) => r.o.steps[k];
  console.log(
    `${k} | ${fmt(m((r) => pct(xs(r), 0.5)))} | ${fmt(m((r) => pct(xs(r), 0.9)))} | ${fmt(
      m((r) => xs(r).reduce((a, b) => a + b, 0) / PUTS),
    )}`,
  );
}
console.log(`wall per put | ${fmt(m((r) => r.o.wall / PUTS))}`);
console.log(`inline wal_checkpoint time per put | ${fmt(m((r) => r.o.checkpointMs / PUTS))}`);
console.log(
  `checkpoints per 1000 puts: all ${fmt(m((r) => (1000 * r.o.walCheckpoints) / PUTS))}, on the event loop ${fmt(m((r) => (1000 * r.o.inlineWalCheckpoints) / PUTS))}`,
);
console.log(
  `fdatasyncs / fsyncs per put | ${fmt(m((r) => r.o.fdatasyncsPerPut))} / ${fmt(m((r) => r.o.fsyncsPerPut))}`,
);
console.log(`CPU per put (µs) | ${m((r) => r.o.cpuUsPerPut).toFixed(1)}`);
console.log(
  `floor: write + fdatasync on the pool p50 ${fmt(m((r) => pct(r.f.pool, 0.5)))} p90 ${fmt(m((r) => pct(r.f.pool, 0.9)))}; inline p50 ${fmt(m((r) => pct(r.f.inline, 0.5)))}`,
);
console.log(
  `ratio total p50 / floor pool p50 | ${fmt(m((r) => pct(r.o.steps.total, 0.5) / pct(r.f.pool, 0.5)))}; wall ratio (mean) ${fmt(m((r) => r.o.wall / PUTS / (r.f.pool.reduce((a, b) => a + b, 0) / r.f.pool.length)))}`,
);
