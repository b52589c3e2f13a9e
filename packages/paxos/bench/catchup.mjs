// Catch-up benchmark (issue 9): three processes over TcpNetwork on loopback, each node with its
// own SQLite log. Nodes 1 and 2 hold a log written through propose() while node 3 was down; node
// 3 starts empty and learns it. Reported: instances/s and MB/s of the stream (node 3 ready →
// caught up), time from ready to the first learned value, node 3's peak RSS, and the group's own
// commit rate on node 1 while node 3 catches up, against the same with no catch-up running.
// Then, as a user times it (issue 22), a fresh node beside two writers stopped one instance
// apart: node 1 serves the stream, only node 2 has the last instance; reported: ready → caught
// up (node 2's now id) beside the rate of node 1's stream, and the stall re-asks it took.
// Baseline, interleaved in the same run: the same record bytes over a plain loopback socket
// into batched better-sqlite3 inserts (catchup-baseline.mjs), and two physical baselines, a plain
// loopback socket appended to a plain file (no parsing, no fsync) whose sender takes the same
// record bytes either
//  - "physical (from memory)": from memory, read out of the log before the clock starts, or
//  - "physical (from file)": from a plain file written before the clock starts and read in
//    256 KiB chunks while sending (page cache): like for like with the catch-up, whose sender
//    reads its log from disk (page cache) as it streams.
// The quiet 100 KiB catch-up's MB/s is printed against each, and the learning node's CPU per
// value against the physical (from file) receiver's (the catch-up is CPU-bound on the learning
// node: that ratio is what bounds its rate). Then propose() of 100 KiB values,
// 2 of 3 nodes up, 100 callers, against PhxPaxos's figure on this machine.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteLogStore } from '@tspaxos/storage/sqlite';
import { SeededRandomSource } from '@tspaxos/core';
import { MemoryNetwork } from '@tspaxos/transport';
// The setup's nodes are the lower-level node of /internal (createNode is the façade since issue 20,
// which takes members with addresses).
import { startNode } from '../dist/internal.js';
import { realRandom, realScheduler } from '../dist/node.js';
import { envInteger, median, report } from '../../../scripts/bench-harness.mjs';
import { pumpMemoryNetwork } from './pump.mjs';

const RUNS = envInteger('BENCH_RUNS', 5, { min: 1 });
const SMALL = envInteger('BENCH_CATCHUP_SMALL', 50_000);
const LARGE = envInteger('BENCH_CATCHUP_LARGE', 2_000);
/** Length of one propose measurement (ms); 0 skips the propose suite. */
const PROPOSE_MS = envInteger('BENCH_CATCHUP_PROPOSE_MS', 5_000);
/** PhxPaxos on this machine (BASELINES.md, 2026-11-30): 100 KB values, 2 of 3 nodes, 100 callers. */
const PHXPAXOS_PROPOSE_100K_PER_SEC = 440;
/**
 * 1: only the catch-up beside writers one instance apart (apartCatchUp; quick iterations on
 * issue 22's ready → caught up).
 */
const APART_ONLY = envInteger('BENCH_CATCHUP_APART_ONLY', 0, { min: 0, max: 1 });
/**
 * 1: each run only the physical baseline from file and the quiet catch-up, back to back (quick
 * A/B iterations on the learning node's CPU per value, issue 22).
 */
const QUIET_ONLY = envInteger('BENCH_CATCHUP_QUIET_ONLY', 0, { min: 0, max: 1 });
/** How late the writer one ahead answers node 3's first ask, so the other writer serves first. */
const APART_ANSWER_LATE_MS = 200;
/** 0 skips the raw-socket baselines (quick iterations on the commit-rate measure). */
const BASELINES = envInteger('BENCH_CATCHUP_BASELINES', 1, { min: 0, max: 1 });
/** Learner options for every node, as JSON (e.g. '{"senderLoopShare":0.2}'); default: none. */
const LEARNER = (() => {
  try {
    return JSON.parse(process.env.BENCH_CATCHUP_LEARNER || '{}');
  } catch (error) {
    throw new Error(`BENCH_CATCHUP_LEARNER must be a JSON object of learner options: ${error}`);
  }
})();
const options = { learner: LEARNER };
const dirs = [];
const tmp = (tag) => {
  const d = mkdtempSync(join(tmpdir(), `tspaxos-catchup-${tag}-`));
  dirs.push(d);
  return d;
};
const here = (f) => new URL(`./${f}`, import.meta.url);

