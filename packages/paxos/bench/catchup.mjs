// Catch-up benchmark (issue 9): three processes over TcpNetwork on loopback, each node with its
// own SQLite log. Nodes 1 and 2 hold a log written through propose() while node 3 was down; node
// 3 starts empty and learns it. Reported: instances/s and MB/s of the stream (node 3 ready →
// caught up), time from ready to the first learned value, node 3's peak RSS, and the group's own
// commit rate on node 1 while node 3 catches up, against the same with no catch-up running.
// Baseline, interleaved in the same run: the same record bytes over a plain loopback socket
// into batched better-sqlite3 inserts (catchup-baseline.mjs), and the physical baseline: the same
// bytes from memory over a plain loopback socket appended to a plain file. Then propose() of
// 100 KiB values, 2 of 3 nodes up, 100 callers, against PhxPaxos's figure on this machine.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteLogStore } from '@tspaxos/storage/sqlite';
import { MemoryNetwork, SeededRng } from '@tspaxos/transport';
import { createNode, realRandom, realScheduler } from '../dist/node.js';
import { envInteger, median, report } from '../../../scripts/bench-harness.mjs';
import { pumpMemoryNetwork } from './pump.mjs';

const RUNS = envInteger('BENCH_RUNS', 5, { min: 1 });
const SMALL = envInteger('BENCH_CATCHUP_SMALL', 50_000);
const LARGE = envInteger('BENCH_CATCHUP_LARGE', 2_000);
/** Length of one propose measurement (ms); 0 skips the propose suite. */
const PROPOSE_MS = envInteger('BENCH_CATCHUP_PROPOSE_MS', 5_000);
/** PhxPaxos on this machine (BASELINES.md, 2026-11-30): 100 KB values, 2 of 3 nodes, 100 callers. */
const PHXPAXOS_PROPOSE_100K_PER_SEC = 440;
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
  const net = new MemoryNetwork({ rng: new SeededRng(1) });
  const stopPump = pumpMemoryNetwork(net);
  const d = { 1: tmp('n1'), 2: tmp('n2') };
  const nodes = [];
  for (const id of [1, 2]) {
    nodes.push(
      await createNode({
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

/** One catch-up: nodes 1 and 2 from the written log, node 3 empty. */
async function catchUp(written, { proposeWhileCatchingUp = false } = {}) {
  // Copies of the written logs: what node 1 proposes in this run is not in the next run's log.
  const d = {};
  for (const id of [1, 2]) {
    d[id] = tmp(`run-n${id}`);
    cpSync(written[id], d[id], { recursive: true });
  }
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
    let idleRate;
    let busyRate;
    if (proposeWhileCatchingUp) {
      idleRate = (
        await request(children[0], { type: 'propose', ms: 1000, concurrency: 1 }, 'proposed')
      ).rate;
      target = (await request(children[0], { type: 'status' }, 'status')).status.instanceId;
    }
    const cpuBefore = await Promise.all(
      children.slice(0, 2).map(async (c) => (await request(c, { type: 'status' }, 'status')).cpu),
    );
    const done = request(
      children[2],
      { type: 'start', targetInstanceId: target, options },
      'caughtUp',
    );
    if (proposeWhileCatchingUp) {
      // Node 1 proposes from node 3's start until node 3 has caught up: the rate over exactly
      // the catch-up.
      const busy = request(
        children[0],
        { type: 'propose', ms: 600_000, concurrency: 1 },
        'proposed',
      );
      await done;
      children[0].send({ type: 'proposeStop' });
      busyRate = (await busy).rate;
    }
    const result = await done;
    // CPU (user + system, ms) each node spent from node 3's start to its catch-up.
    const cpuAfter = await Promise.all(
      children.slice(0, 2).map(async (c) => (await request(c, { type: 'status' }, 'status')).cpu),
    );
    const ms = (u) => Math.round((u.user + u.system) / 1000);
    const cpuMs = {
      node1: ms(cpuAfter[0]) - ms(cpuBefore[0]),
      node2: ms(cpuAfter[1]) - ms(cpuBefore[1]),
      node3: ms(result.cpu),
    };
    return { ...result, target, idleRate, busyRate, cpuMs };
  } finally {
    for (const c of children) c.send({ type: 'stop' });
    await Promise.all(children.map((c) => once(c, 'exit')));
    for (const dir of [d[1], d[2], d3]) rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A baseline: node 1's records over a plain loopback socket, received either into batched
 * better-sqlite3 inserts (`receive`) or appended as they come to one plain file (`receive-file`,
 * the physical baseline, whose sender reads the records before it connects). Counts are the
 * sender's (records and value bytes).
 */
async function baseline(d, mode = 'receive') {
  const raw = tmp('raw');
  const receiver = fork(here('catchup-baseline.mjs'), [mode, raw], {
    stdio: 'inherit',
  });
  const [{ port }] = await once(receiver, 'message');
  const done = once(receiver, 'message');
  const sendMode = mode === 'receive-file' ? 'send-plain' : 'send';
  const sender = fork(here('catchup-baseline.mjs'), [sendMode, d[1], String(port)], {
    stdio: 'inherit',
  });
  const sent = once(sender, 'message');
  const exited = Promise.all([once(sender, 'exit'), once(receiver, 'exit')]);
  const [[result], [totals]] = await Promise.all([done, sent]);
  await exited;
  rmSync(raw, { recursive: true, force: true });
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
    const b = await baseline(d);
    const p = await baseline(d, 'receive-file');
    const c = await catchUp(d, { proposeWhileCatchingUp: true });
    const run = {
      baselineInstancesPerSec: b.count / (b.ms / 1000),
      baselineMBPerSec: b.bytes / 2 ** 20 / (b.ms / 1000),
      physicalInstancesPerSec: p.count / (p.ms / 1000),
      physicalMBPerSec: p.bytes / 2 ** 20 / (p.ms / 1000),
      instancesPerSec: c.instances / (c.readyToDoneMs / 1000),
      MBPerSec: c.learnedBytes / 2 ** 20 / (c.readyToDoneMs / 1000),
      readyToFirstMs: c.readyToFirstMs,
      readyToDoneMs: c.readyToDoneMs,
      maxRssMiB: c.maxRssMiB,
      idleCommitsPerSec: c.idleRate,
      catchUpCommitsPerSec: c.busyRate,
      instances: c.instances,
      cpuMs: c.cpuMs,
      counters: c.counters,
    };
    console.log(label, JSON.stringify(run));
    runs.push(run);
  }
  raw[label] = runs;
  const m = (k) => median(runs.map((x) => x[k]));
  rows.push(
    {
      name: `catch-up ${label}: stream`,
      value: m('instancesPerSec'),
      unit: 'instances/s',
      ratio: m('instancesPerSec') / m('baselineInstancesPerSec'),
      baseline: 'raw socket + batched inserts',
    },
    {
      name: `catch-up ${label}: stream`,
      value: m('MBPerSec'),
      unit: 'MB/s',
      ratio: m('MBPerSec') / m('baselineMBPerSec'),
      baseline: 'raw socket + batched inserts',
    },
    {
      name: `catch-up ${label}: stream`,
      value: m('MBPerSec'),
      unit: 'MB/s',
      ratio: m('MBPerSec') / m('physicalMBPerSec'),
      baseline: 'physical: raw socket + plain file append',
    },
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
    { name: `catch-up ${label}: ready → first value`, value: m('readyToFirstMs'), unit: 'ms' },
    { name: `catch-up ${label}: node 3 peak RSS`, value: m('maxRssMiB'), unit: 'MiB' },
  );
  {
    rows.push({
      name: `commits/s on node 1 during the ${label} catch-up`,
      value: m('catchUpCommitsPerSec'),
      unit: 'commits/s',
      ratio: m('catchUpCommitsPerSec') / m('idleCommitsPerSec'),
      baseline: 'idle commit rate',
    });
    rows.push({
      name: `commits/s on node 1, idle`,
      value: m('idleCommitsPerSec'),
      unit: 'commits/s',
    });
  }
}

report('catch-up', rows, { runs: raw });
for (const d of dirs) rmSync(d, { recursive: true, force: true });
process.exit(0);
