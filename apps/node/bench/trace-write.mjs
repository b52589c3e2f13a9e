// Where the time of one write goes, across the three processes (issue 22): a 3-node cluster of
// `tspaxos node` processes with trace-preload.mjs, one keep-alive client sending PUTs of 100 B to
// the master one after the other, then every write's steps matched by time (one write at a time,
// so each process's stamps between a write's send and its reply belong to it, or to what else ran
// then: a lease renewal, a WAL fsync, a GC). Prints the median and p90 of each step, and what the
// slowest 1 % of writes had in their window against the others.
//
//   node bench/trace-write.mjs [writes] [-- extra node flags, e.g. --master-lease-ms 10000]
//
// The client's stamps use the same clock as the nodes' (performance.timeOrigin + now()).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { endpoint, httpClient } from './http-client.mjs';
import { cpuSeconds } from './proc.mjs';

const dash = process.argv.indexOf('--');
const WRITES = Number(process.argv[2] && process.argv[2] !== '--' ? process.argv[2] : 2000);
const EXTRA = dash < 0 ? [] : process.argv.slice(dash + 1);
const WARMUP = 300;

const dir = process.env.BENCH_NODE_TRACE || mkdtempSync(join(tmpdir(), 'tspaxos-trace-'));
process.env.BENCH_NODE_TRACE = dir; // read by tspaxos-cluster.mjs when it is imported
const { startCluster, waitForMaster, closeStatusClient } = await import('./tspaxos-cluster.mjs');

const now = () => performance.timeOrigin + performance.now();
const value = Buffer.alloc(100, 'x');
const cluster = await startCluster(1, EXTRA);
const writes = [];
let leader;
/** CPU seconds each node used over the traced writes (the warm-up excluded). */
let cpu;
try {
  leader = await waitForMaster(cluster, [0, 1, 2]);
  const client = httpClient(1);
  const target = endpoint(cluster.urls[leader]);
  const pids = cluster.nodes.map((n) => n.child.pid);
  for (let i = 0; i < WARMUP + WRITES; i++) {
    if (i === WARMUP) cpu = pids.map(cpuSeconds);
    const send = now();
    const res = await client.request(target, `/kv/k${i % 1000}`, { method: 'PUT', body: value });
    const recv = now();
    if (!res.ok) throw new Error(`HTTP ${res.status}: ${res.body.toString().slice(0, 200)}`);
    if (i >= WARMUP) writes.push({ send, recv });
  }
  cpu = pids.map((p, i) => cpuSeconds(p) - cpu[i]);
  client.close();
} finally {
  await cluster.stop();
  closeStatusClient();
}

const load = (pid) =>
  readFileSync(join(dir, `trace-${pid}.jsonl`), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
const pids = cluster.nodes.map((n) => n.child.pid);
const master = load(pids[leader]);
const followers = pids.filter((_, i) => i !== leader).map(load);
if (!process.env.BENCH_NODE_TRACE_KEEP) rmSync(dir, { recursive: true, force: true });

/** Events of `list` named `ev` with time in [from, to). */
const within = (list, ev, from, to) => list.filter((e) => e.ev === ev && e.t >= from && e.t < to);
// Durations overlap a window when they started before its end and ended after its start.
const overlapping = (list, ev, from, to) =>
  list.filter((e) => e.ev === ev && e.start < to && e.start + e.ms > from);
/** ms of the `ev` durations (gc, loop-gap, checkpoint, slow-txn) of `lists` overlapping write `w`. */
const msOf = (lists, ev, w) =>
  lists.flatMap((l) => overlapping(l, ev, w.send, w.recv)).reduce((a, e) => a + e.ms, 0);

const rows = [];
let unmatched = 0;
for (const w of writes) {
  const httpIn = within(master, 'http-in', w.send, w.recv)[0];
  const httpOut = within(master, 'http-out', w.send, w.recv).at(-1);
  if (httpIn === undefined || httpOut === undefined) {
    unmatched++;
    continue;
  }
  const accept = within(master, 'send', httpIn.t, httpOut.t)[0];
  const mWrite = within(master, 'writev', httpIn.t, httpOut.t)[0];
  const mSync = mWrite && master.find((e) => e.ev === 'fdatasync' && e.start >= mWrite.start);
  const fs = followers.map((f) => {
    const wv = within(f, 'writev', httpIn.t, httpOut.t)[0];
    const sync = wv && f.find((e) => e.ev === 'fdatasync' && e.start >= wv.start);
    const reply = sync && f.find((e) => e.ev === 'send' && e.t >= sync.t);
    return { wv, sync, reply };
  });
  const first = fs.filter((f) => f.reply !== undefined).sort((a, b) => a.reply.t - b.reply.t)[0];
  if (!accept || !mWrite || !mSync || !first) {
    unmatched++;
    continue;
  }
  const votesIn = Math.max(mSync.t, first.reply.t);
  const all = [master, ...followers];
  rows.push({
    total: w.recv - w.send,
    httpIn: httpIn.t - w.send,
    routeToAccept: accept.t - httpIn.t,
    acceptToLocalWrite: mWrite.start - accept.t,
    localWrite: mSync.t - mWrite.start,
    acceptToFollower: first.wv.start - accept.t,
    followerWrite: first.sync.t - first.wv.start,
    followerReply: first.reply.t - first.sync.t,
    votesToHttpOut: httpOut.t - votesIn,
    httpOut: w.recv - httpOut.t,
    // What else ran in the write's window.
    masterInstances: within(master, 'writev', w.send, w.recv).length,
    masterFsyncs: within(master, 'fsync', w.send, w.recv).length,
    gcMs: msOf(all, 'gc', w),
    loopGapMs: msOf(all, 'loop-gap', w),
    // The master's own: its loop holds the write from the request to the reply.
    masterGcMs: msOf([master], 'gc', w),
    masterLoopGapMs: msOf([master], 'loop-gap', w),
    masterCheckpointMs: msOf([master], 'checkpoint', w),
    masterSlowTxnMs: msOf([master], 'slow-txn', w),
  });
}

const STEPS = [
  ['client send → request event (HTTP in)', 'httpIn'],
  ['request → Accept sent to the peers (route, proposer)', 'routeToAccept'],
  ['Accept sent → local append starts', 'acceptToLocalWrite'],
  ["master's durable write (append + fdatasync)", 'localWrite'],
  ['Accept sent → first follower appends (network, its loop)', 'acceptToFollower'],
  ["first follower's durable write", 'followerWrite'],
  ['its fdatasync done → AcceptReply sent', 'followerReply'],
  ['both votes in → reply handed to the socket (chosen, apply, route)', 'votesToHttpOut'],
  ['reply handed to the socket → client has it (HTTP out)', 'httpOut'],
  ['total, as the client timed it', 'total'],
];
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))];
};
const f3 = (x) => (x === undefined ? '-' : x.toFixed(3));
console.log(
  `${rows.length} writes traced (${unmatched} not matched), master node ${leader + 1}, flags: ${EXTRA.join(' ') || '(defaults)'}`,
);
const perWriteUs = (s) => ((s / writes.length) * 1e6).toFixed(0);
console.log(
  `CPU per write: master ${perWriteUs(cpu[leader])} µs, all 3 nodes ${perWriteUs(cpu.reduce((a, b) => a + b, 0))} µs`,
);
console.log('| step | median | p90 | p99 |\n|---|---:|---:|---:|');
for (const [label, k] of STEPS) {
  const xs = rows.map((r) => r[k]);
  console.log(`| ${label} | ${f3(pct(xs, 0.5))} | ${f3(pct(xs, 0.9))} | ${f3(pct(xs, 0.99))} |`);
}

