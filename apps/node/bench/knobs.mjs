// The environment knobs of the node bench (each declared in turbo.json). BENCH_QUICK=1 is the
// development mode: short cells, fewer keys and writes, one run; any knob set explicitly wins.
import { envInteger, RUNS } from '../../../scripts/bench-harness.mjs';

export const QUICK = envInteger('BENCH_QUICK', 0, { max: 1 }) === 1;
/** Length of one measured cell. */
export const MS = envInteger('BENCH_NODE_MS', QUICK ? 1000 : 3000, { min: 100 });
/**
 * Untimed load on each fresh cluster of the side-by-side run, both servers alike: after the keys
 * are written, WARMUP_MS of 64 clients writing round-robin over the 3 nodes (every node's HTTP,
 * forwarding and apply paths), and before each cell's timed window up to CELL_WARMUP_MS of the
 * cell's own load. A fresh Node process under load on 2 cores needs ~10 s to reach its steady
 * state: its first seconds run at up to 3× the CPU per request (BENCHMARKS.md, "Warm-up"). 0: none.
 */
export const WARMUP_MS = envInteger('BENCH_NODE_WARMUP_MS', QUICK ? 1000 : 10_000, { min: 0 });
export const CELL_WARMUP_MS = Math.min(WARMUP_MS, 2000);
/** Writes a stopped node misses before it is restarted and timed until caught up. */
export const CATCH_UP_WRITES = envInteger('BENCH_NODE_CATCHUP_WRITES', QUICK ? 2000 : 20_000, {
  min: 1,
});
/** Keys the side-by-side cells write and read (100 B values). */
export const KEYS = envInteger('BENCH_NODE_KEYS', QUICK ? 2000 : 10_000, { min: 1 });
/** Runs of the side-by-side cells (each on fresh clusters): BENCH_RUNS, else 3 (quick: 1). */
export const ETCD_RUNS = (process.env.BENCH_RUNS ?? '').trim() !== '' ? RUNS : QUICK ? 1 : 3;
/** Repetitions of the older parts' cells (median taken). */
export const PART_RUNS = QUICK ? 1 : Math.min(RUNS, 3);
/**
 * The side-by-side cells to run (comma list of ids: w1, w16, w64, spread, linread, linbarrier,
 * leaseread, w64k, rss, catchup, kill); unset: all. `catchup` alone times a restart on a log of
 * KEYS writes only (the full run's log also holds every cell's writes before it).
 */
export const ETCD_CELLS =
  (process.env.BENCH_NODE_ETCD_CELLS ?? '').trim() === ''
    ? undefined
    : new Set(process.env.BENCH_NODE_ETCD_CELLS.split(',').map((s) => s.trim()));
/** BENCH_NODE_TIMELINE=1: print the restarted tspaxos node's start, from its log (issue 22). */
export const TIMELINE = envInteger('BENCH_NODE_TIMELINE', 0, { max: 1 }) === 1;
