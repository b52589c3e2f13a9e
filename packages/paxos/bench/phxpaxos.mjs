// tspaxos against PhxPaxos itself, like for like (issue 22): batchPropose against PhxPaxos's
// BatchPropose at the same callers, value sizes and values per instance, and propose() of
// 100 KiB (and 100 B) values with 100 callers and 2 of 3 nodes up. Each cell is 3 processes on
// loopback per system, fsync on, node 1 proposing; the two systems run alternately, cell by cell,
// in the same run (the order flips every repetition), and each cell reports values/s,
// instances/s, values per instance, latency, CPU ms per instance (the three processes together:
// on a loaded machine the figure that moves least) and the ratio tspaxos / PhxPaxos of the
// medians.
//
// PhxPaxos runs through a bench binary built outside this repository from PhxPaxos's sources
// (README.md of this package, "Benchmark against PhxPaxos"): set PHXPAXOS_BENCH to its path.
// Without it only tspaxos is measured and the script says so.
//
// The propose cells (one value per instance) also time the physical floor of that chain in the
// same run, interleaved (chain-baseline.mjs: a value sent over TCP to one follower, both append
// and fdatasync it, the follower replies; one value in flight), once with the fdatasync on
// libuv's pool as tspaxos does and once inline as PhxPaxos does, and print tspaxos ÷ that and
// PhxPaxos ÷ that.
//
// Knobs: BENCH_RUNS (repetitions, median; default 3), BENCH_PHX_MS (measured ms per cell,
// default 5000), BENCH_PHX_CELLS (comma-separated cell ids, default all), BENCH_PHX_PROF (a
// directory: tspaxos's node processes write --cpu-prof profiles there), BENCH_PHX_SYNC_INLINE=1
// (tspaxos's stores are opened with syncInline: a round's one fdatasync on the event loop).
import { execFile, fork, spawn } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

process.env.BENCH_RUNS ||= '3';
const { envInteger, median, report, RUNS } = await import('../../../scripts/bench-harness.mjs');

const MS = envInteger('BENCH_PHX_MS', 5000, { min: 100 });
const WARMUP_MS = 1000;
const PROF = process.env.BENCH_PHX_PROF || undefined;
const STORE_OPTIONS = process.env.BENCH_PHX_SYNC_INLINE === '1' ? { syncInline: true } : {};
const KIB100 = 100 * 1024;
/** PhxPaxos packs a batch until it holds 500 KiB (propose_batch.cpp m_iBatchMaxSize, no setter). */
const PHX_BATCH_MAX_BYTES = 500 * 1024;

const BIN = process.env.PHXPAXOS_BENCH || undefined;
if (BIN === undefined) {
  console.log(
    'PhxPaxos: skipped (PHXPAXOS_BENCH is not set; packages/paxos/README.md, "Benchmark against PhxPaxos", says how to build the binary). Measuring tspaxos only.',
  );
} else {
  try {
    accessSync(BIN, constants.X_OK);
  } catch (error) {
    throw new Error(`PHXPAXOS_BENCH=${BIN} is not an executable file: ${error.message}`);
  }
}

/**
 * The cells. `batch` = values per instance asked of both (PhxPaxos SetBatchCount, tspaxos
 * batchMaxValues); at 100 KiB both also stop a batch at 500 KiB, so 5 values per instance.
 */
const ALL_CELLS = [
  { id: 'b100x10', mode: 'batch', valueBytes: 100, batch: 10, callers: 100, nodesUp: 3 },
  { id: 'b100x50', mode: 'batch', valueBytes: 100, batch: 50, callers: 100, nodesUp: 3 },
  { id: 'b100kx10', mode: 'batch', valueBytes: KIB100, batch: 10, callers: 100, nodesUp: 3 },
  { id: 'p100k', mode: 'propose', valueBytes: KIB100, batch: 1, callers: 100, nodesUp: 2 },
  { id: 'p100', mode: 'propose', valueBytes: 100, batch: 1, callers: 100, nodesUp: 2 },
];
const wanted = (process.env.BENCH_PHX_CELLS || '').split(',').filter((s) => s !== '');
for (const w of wanted)
  if (!ALL_CELLS.some((c) => c.id === w))
    throw new Error(
      `BENCH_PHX_CELLS: unknown cell ${w} (known: ${ALL_CELLS.map((c) => c.id).join(', ')})`,
    );
const CELLS = wanted.length === 0 ? ALL_CELLS : ALL_CELLS.filter((c) => wanted.includes(c.id));

const size = (b) => (b >= 1024 ? `${b / 1024} KiB` : `${b} B`);
const label = (c) =>
  c.mode === 'batch'
    ? `batchPropose ${size(c.valueBytes)}, ≤${c.batch}/instance, ${c.callers} callers, 3 of 3 up`
    : `propose ${size(c.valueBytes)}, ${c.callers} callers, ${c.nodesUp} of 3 up`;

