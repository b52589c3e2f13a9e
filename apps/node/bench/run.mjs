// End-to-end benchmark of the reference server: a 3-node local cluster of `tspaxos node`
// processes over HTTP, 100 B values, keep-alive clients (an http.Agent, http-client.mjs). Writes/s and p50/p99
// latency with 1, 16 and 64 concurrent clients, with --groups 1 and 8, all writes to node 1 (one
// proposer per group; master election is on, and node 1 need not be the master: the master adds
// a lease renewal every ~2.5 s. Writers spread over several nodes duel over each instance,
// ~25 writes/s). The
// baseline, measured in the same run and interleaved with each write measurement: local GETs of
// the same keys on the same node with the same clients (the HTTP + SQLite cost with no consensus).
// Then: the time a node restarted after missing BENCH_NODE_CATCHUP_WRITES writes takes to catch up.
// Lease reads (issue 13): GET ?consistent=lease on the master against plain local GETs and
// ?consistent=true (a barrier instance) with 16 clients, interleaved; and the failover time: from
// SIGKILL of the master to the first lease of the next one (polling /status of the survivors),
// median of BENCH_NODE_KILLS kills per lease in BENCH_NODE_FAILOVER_LEASES (ms; 0 = the default).
// Catch-up through a checkpoint (issue 12): node 3 stopped, BENCH_NODE_CATCHUP_WRITES writes,
// POST /admin/checkpoint and /admin/compact?keep=BENCH_NODE_COMPACT_KEEP on nodes 1 and 2, node
// 3's data dir wiped and the node started: the time until its instance id reaches theirs.
// Spread clients (issue 18): 64 clients writing round-robin over the 3 nodes (what a load balancer
// does; the others forward to the master) against the same 64 clients all on the master,
// interleaved, median of the runs: writes/s, p50, p99 and their ratios. Then the master SIGKILLed
// under 64 spread clients: the time from the kill until writes are acknowledged again (the first
// 200 of a request sent after the kill), and the requests that failed meanwhile (503: not
// applied; 504, refused or reset: the outcome of each is unknown to its client).
// Against etcd (issues 18 and 22, vs-etcd.mjs): every server cell side by side with a 3-member
// etcd cluster in the same run.
// BENCH_NODE_PARTS (comma list of etcd, writes, spread, spreadkill, lease, failover, checkpoint;
// default all) picks parts; BENCH_QUICK=1 shortens everything for development (knobs.mjs).
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { median, medianOf, report, envInteger } from '../../../scripts/bench-harness.mjs';
import { endpoint, httpClient, load, sendMany } from './http-client.mjs';
import { CATCH_UP_WRITES, MS, PART_RUNS, QUICK } from './knobs.mjs';
import {
  closeStatusClient,
  sleep,
  startCluster,
  startNode,
  statusOf,
  waitForMaster,
} from './tspaxos-cluster.mjs';
import { vsEtcd } from './vs-etcd.mjs';

const KILLS = envInteger('BENCH_NODE_KILLS', QUICK ? 1 : 3, { min: 1 });
const FAILOVER_LEASES = (process.env.BENCH_NODE_FAILOVER_LEASES ?? '2000,0').split(',').map(Number);
const COMPACT_KEEP = envInteger('BENCH_NODE_COMPACT_KEEP', 100);
const PARTS = new Set(
  (process.env.BENCH_NODE_PARTS ?? 'etcd,writes,spread,spreadkill,lease,failover,checkpoint').split(
    ',',
  ),
);
const VALUE = Buffer.alloc(100, 'x');
const rows = [];

/** A PUT of the 100 B value through a keep-alive client. */
const put = (client, url, key) =>
  client.request(endpoint(url), `/kv/${key}`, { method: 'PUT', body: VALUE });

/** Writes `n` values through `url` with 64 clients. */
const writeMany = (url, n, prefix) => sendMany(n, 64, (c, i) => put(c, url, `${prefix}${i}`));

if (PARTS.has('etcd')) await vsEtcd();

