// Event-loop stalls of a sync:false stream (the learner's catch-up writes): 200,000 puts of
// 100 B values in batches of 2,048, the writer letting the event loop turn after each batch (as
// the learner does). Measured: the longest event-loop delay and its p99 (perf_hooks
// monitorEventLoopDelay, 1 ms resolution), the longest single putMany call, the stream's
// records/s, and the checkpoints (how many ran on the event loop). Ours (checkpoints on the
// worker thread) against the same store with walCheckpointIn 'inline' (the checkpoint on the event
// loop, as before the worker), interleaved A/B in the same run; ratios are medians of the
// per-pair ratios. Run alone: `node bench/stall.mjs [records]` (BENCH_RUNS pairs, default 7).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { SqliteLogStore } from '../dist/sqlite.js';
import { RUNS, median } from '../../../scripts/bench-harness.mjs';

const DEFAULT_RECORDS = 200_000;
const BATCH = 2_048;
const VALUE_BYTES = 100;

async function stream(walCheckpointIn, RECORDS) {
  const dir = mkdtempSync(join(tmpdir(), 'tspaxos-stall-'));
  const value = randomBytes(VALUE_BYTES);
  const store = SqliteLogStore.open(dir, { walCheckpointIn });
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  let longestCall = 0;
  histogram.enable();
  const t0 = performance.now();
  for (let id = 0; id < RECORDS; id += BATCH) {
    const n = Math.min(BATCH, RECORDS - id);
    const records = Array.from({ length: n }, (_, k) => ({
      instanceId: id + k,
      promiseId: 1,
      promiseNodeId: 1,
      acceptedId: 1,
      acceptedNodeId: 1,
      value,
      checksum: 7,
    }));
    const c0 = performance.now();
    const p = store.putMany(0, records, { sync: false });
    longestCall = Math.max(longestCall, performance.now() - c0);
    await p;
    await new Promise((resolve) => setImmediate(resolve));
  }
  const rate = RECORDS / ((performance.now() - t0) / 1000);
  histogram.disable();
  const stats = { ...store.syncStats };
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    rate,
    maxMs: histogram.max / 1e6,
    p99Ms: histogram.percentile(99) / 1e6,
    longestCall,
    checkpoints: stats.walCheckpoints,
    inline: stats.inlineWalCheckpoints,
  };
}

/** Interleaved pairs (worker, inline); returns bench rows. */
export async function stallRows(runs = RUNS, RECORDS = DEFAULT_RECORDS) {
  const a = [];
  const b = [];
  await stream('worker', RECORDS); // warm-up (worker start, JIT)
  for (let r = 0; r < runs; r++) {
    a.push(await stream('worker', RECORDS));
    b.push(await stream('inline', RECORDS));
    console.error(
      `stall pair ${r}: worker ${JSON.stringify(a.at(-1))} inline ${JSON.stringify(b.at(-1))}`,
    );
  }
  const m = (xs, k) => median(xs.map((x) => x[k]));
  const ratio = (k) => median(a.map((x, i) => x[k] / b[i][k]));
  const name = `sync:false stream, ${RECORDS} × ${VALUE_BYTES} B in batches of ${BATCH}`;
  const baseline = 'checkpoint inline (on the event loop)';
  return [
    {
      name: `${name}: records/s`,
      value: m(a, 'rate'),
      unit: 'records/s',
      ratio: ratio('rate'),
      baseline,
    },
    {
      name: `${name}: longest event-loop delay`,
      value: m(a, 'maxMs'),
      unit: 'ms',
      ratio: ratio('maxMs'),
      baseline,
    },
    {
      name: `${name}: p99 event-loop delay`,
      value: m(a, 'p99Ms'),
      unit: 'ms',
      ratio: ratio('p99Ms'),
      baseline,
    },
    {
      name: `${name}: longest putMany call`,
      value: m(a, 'longestCall'),
      unit: 'ms',
      ratio: ratio('longestCall'),
      baseline,
    },
    { name: `${name}: checkpoints on the event loop`, value: m(a, 'inline'), unit: 'count' },
    { name: `${name}, inline: records/s`, value: m(b, 'rate'), unit: 'records/s' },
    { name: `${name}, inline: longest event-loop delay`, value: m(b, 'maxMs'), unit: 'ms' },
    { name: `${name}, inline: p99 event-loop delay`, value: m(b, 'p99Ms'), unit: 'ms' },
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // `node bench/stall.mjs [records]`: another stream length (default 200,000).
  const records = process.argv[2] === undefined ? DEFAULT_RECORDS : Number(process.argv[2]);
  if (!Number.isSafeInteger(records) || records < BATCH)
    throw new Error(`bad record count ${process.argv[2]}`);
  for (const row of await stallRows(RUNS, records)) console.log(JSON.stringify(row));
}