/** A port nobody listens on: the address of a node that is down. */
async function deadPort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

const request = async (child, msg, type) => {
  const reply = once(child, 'message');
  child.send(msg);
  const [m] = await reply;
  if (m.type !== type) throw new Error(`node answered ${m.type}, expected ${type}`);
  return m;
};

/** One tspaxos cell: node-proc.mjs processes, node 1 proposing; a warm-up run first. */
async function tspaxos(c) {
  const ids = c.nodesUp === 3 ? [1, 2, 3] : [1, 2];
  const children = ids.map((id) =>
    fork(new URL('./node-proc.mjs', import.meta.url), [String(id)], {
      stdio: 'inherit',
      execArgv: PROF ? ['--cpu-prof', `--cpu-prof-dir=${PROF}`] : [],
    }),
  );
  try {
    const ports = {};
    await Promise.all(
      children.map(async (ch, i) => (ports[ids[i]] = (await once(ch, 'message'))[0].port)),
    );
    if (c.nodesUp === 2) ports[3] = await deadPort();
    const options =
      c.mode === 'batch' && c.valueBytes === KIB100 ? { batchMaxBytes: PHX_BATCH_MAX_BYTES } : {};
    await Promise.all(
      children.map((ch) =>
        request(
          ch,
          {
            type: 'peers',
            peers: ports,
            batchMaxValues: c.batch,
            options,
            storeOptions: STORE_OPTIONS,
          },
          'started',
        ),
      ),
    );
    const run = { batch: c.mode === 'batch', concurrency: c.callers, valueBytes: c.valueBytes };
    await request(children[0], { type: 'run', ...run, ms: WARMUP_MS }, 'result');
    const peers = children.slice(1);
    const cpu = async () =>
      (await Promise.all(peers.map((ch) => request(ch, { type: 'cpu' }, 'cpu')))).reduce(
        (sum, m) => sum + m.cpuMs,
        0,
      );
    const peersBefore = await cpu();
    const r = await request(children[0], { type: 'run', ...run, ms: MS }, 'result');
    const cpuMsPeers = (await cpu()) - peersBefore;
    return {
      valuesPerSec: r.values,
      instancesPerSec: r.instances,
      valuesPerInstance: r.valuesPerInstance,
      p50Ms: r.p50Ms,
      p99Ms: r.p99Ms,
      cpuMsNode1: r.cpuMs,
      cpuMsPeers,
      cpuMsPerInstance: r.instanceCount === 0 ? 0 : (r.cpuMs + cpuMsPeers) / r.instanceCount,
      failures: r.failures,
    };
  } finally {
    for (const ch of children) if (ch.exitCode === null) ch.send({ type: 'stop' });
    await Promise.all(children.map((ch) => (ch.exitCode === null ? once(ch, 'exit') : null)));
  }
}