for (const groups of PARTS.has('writes') ? [1, 8] : []) {
  const cluster = await startCluster(groups);
  const url = cluster.urls[0];
  await load(16, (c, i) => put(c, url, `warm${i}`), 1000);
  for (const clients of [1, 16, 64]) {
    const writes = [];
    const reads = [];
    await medianOf(
      async (r) => {
        writes.push(await load(clients, (c, i) => put(c, url, `k${clients}-${r}-${i}`), MS));
        const target = endpoint(url);
        reads.push(
          await load(clients, (c, i) => c.request(target, `/kv/k${clients}-${r}-${i}`), MS, {
            allow404: true,
          }),
        );
        return 0;
      },
      { runs: PART_RUNS },
    );
    const w = median(writes.map((x) => x.rate));
    const g = median(reads.map((x) => x.rate));
    const label = `groups ${groups}, ${clients} client${clients > 1 ? 's' : ''}`;
    rows.push({
      name: `PUT ${label}`,
      value: w,
      unit: 'writes/s',
      ratio: w / g,
      baseline: 'local GETs, same clients',
    });
    rows.push({ name: `PUT ${label}: p50`, value: median(writes.map((x) => x.p50)), unit: 'ms' });
    rows.push({ name: `PUT ${label}: p99`, value: median(writes.map((x) => x.p99)), unit: 'ms' });
    rows.push({ name: `GET ${label} (baseline)`, value: g, unit: 'reads/s' });
  }
  if (groups === 1) {
    // Catch-up through the log: node 2 or 3, whichever is not the master (killing the master
    // would hold writes up for its lease), misses CATCH_UP_WRITES writes, restarts, learns them.
    const v = (await waitForMaster(cluster, [0, 1, 2])) === 2 ? 1 : 2;
    const victim = cluster.nodes[v];
    const before = (await statusOf(cluster.urls[v])).instanceId;
    victim.child.kill('SIGKILL');
    await victim.exited;
    await writeMany(url, CATCH_UP_WRITES, 'c');
    const target = (await statusOf(url)).instanceId;
    const t0 = performance.now();
    const again = startNode(cluster.argsOf(v + 1));
    cluster.nodes[v] = again;
    await again.ready;
    for (;;) {
      const s = await statusOf(cluster.urls[v]);
      if (s.instanceId >= target) break;
      await sleep(20);
    }
    const seconds = (performance.now() - t0) / 1000;
    const missed = target - before;
    rows.push({
      name: `restart + catch up after ${CATCH_UP_WRITES} writes, groups 1`,
      value: seconds * 1000,
      unit: 'ms',
    });
    rows.push({ name: 'instances missed by the restarted node', value: missed, unit: 'instances' });
    rows.push({
      name: 'catch-up rate (restart included)',
      value: missed / seconds,
      unit: 'instances/s',
    });
  }
  await cluster.stop();
}

/** The forwarding counters of every node of `cluster`, summed (/status `forwarding`). */
async function forwardingOf(cluster) {
  const sum = {};
  const client = httpClient(1);
  try {
    for (const url of cluster.urls) {
      const res = await client.request(endpoint(url), '/status');
      for (const [k, v] of Object.entries(JSON.parse(res.body.toString()).forwarding))
        sum[k] = (sum[k] ?? 0) + v;
    }
  } finally {
    client.close();
  }
  return sum;
}

const delta = (a, b) => Object.fromEntries(Object.keys(b).map((k) => [k, b[k] - (a[k] ?? 0)]));

