// One node of the 3-process TCP benchmarks (run.mjs, phxpaxos.mjs): a PaxosNode over TcpNetwork
// and SqliteLogStore. The parent sends its cluster addresses (a node that is down gets a port
// nobody listens on), then asks node 1 to propose for a while.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteLogStore } from '@tspaxos/storage/sqlite';
import { TcpNetwork } from '@tspaxos/transport/tcp';
import { startNode } from '../dist/internal.js';
import { realRandom, realScheduler } from '../dist/node.js';

const nodeId = Number(process.argv[2]);
const network = new TcpNetwork({
  nodeId,
  clusterId: 'bench',
  listen: { host: '127.0.0.1', port: 0 },
});
const { port } = await network.start();
process.send({ type: 'listening', port });
let node;
let dataDir;
// The parent is gone (killed, or crashed): nobody will send 'stop'.
process.on('disconnect', () => {
  if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
  process.exit(1);
});
const counter = {
  smId: 10,
  applied: 0,
  execute() {
    this.applied++;
  },
};

process.on('message', async (m) => {
  if (m.type === 'peers') {
    for (const [id, p] of Object.entries(m.peers))
      if (Number(id) !== nodeId) network.addPeer(Number(id), { host: '127.0.0.1', port: p });
    dataDir = mkdtempSync(join(tmpdir(), `tspaxos-bench-n${nodeId}-`));
    node = await startNode({
      nodeId,
      cluster: [1, 2, 3],
      groups: 1,
      store: SqliteLogStore.open(dataDir, m.storeOptions ?? {}),
      network,
      scheduler: realScheduler(),
      random: realRandom(),
      stateMachines: [counter],
      options: { batchMaxValues: m.batchMaxValues, ...m.options },
    });
    process.send({ type: 'started' });
  } else if (m.type === 'run') {
    const { batch, concurrency, ms } = m;
    const value = new Uint8Array(m.valueBytes ?? 100);
    const end = performance.now() + ms;
    let done = 0;
    const instances = new Set();
    const latencies = [];
    // A refused or timed-out value is counted by its code (PhxPaxos's bench counts its return
    // codes the same way); anything without a code is a bug and fails the run.
    const failures = {};
    const worker = async () => {
      while (performance.now() < end) {
        const s = performance.now();
        try {
          const r = batch
            ? await node.batchPropose(0, value, { smId: 10 })
            : await node.propose(0, value, { smId: 10 });
          instances.add(r.instanceId);
          latencies.push(performance.now() - s);
          done++;
        } catch (error) {
          if (typeof error?.code !== 'string') throw error;
          failures[error.code] = (failures[error.code] ?? 0) + 1;
        }
      }
    };
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    await Promise.all(Array.from({ length: concurrency }, worker));
    const s = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    latencies.sort((a, b) => a - b);
    const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
    process.send({
      type: 'result',
      values: done / s,
      instances: instances.size / s,
      valuesPerInstance: instances.size === 0 ? 0 : done / instances.size,
      p50Ms: at(0.5),
      p99Ms: at(0.99),
      failures,
      instanceCount: instances.size,
      cpuMs: (cpu.user + cpu.system) / 1000,
    });
  } else if (m.type === 'cpu') {
    // CPU of this process (user + system, ms): the parent takes it before and after a run.
    const u = process.cpuUsage();
    process.send({ type: 'cpu', cpuMs: (u.user + u.system) / 1000 });
  } else if (m.type === 'stop') {
    await node?.stop();
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
    process.exit(0);
  }
});
