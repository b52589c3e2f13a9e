// One node of the catch-up benchmark (catchup.mjs): a PaxosNode over TcpNetwork with its own
// SQLite log in `dataDir`. The parent wires the addresses, starts the node, and asks it to report
// its catch-up or to propose for a while.
import { TcpNetwork } from '@tspaxos/transport/tcp';
import { createNode } from '../dist/node.js';

const nodeId = Number(process.argv[2]);
const dataDir = process.argv[3];
const network = new TcpNetwork({
  nodeId,
  clusterId: 'catchup-bench',
  listen: { host: '127.0.0.1', port: 0 },
});
const { port } = await network.start();
process.send({ type: 'listening', port });
let node;
let readyAt = 0;
if (process.env.CATCHUP_DEBUG) {
  const t = () => (performance.timeOrigin + performance.now()).toFixed(1);
  const onMessage = network.onMessage.bind(network);
  network.onMessage = (h) =>
    onMessage((f, g, m) => {
      if (m.kind === 'paxos' && [5, 6, 9, 10, 11].includes(m.msg.msgType))
        console.log(
          `${t()} n${nodeId} recv ${m.msg.msgType} from ${f} i=${m.msg.instanceId} batch=${m.msg.batch.length}`,
        );
      h(f, g, m);
    });
  const send = network.send.bind(network);
  network.send = (to, g, m) => {
    if (m.kind === 'paxos' && [5, 6, 9, 10, 11].includes(m.msg.msgType))
      console.log(
        `${t()} n${nodeId} send ${m.msg.msgType} to ${to} i=${m.msg.instanceId} batch=${m.msg.batch.length}`,
      );
    send(to, g, m);
  };
}
const counter = { smId: 10, execute() {} };

let stopProposing = false;

async function propose(ms, concurrency, valueBytes) {
  const value = new Uint8Array(valueBytes);
  const end = performance.now() + ms;
  let done = 0;
  stopProposing = false;
  const worker = async () => {
    while (performance.now() < end && !stopProposing) {
      await node.propose(0, value, { smId: 10 });
      done++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return done / ((performance.now() - t0) / 1000);
}

process.on('message', async (m) => {
  if (m.type === 'peers') {
    for (const [id, p] of Object.entries(m.peers))
      if (Number(id) !== nodeId) network.addPeer(Number(id), { host: '127.0.0.1', port: p });
    process.send({ type: 'ok' });
  } else if (m.type === 'start') {
    // Catch-up watch: the first learned value and the moment we reach the target.
    let firstAt;
    let doneSent = false;
    const target = m.targetInstanceId ?? 0;
    const t0 = performance.now();
    node = await createNode({
      nodeId,
      cluster: [1, 2, 3],
      groups: 1,
      dataDir,
      network,
      stateMachines: [counter],
      options: m.options ?? {},
      ...(process.env.CATCHUP_DEBUG
        ? {
            logger: (level, event, fields) =>
              console.log(
                `${performance.timeOrigin + performance.now()} n${nodeId} ${event} ${JSON.stringify(fields)}`,
              ),
          }
        : {}),
    });
    readyAt = performance.now();
    const cpuAtReady = process.cpuUsage();
    if (process.env.CATCHUP_DEBUG)
      console.log(`${(performance.timeOrigin + readyAt).toFixed(1)} n${nodeId} ready`);
    const check = (instanceId) => {
      if (doneSent || target === 0 || instanceId < target) return;
      doneSent = true;
      const doneAt = performance.now();
      const st = node.status(0);
      process.send({
        type: 'caughtUp',
        startMs: readyAt - t0,
        readyToFirstMs: (firstAt ?? doneAt) - readyAt,
        readyToDoneMs: doneAt - readyAt,
        instances: instanceId,
        learnedBytes: st.learner.lastCatchUp?.learnedBytes ?? st.learner.catchUp?.learnedBytes ?? 0,
        maxRssMiB: process.resourceUsage().maxRSS / 1024,
        cpu: process.cpuUsage(cpuAtReady),
        counters: st.learner.counters,
      });
    };
    node.on('learned', (e) => {
      if (firstAt === undefined && process.env.CATCHUP_DEBUG)
        console.log(
          `${(performance.timeOrigin + performance.now()).toFixed(1)} n${nodeId} first learned ${e.instanceId}`,
        );
      firstAt ??= performance.now();
      check(e.instanceId);
    });
    process.send({ type: 'started', instanceId: node.instanceId(0) });
    check(node.instanceId(0));
  } else if (m.type === 'propose') {
    const rate = await propose(m.ms, m.concurrency, m.valueBytes ?? 100);
    process.send({ type: 'proposed', rate, instanceId: node.instanceId(0) });
  } else if (m.type === 'proposeStop') {
    stopProposing = true;
  } else if (m.type === 'status') {
    process.send({ type: 'status', status: node.status(0), cpu: process.cpuUsage() });
  } else if (m.type === 'stop') {
    await node?.stop();
    if (!node) await network.close();
    process.exit(0);
  }
});
