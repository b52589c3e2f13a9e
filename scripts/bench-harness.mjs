// Shared benchmark harness: every package's bench/ uses it, so every figure is measured the same
// way: warm up, then repeat a timed batch `runs` times and keep the median (the machines are
// shared and noisy; a single run means nothing). Results are printed as a table with the ratio to
// the baseline measured in the same run, and written as JSON under bench-results/.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { envInteger } from './env.mjs';

export { envInteger };

export const RUNS = envInteger('BENCH_RUNS', 7, { min: 1 });
const MIN_BATCH_MS = envInteger('BENCH_MIN_MS', 150, { min: 1 });

export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * Median operations per second of `fn` (called with the iteration index). The batch size is
 * calibrated so one batch takes at least MIN_BATCH_MS.
 */
export function opsPerSec(fn, { runs = RUNS } = {}) {
  let batch = 1;
  for (;;) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) fn(i);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (ms >= MIN_BATCH_MS / 4) {
      batch = Math.max(1, Math.ceil((batch * MIN_BATCH_MS) / Math.max(ms, 0.001)));
      break;
    }
    batch *= 4;
  }
  const rates = [];
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) fn(i);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    rates.push(batch / s);
  }
  return median(rates);
}

/** Median of `runs` results of an async measurement returning a rate. */
export async function medianOf(measure, { runs = RUNS } = {}) {
  const rates = [];
  for (let r = 0; r < runs; r++) rates.push(await measure(r));
  return median(rates);
}

export function machine() {
  const c = cpus();
  return {
    cpu: c[0]?.model ?? 'unknown',
    cores: c.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    date: new Date().toISOString(),
    commit: commitOfTree(),
  };
}

/** The commit the figures are taken at (with "+dirty" when the tree has changes). */
function commitOfTree() {
  const git = (...args) =>
    execFileSync('git', args, { cwd: dirname(fileURLToPath(import.meta.url)), encoding: 'utf8' });
  try {
    const head = git('rev-parse', '--short', 'HEAD').trim();
    return git('status', '--porcelain', '--untracked-files=no').trim() === ''
      ? head
      : `${head}+dirty`;
  } catch (error) {
    return `unknown (git: ${error.message.split('\n')[0]})`;
  }
}

export function fmt(n, digits = 3) {
  if (n >= 1e9) return `${(n / 1e9).toPrecision(digits)} G`;
  if (n >= 1e6) return `${(n / 1e6).toPrecision(digits)} M`;
  if (n >= 1e3) return `${(n / 1e3).toPrecision(digits)} k`;
  return n.toPrecision(digits);
}

/** Prints rows ({ name, value, unit, ratio, baseline }) and writes bench-results/<suite>.json. */
export function report(suite, rows, extra = {}) {
  console.log(`\n## ${suite} (median of ${RUNS} runs)`);
  const width = Math.max(...rows.map((r) => r.name.length), 10);
  for (const r of rows) {
    const ratio =
      r.ratio === undefined ? '' : `  ${r.ratio.toFixed(2)}× ${r.baseline ?? 'baseline'}`;
    console.log(`${r.name.padEnd(width)}  ${fmt(r.value).padStart(9)} ${r.unit}${ratio}`);
  }
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const dir = join(root, 'bench-results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${suite}.json`);
  writeFileSync(
    file,
    JSON.stringify({ suite, runs: RUNS, machine: machine(), rows, ...extra }, null, 2) + '\n',
  );
  console.log(`(written to ${file})`);
}
