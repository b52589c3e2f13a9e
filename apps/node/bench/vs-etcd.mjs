// tspaxos against etcd, side by side in one run (issues 18 and 22): the same cells, the same
// load generator (http-client.mjs), each cell measured on both servers back to back, the order
// alternating between runs; every run starts fresh clusters of both. 100 B values on KEYS keys
// unless a cell says otherwise. Medians over the runs; each row keeps its runs. The one-client cell
// also runs its floor (floor.mjs: a replicated durable write with no consensus) right after both.
import { envInteger, median, report } from '../../../scripts/bench-harness.mjs';
import { ensureEtcd } from './etcd-cluster.mjs';
import { httpClient, load, sendMany } from './http-client.mjs';
import {
  CATCH_UP_WRITES,
  CELL_WARMUP_MS,
  ETCD_CELLS,
  ETCD_RUNS,
  KEYS,
  MS,
  WARMUP_MS,
} from './knobs.mjs';
import { floorSide } from './floor.mjs';
import { cpuSeconds, peakRssBytes } from './proc.mjs';
import { etcdSide, tspaxosSide, until } from './sides.mjs';
import { sleep } from './tspaxos-cluster.mjs';

const SMALL = Buffer.alloc(100, 'x');
const LARGE = Buffer.alloc(64 * 1024, 'y');
/**
 * The master lease of the tspaxos cluster in the kill cell, BENCH_NODE_KILL_LEASE_MS (0, the
 * default: the server's own, 1 s like etcd's election timeout).
 */
const KILL_LEASE_MS = envInteger('BENCH_NODE_KILL_LEASE_MS', 0, { min: 0 });
const KILL_LEASE_LABEL = KILL_LEASE_MS > 0 ? `lease ${KILL_LEASE_MS} ms` : 'default lease 1000 ms';
/** BENCH_NODE_KILL_ONLY=1: only the master-kill cell, with its timeline (issue 22). */
const KILL_ONLY = envInteger('BENCH_NODE_KILL_ONLY', 0, { max: 1 }) === 1;

const key = (i) => `k${i % KEYS}`;
/** 64 clients writing 100 B round-robin over the 3 nodes for `ms` (the spread cell, the warm-up). */
const spreadWrites = (s, ms) => load(64, (c, i) => s.put(c, i % 3, key(i), SMALL), ms);

/**
 * `measure()`'s result with the CPU seconds the master/leader (`cpuLeader`) and all 3 nodes
 * (`cpuAll`) used over it, per 1,000 completed requests.
 */
async function withCpu(s, leader, measure) {
  const pids = [0, 1, 2].map((i) => s.pid(i));
  const before = pids.map(cpuSeconds);
  const r = await measure();
  const used = pids.map((p, i) => cpuSeconds(p) - before[i]);
  return {
    ...r,
    cpuLeader: (used[leader] / r.count) * 1000,
    cpuAll: (used.reduce((a, b) => a + b, 0) / r.count) * 1000,
  };
}

/**
 * 16 clients reading through the master/leader in `mode`, with the CPU it used; on tspaxos also
 * the reads per quorum round and per barrier, from its /metrics counters.
 */
async function linearizableReads(s, l, mode, ms) {
  const before = await s.readCounts?.(l);
  const r = await withCpu(s, l, () => load(16, (c, i) => s.get(c, l, key(i * 7919), mode), ms));
  const after = await s.readCounts?.(l);
  if (before === undefined) return r;
  const per = (field) => {
    const n = after[field] - before[field];
    return n > 0 ? (after.reads - before.reads) / n : undefined;
  };
  return {
    ...r,
    readsPerRound: per('rounds'),
    readsPerBarrier: per('barriers'),
    fallbacks: after.fallbacks - before.fallbacks,
  };
}

/**
 * `measure()`'s result with, on tspaxos, per forwarded write (none: NaN): the forwarding frames
 * both ways, the share answered before the forwarding node had applied it and their mean wait; and
 * the values per instance (the cell's writes over the instances chosen meanwhile, lease renewals
 * included) and the share of the batch waits (paxos batchWaitMs) that got every value.
 */
