// @tspaxos/paxos benchmark: commits/s of a 3-node group with 100 B values, with propose() and
// with batchPropose(), (a) in one process over MemoryNetwork with real SqliteLogStores and (b)
// across 3 processes over TcpNetwork on loopback; each as a ratio to the storage's own
// sequential sync:true write rate measured in the same run (what an fsync-bound log can reach).
// Every configuration also reports values per instance: batchPropose runs once with at most 10
// values per instance (the packing of PhxPaxos's BatchPropose figure, BASELINES.md) and once with
// our default (batchMaxValues 256), so each is compared with like.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteLogStore } from '@tspaxos/storage/sqlite';
import { SeededRandomSource } from '@tspaxos/core';
import { MemoryNetwork } from '@tspaxos/transport';
import { startNode } from '../dist/internal.js';
import { realRandom, realScheduler } from '../dist/node.js';
import { envInteger, medianOf, report } from '../../../scripts/bench-harness.mjs';
import { pumpMemoryNetwork } from './pump.mjs';

const MS = envInteger('BENCH_PAXOS_MS', 2000, { min: 1 });
const dirs = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'tspaxos-paxos-bench-'));
  dirs.push(d);
  return d;
};
const value = new Uint8Array(100);
const rows = [];

// Baseline: sequential fsync-bound writes of the storage itself.
const syncRate = await medianOf(async () => {
  const store = SqliteLogStore.open(tmp());
  const n = 300;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    await store.put(
      0,
      {
        instanceId: i,
        promiseId: 1,
        promiseNodeId: 1,
        acceptedId: 1,
        acceptedNodeId: 1,
        value,
        checksum: 0,
      },
      { sync: true },
    );
  }
  const s = (performance.now() - t0) / 1000;
  await store.close();
  return n / s;
});
rows.push({
  name: 'storage sync:true writes, sequential',
  value: syncRate,
  unit: 'writes/s',
  ratio: 1,
  baseline: 'sync write rate',
});

async function inProcess(batch, concurrency, batchMaxValues) {
  const net = new MemoryNetwork({ rng: new SeededRandomSource(1) });
  const stopPump = pumpMemoryNetwork(net);
  const counter = { smId: 10, execute() {} };
  const nodes = [];
  for (const id of [1, 2, 3]) {
    nodes.push(
      await startNode({
        nodeId: id,
        cluster: [1, 2, 3],
        groups: 1,
        store: SqliteLogStore.open(tmp()),
        network: net.endpoint(id),
        scheduler: realScheduler(),
        random: realRandom(),
        stateMachines: [counter],
        options: { batchMaxValues },
      }),
    );
  }
  const end = performance.now() + MS;
  let done = 0;
  const instances = new Set();
  const worker = async () => {
    while (performance.now() < end) {
      const r = batch
        ? await nodes[0].batchPropose(0, value, { smId: 10 })
        : await nodes[0].propose(0, value, { smId: 10 });
      instances.add(r.instanceId);
      done++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const s = (performance.now() - t0) / 1000;
  stopPump();
  for (const n of nodes) await n.stop();
  return { values: done / s, instances: instances.size / s };
}

async function overTcp(batch, concurrency, batchMaxValues) {
  const children = [1, 2, 3].map((id) =>
    fork(new URL('./node-proc.mjs', import.meta.url), [String(id)], { stdio: 'inherit' }),
  );
  const ports = {};
  await Promise.all(
    children.map(async (c, i) => (ports[i + 1] = (await once(c, 'message'))[0].port)),
  );
  for (const c of children) c.send({ type: 'peers', peers: ports, batchMaxValues });
  await Promise.all(children.map((c) => once(c, 'message')));
  children[0].send({ type: 'run', batch, concurrency, ms: MS });
  const [result] = await once(children[0], 'message');
  for (const c of children) c.send({ type: 'stop' });
  await Promise.all(children.map((c) => once(c, 'exit')));
  return result;
}

for (const [where, run] of [
  ['1 process, MemoryNetwork', inProcess],
  ['3 processes, TcpNetwork', overTcp],
]) {
  for (const [batch, concurrency, batchMaxValues, label] of [
    [false, 1, 256, 'propose, 1 caller'],
    [false, 64, 256, 'propose, 64 callers'],
    [true, 64, 10, 'batchPropose ≤10/instance, 64 callers'],
    [true, 256, 256, 'batchPropose ≤256/instance (default), 256 callers'],
  ]) {
    const results = [];
    const v = await medianOf(async () => {
      const r = await run(batch, concurrency, batchMaxValues);
      results.push(r);
      return r.values;
    });
    const inst = results.map((r) => r.instances).sort((a, b) => a - b)[results.length >> 1];
    const perInstance = results.map((r) => r.values / r.instances).sort((a, b) => a - b)[
      results.length >> 1
    ];
    rows.push({
      name: `${where}: ${label}`,
      value: v,
      unit: 'values/s',
      ratio: v / syncRate,
      baseline: 'sync write rate',
    });
    rows.push({
      name: `${where}: ${label} (instances)`,
      value: inst,
      unit: 'instances/s',
      ratio: inst / syncRate,
      baseline: 'sync write rate',
    });
    rows.push({
      name: `${where}: ${label} (values per instance)`,
      value: perInstance,
      unit: 'values/instance',
    });
  }
}

report('paxos', rows);
for (const d of dirs) rmSync(d, { recursive: true, force: true });
process.exit(0);