if (PARTS.has('spread')) {
  const cluster = await startCluster(1);
  const m = await waitForMaster(cluster, [0, 1, 2]);
  const master = [];
  const spread = [];
  const fwd = []; // per spread cell: forwarding frames and local apply waits per forwarded write
  await medianOf(
    async (r) => {
      master.push(await load(64, (c, i) => put(c, cluster.urls[m], `m${r}-${i}`), MS));
      const before = await forwardingOf(cluster);
      spread.push(await load(64, (c, i) => put(c, cluster.urls[i % 3], `s${r}-${i}`), MS));
      const d = delta(before, await forwardingOf(cluster));
      fwd.push({
        framesPerWrite: (d.proposeFramesSent + d.replyFramesSent) / d.proposalsForwarded,
        waitedShare: d.repliesBeforeApplied / d.proposalsForwarded,
        waitMs: d.repliesBeforeApplied > 0 ? d.applyWaitMs / d.repliesBeforeApplied : 0,
      });
      return 0;
    },
    { runs: PART_RUNS },
  );
  const at = (list, field) => median(list.map((x) => x[field]));
  const base = 'the same 64 clients all on the master';
  rows.push({
    name: 'writes, 64 clients all on the master (baseline)',
    value: at(master, 'rate'),
    unit: 'writes/s',
  });
  rows.push({
    name: 'writes, 64 clients all on the master: p50',
    value: at(master, 'p50'),
    unit: 'ms',
  });
  rows.push({
    name: 'writes, 64 clients all on the master: p99',
    value: at(master, 'p99'),
    unit: 'ms',
  });
  rows.push({
    name: 'writes, 64 clients round-robin over 3 nodes (forwarded to the master)',
    value: at(spread, 'rate'),
    unit: 'writes/s',
    ratio: at(spread, 'rate') / at(master, 'rate'),
    baseline: base,
  });
  rows.push({
    name: 'spread: forwarding frames (both ways) per forwarded write',
    value: at(fwd, 'framesPerWrite'),
    unit: 'frames',
  });
  rows.push({
    name: "spread: forwarded writes whose reply came before the node's own apply",
    value: at(fwd, 'waitedShare') * 100,
    unit: '%',
  });
  rows.push({
    name: 'spread: their mean wait for the apply',
    value: at(fwd, 'waitMs'),
    unit: 'ms',
  });
  for (const p of ['p50', 'p99'])
    rows.push({
      name: `writes, 64 clients round-robin over 3 nodes: ${p}`,
      value: at(spread, p),
      unit: 'ms',
      ratio: at(spread, p) / at(master, p),
      baseline: `${p} of ${base}`,
    });
  await cluster.stop();
}

if (PARTS.has('spreadkill')) {
  const cluster = await startCluster(1, ['--master-lease-ms', '2000']);
  const m = await waitForMaster(cluster, [0, 1, 2]);
  let killedAt = Infinity;
  let flowingAt = Infinity;
  let stop = false;
  const failed = { unavailable: 0, unknown: 0, refused: 0 };
  let n = 0;
  const client = httpClient(64);
  const clients = Array.from({ length: 64 }, async (_, c) => {
    for (let k = c; !stop; k += 64) {
      const started = performance.now();
      try {
        const res = await put(client, cluster.urls[k % 3], `x${n++}`);
        if (res.ok) {
          if (started > killedAt) flowingAt = Math.min(flowingAt, performance.now());
        } else if (res.status === 503) failed.unavailable++;
        else failed.unknown++;
      } catch {
        failed.refused++; // the killed node: a refused connection, or a reset mid-request
        await sleep(20);
      }
    }
  });
  await sleep(3000);
  const before = { ...failed };
  cluster.nodes[m].child.kill('SIGKILL');
  killedAt = performance.now();
  while (flowingAt === Infinity && performance.now() - killedAt < 60_000) await sleep(20);
  await sleep(1000);
  stop = true;
  await Promise.all(clients);
  client.close();
  rows.push({
    name: 'master SIGKILLed under 64 spread clients (2 s lease): until writes are acknowledged again',
    value: flowingAt - killedAt,
    unit: 'ms',
  });
  rows.push({
    name: 'requests failed around the kill: 503 (not applied)',
    value: failed.unavailable - before.unavailable,
    unit: 'requests',
  });
  rows.push({
    name: 'requests failed around the kill: 504, refused or reset (outcome unknown to the client)',
    value: failed.unknown - before.unknown + failed.refused - before.refused,
    unit: 'requests',
  });
  await cluster.stop();
}