async function withForwarding(s, measure) {
  const before = await s.forwardCounts?.();
  const r = await measure();
  if (before === undefined) return r;
  const after = await s.forwardCounts();
  const d = (k) => (after[k] ?? 0) - (before[k] ?? 0);
  const forwarded = d('proposalsForwarded');
  return {
    ...r,
    framesPerForward: (d('proposeFramesSent') + d('replyFramesSent')) / forwarded,
    waitedShare: d('repliesBeforeApplied') / forwarded,
    waitMs: d('repliesBeforeApplied') > 0 ? d('applyWaitMs') / d('repliesBeforeApplied') : 0,
    valuesPerInstance: r.count / d('instances'),
    // The master's batch waits (paxos batchWaitMs) that got every value they waited for.
    batchWaitsFilled: d('batchWaits') > 0 ? d('batchWaitsFilled') / d('batchWaits') : undefined,
  };
}

/** Throughput cells: `run(side, leader, ms)` returns load()'s { rate, p50, p99, … }. */
const CELLS = [
  {
    id: 'w1',
    name: 'writes 100 B, 1 client, to the master/leader',
    run: (s, l, ms) =>
      withCpu(s, l, () =>
        withForwarding(s, () => load(1, (c, i) => s.put(c, l, key(i), SMALL), ms)),
      ),
  },
  {
    id: 'w16',
    name: 'writes 100 B, 16 clients, to the master/leader',
    run: (s, l, ms) => withForwarding(s, () => load(16, (c, i) => s.put(c, l, key(i), SMALL), ms)),
  },
  {
    id: 'w64',
    name: 'writes 100 B, 64 clients, to the master/leader',
    run: (s, l, ms) =>
      withCpu(s, l, () =>
        withForwarding(s, () => load(64, (c, i) => s.put(c, l, key(i), SMALL), ms)),
      ),
  },
  {
    id: 'spread',
    name: 'writes 100 B, 64 clients round-robin over the 3 nodes',
    // tspaxos: also the forwarding frames, apply waits and values per instance (/status).
    run: (s, l, ms) => withCpu(s, l, () => withForwarding(s, () => spreadWrites(s, ms))),
  },
  {
    id: 'linread',
    name: 'linearizable reads, 16 clients (?consistent=true / etcd default)',
    // tspaxos: a quorum read index (issue 22); also the reads each round served (/metrics).
    run: (s, l, ms) => linearizableReads(s, l, 'linearizable', ms),
  },
  {
    id: 'linbarrier',
    name: 'linearizable reads through a barrier, 16 clients (?consistent=barrier / etcd default)',
    // The path ?consistent=true took before issue 22's quorum reads, for the before/after.
    run: (s, l, ms) => linearizableReads(s, l, 'barrier', ms),
  },
  {
    id: 'leaseread',
    name: 'lease reads / etcd serializable, 16 clients',
    run: (s, l, ms) => load(16, (c, i) => s.get(c, l, key(i * 7919), 'local'), ms),
  },
  {
    id: 'w64k',
    name: 'writes 64 KiB, 16 clients, to the master/leader',
    run: (s, l, ms) => load(16, (c, i) => s.put(c, l, `big${i % 1000}`, LARGE), ms),
  },
];

/** A stopped follower misses CATCH_UP_WRITES writes; ms from its restart to caught up. */
async function catchUp(side, leader) {
  const f = (leader + 1) % 3;
  await side.kill(f);
  await sendMany(CATCH_UP_WRITES, 64, (c, i) => side.put(c, leader, `c${i % KEYS}`, SMALL));
  const target = await side.progress(leader);
  const t0 = performance.now();
  side.restart(f);
  await until(async () => (await side.progress(f)) >= target, `${side.name} node ${f} caught up`);
  const ms = performance.now() - t0;
  side.printRestartTimeline?.(ms);
  return ms;
}

/**
 * The master/leader SIGKILLed under 64 clients writing round-robin over the 3 nodes: ms from the
 * kill to the first 200 of a write sent after it, and how the answers in between went.
 */
