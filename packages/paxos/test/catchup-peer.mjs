// The other process of catchup-tcp.test.ts: node 1 of a 2-node cluster over TcpNetwork, opened
// on the SQLite log the test wrote. IPC: {port} out; {peerPort} in → {started}; {status} in →
// {instanceId}; {stop} in → exits.
import { TcpNetwork } from '@tspaxos/transport/tcp';
import { SqliteLogStore } from '@tspaxos/storage/sqlite';
import { startNode } from '../dist/internal.js';
import { realRandom, realScheduler } from '../dist/node.js';

const dataDir = process.argv[2];
const network = new TcpNetwork({
  nodeId: 1,
  clusterId: 'catchup-test',
  listen: { host: '127.0.0.1', port: 0 },
});
const { port } = await network.start();
process.send({ type: 'listening', port });
let node;
process.on('message', async (m) => {
  if (m.type === 'peer') {
    network.addPeer(2, { host: '127.0.0.1', port: m.port });
    node = await startNode({
      nodeId: 1,
      cluster: [1, 2],
      groups: 1,
      store: SqliteLogStore.open(dataDir),
      network,
      scheduler: realScheduler(),
      random: realRandom(),
    });
    process.send({ type: 'started', instanceId: node.instanceId(0) });
  } else if (m.type === 'status') {
    process.send({ type: 'status', instanceId: node.instanceId(0) });
  } else if (m.type === 'stop') {
    await node.stop();
    process.send({ type: 'stopped' });
    process.exit(0);
  }
});