if (PARTS.has('lease')) {
  const cluster = await startCluster(1);
  const m = await waitForMaster(cluster, [0, 1, 2]);
  const url = cluster.urls[m];
  await writeMany(url, 1000, 'r');
  const modes = { local: [], lease: [], barrier: [] };
  const query = { local: '', lease: '?consistent=lease', barrier: '?consistent=true' };
  await medianOf(
    async () => {
      for (const mode of ['local', 'lease', 'barrier']) {
        const target = endpoint(url);
        modes[mode].push(
          await load(16, (c, i) => c.request(target, `/kv/r${i % 1000}${query[mode]}`), MS),
        );
      }
      return 0;
    },
    { runs: PART_RUNS },
  );
  const local = median(modes.local.map((x) => x.rate));
  for (const mode of ['local', 'lease', 'barrier']) {
    const rate = median(modes[mode].map((x) => x.rate));
    const name = `GET ?consistent=${mode === 'barrier' ? 'true (barrier)' : mode === 'lease' ? 'lease' : 'false (local)'} on the master, 16 clients`;
    rows.push(
      mode === 'local'
        ? { name: `${name} (baseline)`, value: rate, unit: 'reads/s' }
        : {
            name,
            value: rate,
            unit: 'reads/s',
            ratio: rate / local,
            baseline: 'local GETs, same clients',
          },
    );
    rows.push({ name: `${name}: p50`, value: median(modes[mode].map((x) => x.p50)), unit: 'ms' });
    rows.push({ name: `${name}: p99`, value: median(modes[mode].map((x) => x.p99)), unit: 'ms' });
  }
  await cluster.stop();
}

for (const lease of PARTS.has('failover') ? FAILOVER_LEASES : []) {
  const cluster = await startCluster(1, lease > 0 ? ['--master-lease-ms', String(lease)] : []);
  const times = [];
  for (let k = 0; k < KILLS; k++) {
    const m = await waitForMaster(cluster, [0, 1, 2]);
    const victim = cluster.nodes[m];
    victim.child.kill('SIGKILL');
    const t0 = performance.now();
    await victim.exited;
    await waitForMaster(
      cluster,
      [0, 1, 2].filter((i) => i !== m),
    );
    times.push(performance.now() - t0);
    const again = startNode(cluster.argsOf(m + 1));
    cluster.nodes[m] = again;
    await again.ready;
  }
  const label = lease > 0 ? `--master-lease-ms ${lease}` : 'default lease (10000 ms)';
  rows.push({
    name: `failover: SIGKILL of the master to the next master's lease, ${label}`,
    value: median(times),
    unit: 'ms',
    runs: times.map((t) => Math.round(t)),
  });
  await cluster.stop();
}

if (PARTS.has('checkpoint')) {
  const cluster = await startCluster(1);
  const third = cluster.nodes[2];
  third.child.kill('SIGKILL');
  await third.exited;
  await writeMany(cluster.urls[0], CATCH_UP_WRITES, 'p');
  const admin = httpClient(1);
  for (const url of cluster.urls.slice(0, 2)) {
    for (const path of ['/admin/checkpoint', `/admin/compact?keep=${COMPACT_KEEP}`]) {
      const res = await admin.request(endpoint(url), path, { method: 'POST' });
      if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${res.body}`);
    }
  }
  admin.close();
  const s1 = await statusOf(cluster.urls[0]);
  const target = s1.instanceId;
  rmSync(join(cluster.dir, 'node-3'), { recursive: true, force: true });
  const t0 = performance.now();
  const again = startNode(cluster.argsOf(3));
  cluster.nodes[2] = again;
  await again.ready;
  let s3;
  for (;;) {
    s3 = await statusOf(cluster.urls[2]);
    if (s3.instanceId >= target) break;
    await sleep(20);
  }
  const seconds = (performance.now() - t0) / 1000;
  if (s3.kv.checkpointInstanceId < s1.minChosenInstanceId - 1)
    throw new Error(`node 3 did not go through a checkpoint: ${JSON.stringify(s3.kv)}`);
  rows.push({
    name: `wipe + restart + catch up through a checkpoint after ${CATCH_UP_WRITES} writes, compact keep ${COMPACT_KEEP}`,
    value: seconds * 1000,
    unit: 'ms',
  });
  rows.push({ name: 'instances behind (checkpoint catch-up)', value: target, unit: 'instances' });
  rows.push({
    name: 'min chosen id on nodes 1, 2 (compacted)',
    value: s1.minChosenInstanceId,
    unit: 'instance',
  });
  await cluster.stop();
}

closeStatusClient();
if (rows.length > 0)
  report('node', rows, {
    note:
      'Writes: all to node 1 (one proposer per group; master election on, node 1 not necessarily the master). ' +
      'PhxPaxos reference: ~1,190 commits/s with 100 clients, one value per instance (issue 12).',
  });