async function killLeader(side) {
  const leader = await side.leader();
  const client = httpClient(64);
  let killedAt = Infinity;
  let stop = false;
  let n = 0;
  // [time answered, kind, time sent, node, cause] of every request answered after the kill
  const answers = [];
  const loops = Array.from({ length: 64 }, async (_, c) => {
    for (let k = c; !stop; k += 64) {
      const sent = performance.now();
      let kind;
      let cause = '';
      try {
        const res = await side.put(client, k % 3, `x${n++}`, SMALL);
        kind = res.ok
          ? '200'
          : res.status === 503 || res.status === 504
            ? String(res.status)
            : 'other';
        if (!res.ok) cause = causeOf(res.body);
      } catch {
        kind = 'refused'; // the killed node: a refused connection, or a reset mid-request
      }
      const now = performance.now();
      if (now >= killedAt) answers.push([now, kind, sent, k % 3, cause]);
      if (kind === 'refused') await sleep(20);
    }
  });
  await sleep(Math.min(MS, 3000));
  const survivors = [0, 1, 2].filter((i) => i !== leader);
  const stopWatch = side.watchMaster?.(survivors);
  killedAt = performance.now();
  const killed = side.kill(leader);
  await until(
    () => answers.some(([, kind, sent]) => kind === '200' && sent > killedAt),
    `${side.name}: writes after the leader's kill`,
    60_000,
  );
  await sleep(500);
  stop = true;
  await Promise.all(loops);
  await killed;
  client.close();
  let flowingAt = Infinity;
  for (const [t, kind, sent] of answers)
    if (kind === '200' && sent > killedAt) flowingAt = Math.min(flowingAt, t);
  const counts = { 200: 0, 503: 0, 504: 0, other: 0, refused: 0 };
  const causes = {};
  for (const [t, kind, , , cause] of answers)
    if (t <= flowingAt) {
      counts[kind]++;
      if (cause !== '') causes[`${kind} ${cause}`] = (causes[`${kind} ${cause}`] ?? 0) + 1;
    }
  const timeline =
    stopWatch === undefined
      ? undefined
      : killTimeline(await stopWatch(), answers, { leader, survivors, killedAt });
  return { recoveryMs: flowingAt - killedAt, counts, causes, timeline };
}

/** The error code of a non-2xx answer (tspaxos: the paxos code its message starts with). */
function causeOf(body) {
  try {
    const e = JSON.parse(body.toString()).error;
    const paxos = /^(E_[A-Z_]+):/.exec(e?.message ?? '')?.[1];
    return paxos === undefined ? String(e?.code ?? '?') : `${e.code}/${paxos}`;
  } catch {
    return '?';
  }
}

/**
 * ms after the kill, per survivor: when its view of the old lease ended, when it first tried to
 * become master, when it saw the new master; and per node the last 503 and the first 200.
 */
function killTimeline(events, answers, { leader, survivors, killedAt }) {
  const at = (t) => (t === undefined ? null : Math.round(t - killedAt));
  const out = {};
  const newMaster = events.find((e) => e.master !== null && e.master !== leader + 1)?.master;
  for (const i of survivors) {
    const mine = events.filter((e) => e.node === i);
    const first = mine[0];
    const before = first?.attempts ?? 0;
    out[`node${i + 1}`] = {
      // Its view of the old master's lease at its first poll: when that lease was due to end.
      oldLeaseDue: first?.master === leader + 1 ? at(first.t + first.remainingMs) : null,
      oldLeaseEnded: at(mine.find((e) => e.master === null)?.t),
      firstAttempt: at(mine.find((e) => e.attempts > before)?.t),
      sawNewMaster: at(mine.find((e) => e.master === newMaster && newMaster !== undefined)?.t),
    };
  }
  for (const i of [0, 1, 2]) {
    const mine = answers.filter((a) => a[3] === i && a[2] > killedAt);
    const last503 = mine.filter((a) => a[1] === '503').map((a) => a[0]);
    out[`node${i + 1}`] = {
      ...out[`node${i + 1}`],
      last503: at(last503.length > 0 ? Math.max(...last503) : undefined),
      first200: at(mine.find((a) => a[1] === '200')?.[0]),
    };
  }
  out.newMaster = newMaster ?? null;
  return out;
}

/** Length of one slice of the warm-up: its first and last slices are reported. */
const WARMUP_SLICE_MS = 2000;

/**
 * The warm-up of a fresh cluster (knobs.mjs, WARMUP_MS): 64 clients writing round-robin over the
 * 3 nodes, in slices of WARMUP_SLICE_MS; the first and the last slice's rates (what a freshly
 * started cluster does, and where the warm-up ended).
 */
async function warmUp(s) {
  const slices = [];
  for (let spent = 0; spent < WARMUP_MS; spent += WARMUP_SLICE_MS)
    slices.push(await spreadWrites(s, Math.min(WARMUP_SLICE_MS, WARMUP_MS)));
  return slices.length === 0 ? undefined : { first: slices[0], last: slices.at(-1) };
}