// The slowest 1 %: what their windows held, against the other writes.
const sorted = [...rows].sort((a, b) => b.total - a.total);
const slow = sorted.slice(0, Math.max(1, Math.floor(rows.length / 100)));
const rest = sorted.slice(slow.length);
const med = (xs) =>
  f3(
    pct(
      xs.map((r) => r.total),
      0.5,
    ),
  );
const withOther = rows.filter((r) => r.masterInstances > 1);
console.log(
  `\nwrites with another instance on the master in their window: ${withOther.length} of ${rows.length}` +
    ` (${((withOther.length / Math.max(1, rows.length)) * 100).toFixed(1)} %), median total ${med(withOther)} ms` +
    ` against ${med(rows.filter((r) => r.masterInstances <= 1))} ms`,
);
const share = (xs, test) =>
  `${((xs.filter(test).length / Math.max(1, xs.length)) * 100).toFixed(0)} %`;
const mean = (xs, k) => xs.reduce((a, r) => a + r[k], 0) / Math.max(1, xs.length);
console.log(
  `\nslowest ${slow.length} writes (total ≥ ${f3(slow.at(-1)?.total)} ms) against the rest:`,
);
console.log('| in the window | slowest 1 % | rest |\n|---|---:|---:|');
for (const [label, test] of [
  ['another instance on the master (a renewal or a barrier)', (r) => r.masterInstances > 1],
  ['an fsync on the master (WAL, directory)', (r) => r.masterFsyncs > 0],
  ['a GC in any process', (r) => r.gcMs > 0],
  ['a GC on the master', (r) => r.masterGcMs > 0],
  ['an event-loop stall > 2 ms in any process', (r) => r.loopGapMs > 0],
  ['an event-loop stall > 2 ms on the master', (r) => r.masterLoopGapMs > 0],
  ["a WAL checkpoint on the master (the log's, on its loop)", (r) => r.masterCheckpointMs > 0],
  ['a SQLite transaction over 1 ms on the master', (r) => r.masterSlowTxnMs > 0],
])
  console.log(`| ${label} | ${share(slow, test)} | ${share(rest, test)} |`);
for (const [label, k] of [
  ['mean GC ms', 'gcMs'],
  ['mean stall ms', 'loopGapMs'],
  ["mean stall ms, the master's", 'masterLoopGapMs'],
  ["mean ms of the master's checkpoints", 'masterCheckpointMs'],
  ["mean ms of the master's transactions over 1 ms", 'masterSlowTxnMs'],
  ["master's durable write, mean ms", 'localWrite'],
  ["follower's durable write, mean ms", 'followerWrite'],
  ['HTTP in, mean ms', 'httpIn'],
  ['HTTP out, mean ms', 'httpOut'],
  ['votes in → reply, mean ms', 'votesToHttpOut'],
])
  console.log(`| ${label} | ${f3(mean(slow, k))} | ${f3(mean(rest, k))} |`);
