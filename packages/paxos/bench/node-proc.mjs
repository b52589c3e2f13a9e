// One node of the 3-process TCP benchmark: a PaxosNode over TcpNetwork and SqliteLogStore.
// The parent sends its cluster addresses, then asks node 1 to propose for a while.
import { mkdtempSync } from 'node:fs';
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
    node = await startNode({
      nodeId,
      cluster: [1, 2, 3],
      groups: 1,
      store: SqliteLogStore.open(mkdtempSync(join(tmpdir(), `tspaxos-bench-n${nodeId}-`))),
      network,
      scheduler: realScheduler(),
      random: realRandom(),
      stateMachines: [counter],
      options: { batchMaxValues: m.batchMaxValues },
    });
    process.send({ type: 'started' });
  } else if (m.type === 'run') {
    const { batch, concurrency, ms } = m;
    const value = new Uint8Array(100);
    const end = performance.now() + ms;
    let done = 0;
    const instances = new Set();
    const worker = async () => {
      while (performance.now() < end) {
        const r = batch
          ? await node.batchPropose(0, value, { smId: 10 })
          : await node.propose(0, value, { smId: 10 });
        instances.add(r.instanceId);
        done++;
      }
    };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: concurrency }, worker));
    const s = (performance.now() - t0) / 1000;
    process.send({ type: 'result', values: done / s, instances: instances.size / s });
  } else if (m.type === 'stop') {
    await node?.stop();
    process.exit(0);
  }
});