/** Whether BENCH_NODE_ETCD_CELLS picks cell `id` (unset: every cell). */
const picked = (id) => ETCD_CELLS === undefined || ETCD_CELLS.has(id);

/** One run: fresh clusters of both, every cell on both in `order`; the values by cell id. */
async function oneRun(order) {
  const out = {};
  const sides = [];
  if (!KILL_ONLY) for (const make of order) sides.push(await make());
  // The floor of the one-client cell (floor.mjs), measured right after both servers' cell.
  let floor;
  try {
    if (!KILL_ONLY && picked('w1')) floor = await floorSide();
    const leaders = [];
    for (const s of sides) {
      const l = await s.leader();
      leaders.push(l);
      await sendMany(KEYS, 64, (c, i) => s.put(c, l, key(i), SMALL));
      out[s.name] = { warmup: await warmUp(s) };
    }
    for (const cell of CELLS.filter((c) => picked(c.id))) {
      for (const [k, s] of sides.entries()) {
        // The cell's own load, untimed first (knobs.mjs); etcd gets the same.
        if (CELL_WARMUP_MS > 0) await cell.run(s, leaders[k], CELL_WARMUP_MS);
        out[s.name][cell.id] = await cell.run(s, leaders[k], MS);
      }
      if (cell.id === 'w1' && floor !== undefined) {
        if (CELL_WARMUP_MS > 0) await cell.run(floor, 0, CELL_WARMUP_MS);
        out.floor = { w1: await cell.run(floor, 0, MS) };
      }
    }
    if (picked('rss'))
      for (const s of sides) out[s.name].rss = [0, 1, 2].map((i) => peakRssBytes(s.pid(i)));
    if (picked('catchup'))
      for (const [k, s] of sides.entries()) out[s.name].catchUpMs = await catchUp(s, leaders[k]);
  } finally {
    for (const s of sides) await s.stop();
    await floor?.stop();
  }
  // The kill cell on fresh clusters.
  for (const make of picked('kill') ? order : []) {
    const s = await make({ leaseMs: KILL_LEASE_MS });
    try {
      (out[s.name] ??= {}).kill = await killLeader(s);
      if (out[s.name].kill.timeline !== undefined)
        console.log(`${s.name} kill timeline (ms after the kill):`, out[s.name].kill);
    } finally {
      await s.stop();
    }
  }
  return out;
}

const makers = (withEtcd) => {
  const ts = ({ leaseMs } = {}) =>
    tspaxosSide(leaseMs ? ['--master-lease-ms', String(leaseMs)] : []);
  return withEtcd ? [ts, () => etcdSide()] : [ts];
};

/**
 * Runs the side-by-side cells, prints their table and writes bench-results/node-vs-etcd.json
 * (rows with the medians, the table, and every run's figures).
 */