/**
 * The setup only: the log is written through propose() as in production, but without waiting
 * for fsync (this shared machine does ~200 fsyncs/s, so 50,000 instances would take minutes).
 * The records written are the same; the benchmark itself runs on stores opened normally.
 */
function unsynced(store) {
  const put = store.put.bind(store);
  const putMany = store.putMany.bind(store);
  const setMeta = store.setMeta.bind(store);
  store.put = (g, r) => put(g, r, { sync: false });
  store.putMany = (g, r) => putMany(g, r, { sync: false });
  store.setMeta = (g, k, v) => setMeta(g, k, v, { sync: false });
  return store;
}

/** Nodes 1 and 2 (node 3 down) write `count` values of `valueBytes` through propose(). */
async function writeLog(count, valueBytes) {
  const net = new MemoryNetwork({ rng: new SeededRandomSource(1) });
  const stopPump = pumpMemoryNetwork(net);
  const d = { 1: tmp('n1'), 2: tmp('n2') };
  const nodes = [];
  for (const id of [1, 2]) {
    nodes.push(
      await startNode({
        nodeId: id,
        cluster: [1, 2, 3],
        groups: 1,
        store: unsynced(SqliteLogStore.open(d[id])),
        network: net.endpoint(id),
        scheduler: realScheduler(),
        random: realRandom(),
        stateMachines: [{ smId: 10, execute() {} }],
      }),
    );
  }
  let issued = 0;
  const worker = async () => {
    while (issued < count) {
      issued++;
      const value = new Uint8Array(valueBytes);
      value.fill(issued & 0xff);
      await nodes[0].propose(0, value, { smId: 10 });
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
  await Promise.all(nodes.map((n) => n.idle()));
  stopPump();
  for (const n of nodes) await n.stop();
  return d;
}

function request(child, msg, replyType) {
  const reply = new Promise((resolve, reject) => {
    const onExit = (code) => reject(new Error(`child exited (${code}) awaiting ${replyType}`));
    const onMessage = (m) => {
      if (m.type !== replyType) return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      resolve(m);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
  child.send(msg);
  return reply;
}

/** Fresh copies of the written logs of nodes `ids`, by node id (`tag`: the temp dirs' names). */
function copyLogs(written, ids, tag) {
  const copies = {};
  for (const id of ids) {
    copies[id] = tmp(`${tag}-n${id}`);
    cpSync(written[id], copies[id], { recursive: true });
  }
  return copies;
}

/**
 * One catch-up: nodes 1 and 2 from the written log, node 3 empty. With `apartValueBytes`, the
 * writers stop one instance apart first (issue 22): node 2 proposes one more value that node 1
 * accepts but is never taught (catchup-node.mjs, withhold), node 2 answers node 3's first ask
 * late so node 1 serves the stream, and node 3 is caught up only at node 2's now instance id:
 * node 1's stream ends one instance short of it (`streamEnd`).
 */
async function catchUp(written, { proposeWhileCatchingUp = false, server, apartValueBytes } = {}) {
  // Copies of the written logs: what node 1 proposes in this run is not in the next run's log.
  const d = copyLogs(written, [1, 2], 'run');
  const d3 = tmp('n3');
  const children = [1, 2, 3].map((id) =>
    fork(here('catchup-node.mjs'), [String(id), id === 3 ? d3 : d[id]], {
      stdio: 'inherit',
      execArgv:
        process.env.CATCHUP_PROF !== undefined
          ? ['--cpu-prof', `--cpu-prof-dir=${process.env.CATCHUP_PROF}`]
          : [],
    }),
  );
  try {
    const ports = {};
    await Promise.all(
      children.map(async (c, i) => (ports[i + 1] = (await once(c, 'message'))[0].port)),
    );
    await Promise.all(children.map((c) => request(c, { type: 'peers', peers: ports }, 'ok')));
    for (const c of children.slice(0, 2)) await request(c, { type: 'start', options }, 'started');
    // Let nodes 1 and 2 settle (the recovery no-op at start), then read the target.
    let target = -1;
    for (;;) {
      const [a, b] = await Promise.all(
        children.slice(0, 2).map((c) => request(c, { type: 'status' }, 'status')),
      );
      const now = a.status.instanceId;
      if (now === b.status.instanceId && now === target) break;
      target = now;
      await new Promise((r) => setTimeout(r, 200));
    }
    let streamEnd = 0;
    if (apartValueBytes !== undefined) {
      const answerLate = { to: 3, ms: APART_ANSWER_LATE_MS };
      await request(children[1], { type: 'withhold', from: 1, answerLate }, 'ok');
      const one = await request(
        children[1],
        { type: 'proposeOne', valueBytes: apartValueBytes },
        'proposedOne',
      );
      const n1 = (await request(children[0], { type: 'status' }, 'status')).status.instanceId;
      if (n1 !== target || one.instanceId !== target)
        throw new Error(`writers not one apart: node 1 at ${n1}, node 2 chose ${one.instanceId}`);
      streamEnd = target;
      target = one.instanceId + 1;
    }
    let idle;
    let busy;
    if (proposeWhileCatchingUp) {
      idle = await request(children[0], { type: 'propose', ms: 1000, concurrency: 1 }, 'proposed');
      target = (await request(children[0], { type: 'status' }, 'status')).status.instanceId;
    }
    const cpu = () =>
      Promise.all(children.slice(0, 2).map((c) => request(c, { type: 'cpu' }, 'cpu')));
    const cpuBefore = await cpu();
    const done = request(
      children[2],
      {
        type: 'start',
        targetInstanceId: target,
        streamEndInstanceId: streamEnd,
        options,
        askOnly: server,
      },
      'caughtUp',
    );
    if (proposeWhileCatchingUp) {
      // Node 1 proposes from node 3's start until node 3 has caught up: the rate over exactly
      // the catch-up.
      const proposing = request(
        children[0],
        { type: 'propose', ms: 600_000, concurrency: 1 },
        'proposed',
      );
      await done;
      children[0].send({ type: 'proposeStop' });
      busy = await proposing;
    }
    const result = await done;
    // The sender's CPU: the busier of nodes 1 and 2 (the one that streamed; node 1 also proposes).
    const cpuAfter = await cpu();
    const senderCpuMs = Math.max(...cpuAfter.map((c, i) => c.cpuMs - cpuBefore[i].cpuMs));
    return { ...result, senderCpuMs, target, streamEnd, idle, busy };
  } finally {
    for (const c of children) c.send({ type: 'stop' });
    await Promise.all(children.map((c) => once(c, 'exit')));
    for (const dir of [d[1], d[2], d3]) rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A baseline: node 1's records over a plain loopback socket, received either into batched
 * better-sqlite3 inserts (`receive`, sender `send`) or appended as they come to one plain file
 * (`receive-file`, the physical baselines, whose sender reads the records before it connects and
 * sends them from memory, `send-plain`, or from a plain file, `send-file`). Counts are the
 * sender's (records and value bytes).
 */
async function baseline(d, mode = 'receive', sendMode = 'send') {
  // The catch-up starts right after copying nodes 1 and 2's logs: ~2 × the values' bytes of
  // fresh page cache, kept while it runs. A baseline takes as much before its clock starts: the
  // file `send-file` writes first, plus a copy of node 1's log here (for the other senders, both
  // copies). Else the two would start from different page caches, and on this VM that alone
  // swung the ratio 2× either way (BENCHMARKS.md: the first touch of guest memory the kernel has
  // not used lately costs a host fault, so whichever transfer's file writes get the pages freed
  // last runs fast).
  const copies = Object.values(copyLogs(d, sendMode === 'send-file' ? [1] : [1, 2], 'copy'));
  const raw = tmp('raw');
  const receiver = fork(here('catchup-baseline.mjs'), [mode, raw], {
    stdio: 'inherit',
  });
  const [{ port }] = await once(receiver, 'message');
  const done = once(receiver, 'message');
  const sender = fork(here('catchup-baseline.mjs'), [sendMode, d[1], String(port)], {
    stdio: 'inherit',
  });
  const sent = once(sender, 'message');
  const exited = Promise.all([once(sender, 'exit'), once(receiver, 'exit')]);
  const [[result], [totals]] = await Promise.all([done, sent]);
  await exited;
  for (const dir of [raw, ...copies]) rmSync(dir, { recursive: true, force: true });
  return { ...result, count: totals.count, bytes: totals.bytes };
}

/**
 * propose() of `valueBytes` values on node 1 with `concurrency` callers, nodes 1 and 2 up (each a
 * process with its own SQLite log, fsync on as in production) and node 3 down, as PhxPaxos was
 * measured. Returns values/s over `PROPOSE_MS`.
 */
async function proposeRun(valueBytes, concurrency) {
  const d = { 1: tmp('p1'), 2: tmp('p2') };
  const children = [1, 2].map((id) =>
    fork(here('catchup-node.mjs'), [String(id), d[id]], {
      stdio: 'inherit',
      execArgv:
        process.env.CATCHUP_PROF !== undefined
          ? ['--cpu-prof', `--cpu-prof-dir=${process.env.CATCHUP_PROF}`]
          : [],
    }),
  );
  try {
    const ports = {};
    await Promise.all(
      children.map(async (c, i) => (ports[i + 1] = (await once(c, 'message'))[0].port)),
    );
    // Node 3's address is a port nobody listens on: the node is down.
    const down = net.createServer();
    await new Promise((r) => down.listen(0, '127.0.0.1', r));
    ports[3] = down.address().port;
    await new Promise((r) => down.close(r));
    await Promise.all(children.map((c) => request(c, { type: 'peers', peers: ports }, 'ok')));
    for (const c of children) await request(c, { type: 'start', options }, 'started');
    const { rate } = await request(
      children[0],
      { type: 'propose', ms: PROPOSE_MS, concurrency, valueBytes },
      'proposed',
    );
    return rate;
  } finally {
    for (const c of children) c.send({ type: 'stop' });
    await Promise.all(children.map((c) => once(c, 'exit')));
    for (const dir of [d[1], d[2]]) rmSync(dir, { recursive: true, force: true });
  }
}

/** The physical baseline from file: its rate, and its receiver's CPU and page faults per value. */
function physicalFileFigures(f) {
  return {
    physicalFileInstancesPerSec: f.count / (f.ms / 1000),
    physicalFileMBPerSec: f.bytes / 2 ** 20 / (f.ms / 1000),
    physicalFileReceiverCpuUsPerInstance: (f.cpuMs * 1000) / f.count,
    physicalFileReceiverUserUsPerInstance: (f.userMs * 1000) / f.count,
    physicalFileReceiverFaultsPerInstance: f.minorPageFaults / f.count,
  };
}

/** The quiet catch-up: its rate, and the learning (and sending) node's CPU per value. */
function quietFigures(quiet) {
  return {
    quietInstancesPerSec: quiet.instances / (quiet.readyToDoneMs / 1000),
    quietMBPerSec: quiet.learnedBytes / 2 ** 20 / (quiet.readyToDoneMs / 1000),
    // CPU per learned instance, from the quiet catch-up (node 1's proposals would count in the
    // sender's figure otherwise).
    receiverCpuUsPerInstance: (quiet.cpuMs * 1000) / quiet.instances,
    receiverUserUsPerInstance: (quiet.userMs * 1000) / quiet.instances,
    receiverFaultsPerInstance: quiet.minorPageFaults / quiet.instances,
    senderCpuUsPerInstance: (quiet.senderCpuMs * 1000) / quiet.instances,
    // Share of the batch frames read into a buffer a released frame gave back (issue 22).
    receiveBuffersReusedShare:
      quiet.receivePool === undefined
        ? 0
        : quiet.receivePool.reused /
          Math.max(1, quiet.receivePool.reused + quiet.receivePool.allocated),
  };
}

/**
 * Issue 22's rows: ready → caught up beside writers one instance apart, as a user times it, next
 * to the rate of the stream that served all but the last instance.
 */
function apartRows(label, runs) {
  const m = (k) => median(runs.map((x) => x[k]));
  const what = `catch-up ${label}, writers one instance apart`;
  return [
    { name: `${what}: ready → caught up`, value: m('apartReadyToCaughtUpMs'), unit: 'ms' },
    {
      name: `${what}: ready → end of node 1's stream (one instance short)`,
      value: m('apartReadyToStreamEndMs'),
      unit: 'ms',
    },
    {
      name: `${what}: end to end (ready → caught up)`,
      value: m('apartInstancesPerSec'),
      unit: 'instances/s',
      ratio: m('apartInstancesPerSec') / m('apartStreamInstancesPerSec'),
      baseline: "node 1's stream (ready → its end)",
    },
    {
      name: `${what}: end to end (ready → caught up)`,
      value: m('apartMBPerSec'),
      unit: 'MB/s',
      ratio: m('apartMBPerSec') / m('apartStreamMBPerSec'),
      baseline: "node 1's stream (ready → its end)",
    },
    { name: `${what}: stall re-asks`, value: m('apartStalls'), unit: 'stalls' },
  ];
}

const rows = [];
const raw = {};
if (PROPOSE_MS > 0) {
  const runs = [];
  for (let r = 0; r < RUNS; r++) {
    const valuesPerSec = await proposeRun(100 * 1024, 100);
    const run = { valuesPerSec, MBPerSec: (valuesPerSec * 100 * 1024) / 2 ** 20 };
    console.log('propose 100 KiB', JSON.stringify(run));
    runs.push(run);
  }
  raw['propose 100 KiB'] = runs;
  const v = median(runs.map((x) => x.valuesPerSec));
  rows.push({
    name: 'propose 100 KiB, 2 of 3 nodes up, 100 callers',
    value: v,
    unit: 'values/s',
    ratio: v / PHXPAXOS_PROPOSE_100K_PER_SEC,
    baseline: `PhxPaxos here (${PHXPAXOS_PROPOSE_100K_PER_SEC}/s, BASELINES.md)`,
  });
}
for (const [label, count, valueBytes] of [
  ['100 B', SMALL, 100],
  ['100 KiB', LARGE, 100 * 1024],
]) {
  if (count === 0) continue;
  const t0 = performance.now();
  const d = await writeLog(count, valueBytes);
  console.log(
    `${label}: wrote ${count} values through propose in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  const runs = [];
  for (let r = 0; r < RUNS; r++) {
    if (QUIET_ONLY) {
      const f = await baseline(d, 'receive-file', 'send-file');
      const quiet = await catchUp(d);
      const run = {
        ...physicalFileFigures(f),
        ...quietFigures(quiet),
      };
      console.log(label, JSON.stringify(run));
      runs.push(run);
      continue;
    }
    // Writers one instance apart: ready → caught up (node 2's now id) beside node 1's stream.
    const a = await catchUp(d, { apartValueBytes: valueBytes });
    const apart = {
      apartReadyToCaughtUpMs: a.readyToDoneMs,
      apartReadyToStreamEndMs: a.readyToStreamEndMs,
      apartStreamInstancesPerSec: a.streamEnd / (a.readyToStreamEndMs / 1000),
      apartStreamMBPerSec: (a.streamEnd * valueBytes) / 2 ** 20 / (a.readyToStreamEndMs / 1000),
      apartInstancesPerSec: a.instances / (a.readyToDoneMs / 1000),
      apartMBPerSec: (a.instances * valueBytes) / 2 ** 20 / (a.readyToDoneMs / 1000),
      apartStalls: a.counters.stalls,
      apartAsksToPeerAhead: a.counters.asksToPeerAhead,
      apartReadyToFirstMs: a.readyToFirstMs,
    };
    if (APART_ONLY) {
      console.log(label, JSON.stringify(apart));
      runs.push(apart);
      continue;
    }
    const b = BASELINES ? await baseline(d) : undefined;
    const p = BASELINES ? await baseline(d, 'receive-file', 'send-plain') : undefined;
    const f = BASELINES ? await baseline(d, 'receive-file', 'send-file') : undefined;
    // Either peer may serve node 3 (the first to answer its ask wins); both are on the commit
    // path (node 3 cannot accept until it has caught up), but only node 1 also proposes. Each
    // run measures both: node 2 serving, then node 1 serving (the order alternates by run).
    const order = r % 2 === 0 ? [2, 1] : [1, 2];
    const byServer = {};
    for (const server of order)
      byServer[server] = await catchUp(d, { proposeWhileCatchingUp: true, server });
    const perServer = (c) => ({
      fromNodeId: c.fromNodeId,
      instancesPerSec: c.instances / (c.readyToDoneMs / 1000),
      MBPerSec: c.learnedBytes / 2 ** 20 / (c.readyToDoneMs / 1000),
      readyToFirstMs: c.readyToFirstMs,
      readyToDoneMs: c.readyToDoneMs,
      maxRssMiB: c.maxRssMiB,
      idleCommitsPerSec: c.idle.rate,
      catchUpCommitsPerSec: c.busy.rate,
      commitRatio: c.busy.rate / c.idle.rate,
      catchUpCommits: c.busy.commits,
      catchUpWindowMs: c.busy.ms,
      idleCommitP50Ms: c.idle.p50Ms,
      catchUpCommitP50Ms: c.busy.p50Ms,
      catchUpCommitP99Ms: c.busy.p99Ms,
      catchUpCommitMaxMs: c.busy.maxMs,
      instances: c.instances,
      counters: c.counters,
    });
    // The stream alone (no proposals): what the catch-up can do when the group is quiet.
    const quiet = await catchUp(d);
    const s1 = perServer(byServer[1]);
    const s2 = perServer(byServer[2]);
    const run = {
      ...(b && {
        baselineInstancesPerSec: b.count / (b.ms / 1000),
        baselineMBPerSec: b.bytes / 2 ** 20 / (b.ms / 1000),
      }),
      ...(p && {
        physicalInstancesPerSec: p.count / (p.ms / 1000),
        physicalMBPerSec: p.bytes / 2 ** 20 / (p.ms / 1000),
        physicalReceiverCpuUsPerInstance: (p.cpuMs * 1000) / p.count,
      }),
      ...(f && physicalFileFigures(f)),
      ...quietFigures(quiet),
      // The stream while node 1 proposes: the mean of the two catch-ups of this run.
      instancesPerSec: (s1.instancesPerSec + s2.instancesPerSec) / 2,
      MBPerSec: (s1.MBPerSec + s2.MBPerSec) / 2,
      readyToFirstMs: (s1.readyToFirstMs + s2.readyToFirstMs) / 2,
      maxRssMiB: Math.max(s1.maxRssMiB, s2.maxRssMiB),
      // The commit rate over both catch-ups of the run (commits / time), against idle.
      commitRatio:
        (s1.catchUpCommits + s2.catchUpCommits) /
        ((s1.catchUpWindowMs + s2.catchUpWindowMs) / 1000) /
        ((s1.idleCommitsPerSec + s2.idleCommitsPerSec) / 2),
      idleCommitsPerSec: (s1.idleCommitsPerSec + s2.idleCommitsPerSec) / 2,
      servedBy1: s1,
      servedBy2: s2,
      ...apart,
    };
    console.log(label, JSON.stringify(run));
    runs.push(run);
  }
  raw[label] = runs;
  if (QUIET_ONLY) {
    const m = (k) => median(runs.map((x) => x[k]));
    rows.push(
      {
        name: `catch-up ${label}: stream, group quiet`,
        value: m('quietMBPerSec'),
        unit: 'MB/s',
        ratio: m('quietMBPerSec') / m('physicalFileMBPerSec'),
        baseline: 'physical (from file)',
      },
      {
        name: `catch-up ${label}: receiver CPU per instance, group quiet`,
        value: m('receiverCpuUsPerInstance'),
        unit: 'µs',
        ratio: m('receiverCpuUsPerInstance') / m('physicalFileReceiverCpuUsPerInstance'),
        baseline: 'physical (from file) receiver CPU per instance',
      },
    );
    continue;
  }
  rows.push(...apartRows(label, runs));
  if (APART_ONLY) continue;
  const m = (k) => median(runs.map((x) => x[k]));
  const ms = (server, k) => median(runs.map((x) => x[`servedBy${server}`][k]));
  // A stream row, with its ratio to a baseline of the same run when the baselines ran.
  const stream = (what, key, unit, baselineKey, baseline) => ({
    name: `catch-up ${label}: stream, ${what}`,
    value: m(key),
    unit,
    ...(BASELINES && { ratio: m(key) / m(baselineKey), baseline }),
  });
  const INSERTS = 'raw socket + batched inserts';
  const PHYSICAL = 'physical (from memory): raw socket + plain file append';
  const PHYSICAL_FILE = 'physical (from file): file read + raw socket + plain file append';
  rows.push(
    stream(
      'group quiet',
      'quietInstancesPerSec',
      'instances/s',
      'baselineInstancesPerSec',
      INSERTS,
    ),
    stream('group quiet', 'quietMBPerSec', 'MB/s', 'physicalMBPerSec', PHYSICAL),
    ...(BASELINES
      ? [stream('group quiet', 'quietMBPerSec', 'MB/s', 'physicalFileMBPerSec', PHYSICAL_FILE)]
      : []),
    stream(
      'node 1 proposing',
      'instancesPerSec',
      'instances/s',
      'baselineInstancesPerSec',
      INSERTS,
    ),
    stream('node 1 proposing', 'MBPerSec', 'MB/s', 'baselineMBPerSec', INSERTS),
  );
  if (BASELINES)
    rows.push(
      stream('node 1 proposing', 'MBPerSec', 'MB/s', 'physicalMBPerSec', PHYSICAL),
      {
        name: `catch-up ${label}: baseline`,
        value: m('baselineInstancesPerSec'),
        unit: 'instances/s',
      },
      {
        name: `catch-up ${label}: baseline`,
        value: m('baselineMBPerSec'),
        unit: 'MB/s',
      },
      {
        name: `catch-up ${label}: physical baseline`,
        value: m('physicalMBPerSec'),
        unit: 'MB/s',
      },
      {
        name: `catch-up ${label}: physical baseline`,
        value: m('physicalInstancesPerSec'),
        unit: 'instances/s',
      },
      {
        name: `catch-up ${label}: physical baseline, from file`,
        value: m('physicalFileMBPerSec'),
        unit: 'MB/s',
      },
      {
        name: `catch-up ${label}: physical baseline, from file`,
        value: m('physicalFileInstancesPerSec'),
        unit: 'instances/s',
      },
      {
        name: `catch-up ${label}: physical baseline, from file: receiver CPU per instance`,
        value: m('physicalFileReceiverCpuUsPerInstance'),
        unit: 'µs',
      },
      {
        name: `catch-up ${label}: physical baseline, from memory: receiver CPU per instance`,
        value: m('physicalReceiverCpuUsPerInstance'),
        unit: 'µs',
      },
    );
  rows.push(
    { name: `catch-up ${label}: ready → first value`, value: m('readyToFirstMs'), unit: 'ms' },
    { name: `catch-up ${label}: node 3 peak RSS`, value: m('maxRssMiB'), unit: 'MiB' },
    {
      name: `catch-up ${label}: receiver CPU per instance, group quiet`,
      value: m('receiverCpuUsPerInstance'),
      unit: 'µs',
      // The learning node is CPU-bound: its CPU per value against the physical receiver's.
      ...(BASELINES && {
        ratio: m('receiverCpuUsPerInstance') / m('physicalFileReceiverCpuUsPerInstance'),
        baseline: 'physical (from file) receiver CPU per instance',
      }),
    },
    {
      name: `catch-up ${label}: sender CPU per instance, group quiet`,
      value: m('senderCpuUsPerInstance'),
      unit: 'µs',
    },
    {
      name: `commits/s on node 1 during the ${label} catch-up`,
      value: m('commitRatio') * m('idleCommitsPerSec'),
      unit: 'commits/s',
      ratio: m('commitRatio'),
      baseline: 'idle commit rate (both servers)',
    },
  );
  for (const server of [1, 2]) {
    rows.push({
      name: `commits/s on node 1 during the ${label} catch-up, node ${server} serving`,
      value: ms(server, 'catchUpCommitsPerSec'),
      unit: 'commits/s',
      ratio: ms(server, 'commitRatio'),
      baseline: 'idle commit rate',
    });
    rows.push({
      name: `  commits counted (window ${ms(server, 'catchUpWindowMs').toFixed(0)} ms), p50/p99 latency ${ms(server, 'catchUpCommitP50Ms').toFixed(2)}/${ms(server, 'catchUpCommitP99Ms').toFixed(1)} ms`,
      value: ms(server, 'catchUpCommits'),
      unit: 'commits',
    });
  }
  rows.push({
    name: `commits/s on node 1, idle (p50 latency ${median(runs.map((x) => x.servedBy1.idleCommitP50Ms)).toFixed(2)} ms)`,
    value: m('idleCommitsPerSec'),
    unit: 'commits/s',
  });
}

report('catch-up', rows, { runs: raw });
for (const d of dirs) rmSync(d, { recursive: true, force: true });
process.exit(0);