/** One PhxPaxos cell: the bench binary forks its peers and prints one JSON line. */
async function phxpaxos(c) {
  const dir = mkdtempSync(join(tmpdir(), 'phxpaxos-bench-'));
  try {
    const { stdout } = await promisify(execFile)(
      BIN,
      [
        ...['--mode', c.mode, '--callers', String(c.callers)],
        ...['--value-bytes', String(c.valueBytes), '--batch-count', String(c.batch)],
        ...['--seconds', String(MS / 1000), '--warmup-seconds', String(WARMUP_MS / 1000)],
        ...['--nodes-up', String(c.nodesUp), '--dir', dir],
      ],
      { timeout: MS + 120_000, maxBuffer: 1 << 20 },
    );
    const line = stdout.trim().split('\n').pop();
    return JSON.parse(line);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The first line `child` prints, parsed, and a promise of its last one at exit. */
function jsonLines(child) {
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const exited = once(child, 'close').then(([code]) => {
    if (code !== 0) throw new Error(`chain-baseline.mjs exited with ${code}`);
    return JSON.parse(out.trim().split('\n').pop());
  });
  const first = new Promise((resolve, reject) => {
    const look = () => {
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        child.stdout.off('data', look);
        resolve(JSON.parse(out.slice(0, nl)));
      }
    };
    child.stdout.on('data', look);
    exited.catch(reject);
  });
  return { first, exited };
}

/**
 * The physical floor of one value per instance (chain-baseline.mjs): a proposer and one follower
 * process, `sync` 'pool' (fs.fdatasync on libuv's pool, as tspaxos) or 'inline' (PhxPaxos).
 */
async function chain(c, sync) {
  const dir = mkdtempSync(join(tmpdir(), 'chain-baseline-'));
  const script = new URL('./chain-baseline.mjs', import.meta.url).pathname;
  const run = (args) =>
    spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const follower = run(['follower', dir, sync]);
    const f = jsonLines(follower);
    const { port } = await f.first;
    const proposer = run(['proposer', dir, sync, port, c.valueBytes, MS, WARMUP_MS].map(String));
    const p = await jsonLines(proposer).exited;
    const { cpuMs } = await f.exited;
    return {
      valuesPerSec: p.valuesPerSec,
      p50Ms: p.p50Ms,
      p99Ms: p.p99Ms,
      cpuMsPerInstance: p.count === 0 ? 0 : (p.cpuMsProposer + cpuMs) / p.count,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const SYSTEMS = {
  tspaxos,
  phxpaxos,
  chainPool: (c) => chain(c, 'pool'),
  chainInline: (c) => chain(c, 'inline'),
};
const results = Object.fromEntries(
  CELLS.map((c) => [c.id, { tspaxos: [], phxpaxos: [], chainPool: [], chainInline: [] }]),
);
for (let r = 0; r < RUNS; r++) {
  for (const c of CELLS) {
    const order = BIN === undefined ? ['tspaxos'] : ['tspaxos', 'phxpaxos'];
    if (c.mode === 'propose') order.push('chainPool', 'chainInline');
    // A different order every repetition, so a load that grows or fades is spread over all.
    for (let k = 0; k < r % order.length; k++) order.push(order.shift());
    if (r % 2 === 1) order.reverse();
    for (const system of order) {
      const x = await SYSTEMS[system](c);
      results[c.id][system].push(x);
      console.log(`run ${r + 1} ${c.id} ${system}`, JSON.stringify(x));
    }
  }
}

const rows = [];
const med = (runs, k) => median(runs.map((x) => x[k]));
for (const c of CELLS) {
  const t = results[c.id].tspaxos;
  const p = results[c.id].phxpaxos;
  const tv = med(t, 'valuesPerSec');
  const pv = p.length > 0 ? med(p, 'valuesPerSec') : undefined;
  rows.push({
    name: `tspaxos ${label(c)}`,
    value: tv,
    unit: 'values/s',
    ...(pv !== undefined ? { ratio: tv / pv, baseline: 'PhxPaxos, same run' } : {}),
  });
  if (pv !== undefined)
    rows.push({ name: `PhxPaxos ${label(c)}`, value: pv, unit: 'values/s', ratio: 1 });
  rows.push({
    name: `tspaxos ${label(c)} (instances)`,
    value: med(t, 'instancesPerSec'),
    unit: 'instances/s',
    ...(pv !== undefined
      ? {
          ratio: med(t, 'instancesPerSec') / med(p, 'instancesPerSec'),
          baseline: 'PhxPaxos, same run',
        }
      : {}),
  });
  if (pv !== undefined)
    rows.push({
      name: `PhxPaxos ${label(c)} (instances)`,
      value: med(p, 'instancesPerSec'),
      unit: 'instances/s',
      ratio: 1,
    });
  const tc = med(t, 'cpuMsPerInstance');
  const pc = p.length > 0 ? med(p, 'cpuMsPerInstance') : undefined;
  rows.push({
    name: `tspaxos ${label(c)} (CPU ms per instance, 3 processes)`,
    value: tc,
    unit: 'ms',
    ...(pc !== undefined ? { ratio: tc / pc, baseline: 'PhxPaxos, same run' } : {}),
  });
  if (pc !== undefined)
    rows.push({
      name: `PhxPaxos ${label(c)} (CPU ms per instance, 3 processes)`,
      value: pc,
      unit: 'ms',
      ratio: 1,
    });
  for (const [key, how] of [
    ['chainPool', 'fdatasync on libuv pool'],
    ['chainInline', 'fdatasync inline'],
  ]) {
    const b = results[c.id][key];
    if (b.length === 0) continue;
    const bv = med(b, 'valuesPerSec');
    const name = `physical chain ${size(c.valueBytes)} (TCP to 1 follower, both append + ${how})`;
    rows.push({ name, value: bv, unit: 'values/s', ratio: 1 });
    rows.push({
      name: `${name} (CPU ms per value, 2 processes)`,
      value: med(b, 'cpuMsPerInstance'),
      unit: 'ms',
    });
    rows.push({ name: `tspaxos ${label(c)} ÷ physical chain (${how})`, value: tv / bv, unit: '×' });
    if (pv !== undefined)
      rows.push({
        name: `PhxPaxos ${label(c)} ÷ physical chain (${how})`,
        value: pv / bv,
        unit: '×',
      });
  }
  rows.push({
    name: `tspaxos ${label(c)} (values per instance)`,
    value: med(t, 'valuesPerInstance'),
    unit: 'values/instance',
  });
  if (pv !== undefined)
    rows.push({
      name: `PhxPaxos ${label(c)} (values per instance)`,
      value: med(p, 'valuesPerInstance'),
      unit: 'values/instance',
    });
}
report('paxos-phxpaxos', rows, {
  phxpaxos: BIN === undefined ? 'skipped: PHXPAXOS_BENCH not set' : BIN,
  tspaxosStoreOptions: STORE_OPTIONS,
  measuredMs: MS,
  raw: results,
});
process.exit(0);