export async function vsEtcd() {
  const rows = [];
  const etcdVersion = ensureEtcd();
  const runs = [];
  for (let r = 0; r < ETCD_RUNS; r++) {
    const m = makers(etcdVersion !== null);
    const order = r % 2 === 0 ? m : [...m].reverse();
    console.log(
      `vs etcd: run ${r + 1} of ${ETCD_RUNS} (${order.length === 2 ? (r % 2 === 0 ? 'tspaxos first' : 'etcd first') : 'tspaxos only'})`,
    );
    runs.push(await oneRun(order));
  }
  const table = [];
  const of = (side, pick) => {
    const values = runs
      .map((r) => r[side])
      .filter((x) => x !== undefined)
      .map((x) => {
        try {
          return pick(x);
        } catch (error) {
          // a cell BENCH_NODE_ETCD_CELLS left out (its figures absent): no row
          if (ETCD_CELLS === undefined || !(error instanceof TypeError)) throw error;
          return undefined;
        }
      })
      .filter((v) => v !== undefined); // a figure only one side has (reads per barrier)
    return values.length === 0 ? undefined : { median: median(values), runs: values };
  };
  /** A row of the printed table and JSON rows: ratio = tspaxos / etcd (higher is better for rates). */
  const add = (name, unit, pick, { lowerIsBetter = false, noRatio = false } = {}) => {
    const t = of('tspaxos', pick);
    const e = of('etcd', pick);
    if (t === undefined) return; // a cell not run (BENCH_NODE_ETCD_CELLS)
    const ratio =
      e === undefined || noRatio
        ? undefined
        : lowerIsBetter
          ? e.median / t.median
          : t.median / e.median;
    rows.push({
      name: `vs etcd: ${name}: tspaxos`,
      value: t.median,
      unit,
      runs: t.runs,
      ...(ratio !== undefined
        ? {
            ratio,
            baseline: lowerIsBetter ? 'etcd / tspaxos (higher is better)' : 'etcd, same cell',
          }
        : {}),
    });
    if (e !== undefined)
      rows.push({ name: `vs etcd: ${name}: etcd`, value: e.median, unit, runs: e.runs });
    table.push({ name, unit, tspaxos: t.median, etcd: e?.median, ratio });
  };
  let floorTable = [];
  if (!KILL_ONLY) {
    const warm = `writes 100 B, 64 clients round-robin over the 3 nodes, warm-up of a fresh cluster (${WARMUP_SLICE_MS / 1000} s slices)`;
    add(`${warm}: first slice`, 'ops/s', (x) => x.warmup?.first.rate);
    add(`${warm}: last slice`, 'ops/s', (x) => x.warmup?.last.rate);
    addCells(add);
    floorTable = floorRows(rows, of);
  }
  add(
    `master/leader SIGKILLed under 64 spread clients: → first write acknowledged (tspaxos ${KILL_LEASE_LABEL}, etcd election timeout 1 s)`,
    'ms',
    (x) => x.kill.recoveryMs,
    { lowerIsBetter: true },
  );
  for (const kind of ['200', '503', '504', 'other', 'refused'])
    add(
      `answers between the kill and recovery: ${kind === 'refused' ? 'connection refused/reset' : kind}`,
      'requests',
      (x) => x.kill.counts[kind],
      { noRatio: true },
    );
  report('node-vs-etcd', rows, {
    etcdVersion,
    runs: ETCD_RUNS,
    knobs: {
      ms: MS,
      warmupMs: WARMUP_MS,
      cellWarmupMs: CELL_WARMUP_MS,
      keys: KEYS,
      catchUpWrites: CATCH_UP_WRITES,
      killOnly: KILL_ONLY,
    },
    table,
    perRun: runs,
  });
  printTable(table, etcdVersion);
  for (const line of floorTable) console.log(line);
}

/** The rows of every cell but the kill. */
function addCells(add) {
  for (const cell of CELLS) {
    add(cell.name, 'ops/s', (x) => x[cell.id].rate);
    add(`${cell.name}: p50`, 'ms', (x) => x[cell.id].p50, { lowerIsBetter: true });
    add(`${cell.name}: p99`, 'ms', (x) => x[cell.id].p99, { lowerIsBetter: true });
  }
  add(
    'CPU seconds per 1,000 writes on the master/leader (1 client, 100 B)',
    's',
    (x) => x.w1.cpuLeader,
    { lowerIsBetter: true },
  );
  add(
    'CPU seconds per 1,000 writes on the master/leader (64 clients, 100 B)',
    's',
    (x) => x.w64.cpuLeader,
    { lowerIsBetter: true },
  );
  add('CPU seconds per 1,000 writes, all 3 nodes', 's', (x) => x.w64.cpuAll, {
    lowerIsBetter: true,
  });
  add('CPU seconds per 1,000 spread writes, all 3 nodes', 's', (x) => x.spread.cpuAll, {
    lowerIsBetter: true,
  });
  for (const [field, name, unit] of [
    ['framesPerForward', 'spread: forwarding frames (both ways) per forwarded write', 'frames'],
    ['waitedShare', "spread: share of forwarded writes answered before the node's own apply", ''],
    ['waitMs', 'spread: their mean wait for the apply', 'ms'],
    ['valuesPerInstance', 'spread: writes per instance', 'values'],
  ])
    add(name, unit, (x) => x.spread[field], { noRatio: true });
  for (const [cell, clients] of [
    ['w1', '1 client'],
    ['w16', '16 clients'],
    ['w64', '64 clients'],
  ])
    add(
      `writes 100 B, ${clients}, to the master: writes per instance`,
      'values',
      (x) => x[cell].valuesPerInstance,
      { noRatio: true },
    );
  add(
    'writes 100 B, 16 clients, to the master: share of batch waits filled (batchWaitMs)',
    '',
    (x) => x.w16.batchWaitsFilled,
    { noRatio: true },
  );
  add(
    'CPU seconds per 1,000 linearizable reads on the master/leader (16 clients)',
    's',
    (x) => x.linread.cpuLeader,
    {
      lowerIsBetter: true,
    },
  );
  add(
    'linearizable reads per quorum round (tspaxos: shared rounds)',
    'reads',
    (x) => x.linread.readsPerRound,
    { noRatio: true },
  );
  add('quorum reads that fell back to a barrier', 'reads', (x) => x.linread.fallbacks, {
    noRatio: true,
  });
  add(
    'linearizable reads per barrier, ?consistent=barrier (tspaxos: shared barriers)',
    'reads',
    (x) => x.linbarrier.readsPerBarrier,
    { noRatio: true },
  );
  add(
    'peak RSS per node, largest of 3 (after the 64 KiB writes)',
    'MiB',
    (x) => Math.max(...x.rss) / 2 ** 20,
    { lowerIsBetter: true },
  );
  add(
    `restarted follower: start → caught up after ${CATCH_UP_WRITES} writes`,
    'ms',
    (x) => x.catchUpMs,
    { lowerIsBetter: true },
  );
}

/**
 * The one-client cell's floor (floor.mjs) beside both servers: JSON rows with the floor's
 * writes/s against etcd's and tspaxos's against the floor; returns the lines of its table.
 */
function floorRows(rows, of) {
  const pick = {
    rate: (x) => x.w1.rate,
    p50: (x) => x.w1.p50,
    cpu: (x) => x.w1.cpuAll,
  };
  const sides = ['floor', 'tspaxos', 'etcd'];
  const cells = Object.fromEntries(
    sides.map((side) => [
      side,
      Object.fromEntries(Object.entries(pick).map(([k, p]) => [k, of(side, p)?.median])),
    ]),
  );
  if (cells.floor.rate === undefined) return [];
  const name =
    'writes 100 B, 1 client: the floor (floor.mjs: HTTP in, 2 peers over TCP, an fdatasync per copy, no consensus)';
  const { runs } = of('floor', pick.rate);
  rows.push({
    name: `vs etcd: ${name}`,
    value: cells.floor.rate,
    unit: 'ops/s',
    runs,
    ...(cells.etcd.rate === undefined
      ? {}
      : { ratio: cells.floor.rate / cells.etcd.rate, baseline: 'etcd, same cell' }),
  });
  if (cells.tspaxos.rate !== undefined)
    rows.push({
      name: 'vs etcd: writes 100 B, 1 client: tspaxos against the floor',
      value: cells.tspaxos.rate,
      unit: 'ops/s',
      ratio: cells.tspaxos.rate / cells.floor.rate,
      baseline: 'the floor (floor.mjs), same run',
    });
  const lines = [
    `\n### One client's write against its floor (floor.mjs), median of ${ETCD_RUNS} run(s)`,
    "| | writes/s | p50 | CPU s per 1,000 writes, all 3 processes | writes/s ÷ the floor's |",
    '|---|---:|---:|---:|---:|',
  ];
  for (const side of sides) {
    const c = cells[side];
    if (c.rate === undefined) continue;
    lines.push(
      `| ${side} | ${f(c.rate, 'ops/s')} | ${f(c.p50, 'ms')} ms | ${f(c.cpu, 's')} s | ${(c.rate / cells.floor.rate).toFixed(2)}× |`,
    );
  }
  return lines;
}

const f = (v, unit) =>
  v === undefined
    ? '—'
    : unit === 'ops/s' && v >= 1000
      ? `${(v / 1000).toFixed(2)} k`
      : v >= 100
        ? v.toFixed(0)
        : v.toPrecision(3);

function printTable(table, etcdVersion) {
  console.log(`\n### tspaxos vs etcd ${etcdVersion ?? '(skipped)'}, median of ${ETCD_RUNS} run(s)`);
  console.log(
    'ratio: tspaxos ÷ etcd for rates; etcd ÷ tspaxos for times, CPU and memory (above 1: tspaxos ahead)',
  );
  console.log('| cell | tspaxos | etcd | ratio |\n|---|---:|---:|---:|');
  for (const r of table)
    console.log(
      `| ${r.name} | ${f(r.tspaxos, r.unit)} ${r.unit} | ${f(r.etcd, r.unit)} ${r.etcd === undefined ? '' : r.unit} | ${r.ratio === undefined || !Number.isFinite(r.ratio) ? '—' : `${r.ratio.toFixed(2)}×`} |`,
    );
}
