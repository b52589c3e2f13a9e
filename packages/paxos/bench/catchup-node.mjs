// One node of the catch-up benchmark (catchup.mjs): a PaxosNode over TcpNetwork with its own
// SQLite log in `dataDir`. The parent wires the addresses, starts the node, and asks it to report
// its catch-up or to propose for a while.
import { TcpNetwork } from '@tspaxos/transport/tcp';
import { SqliteLogStore } from '@tspaxos/storage/sqlite';
import { startNode } from '../dist/internal.js';
import { realRandom, realScheduler } from '../dist/node.js';
import { envInteger } from '../../../scripts/bench-harness.mjs';

const nodeId = Number(process.argv[2]);
const dataDir = process.argv[3];
/**
 * Receive buffers kept for reuse (TcpNetwork receivePoolBytes; 0: none, as before issue 22's
 * FramePool); unset: the transport's default.
 */
const POOL_BYTES = envInteger('BENCH_CATCHUP_POOL_BYTES', -1);
const network = new TcpNetwork({
  nodeId,
  clusterId: 'catchup-bench',
  listen: { host: '127.0.0.1', port: 0 },
  ...(POOL_BYTES >= 0 && { receivePoolBytes: POOL_BYTES }),
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
// The catch-up's server, chosen by the parent (`askOnly`): node 3's AskforLearn (type 5) goes to
// that node only, so each run measures a known sender instead of whichever peer answered first.
let askOnly;
{
  const send = network.send.bind(network);
  network.send = (to, g, m) => {
    if (askOnly !== undefined && to !== askOnly && m.kind === 'paxos' && m.msg.msgType === 5)
      return;
    send(to, g, m);
  };
}
// Writers one instance apart (catchup.mjs, apartCatchUp; issue 22). `withhold`: this node sends
// nothing to that node that could teach it an instance (ProposerSendSuccess 7, SendLearnValue 6,
// SendNowInstanceID 9), so what it proposes next stays its own. `answerLate`: its answer to that
// node's first ask (SendNowInstanceID for instance 0) leaves `ms` late, so the other writer is
// confirmed first, as in the issue (the node one behind served the stream).
let withholdFrom;
let answerLate;
{
  const send = network.send.bind(network);
  network.send = (to, g, m) => {
    const type = m.kind === 'paxos' ? m.msg.msgType : 0;
    if (to === withholdFrom && (type === 6 || type === 7 || type === 9)) return;
    if (answerLate?.to === to && type === 9 && m.msg.instanceId === 0) {
      setTimeout(() => send(to, g, m), answerLate.ms);
      return;
    }
    send(to, g, m);
  };
}
// Keeps nothing of a value: the learner may release the receive buffers batches arrive in.
const counter = { smId: 10, copiesValues: true, execute() {} };

let stopProposing = false;
const cpuMs = (u) => (u.user + u.system) / 1000;

async function propose(ms, concurrency, valueBytes) {
  const value = new Uint8Array(valueBytes);
  const end = performance.now() + ms;
  let done = 0;
  const latencies = [];
  stopProposing = false;
  const worker = async () => {
    while (performance.now() < end && !stopProposing) {
      const s = performance.now();
      await node.propose(0, value, { smId: 10 });
      latencies.push(performance.now() - s);
      done++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedMs = performance.now() - t0;
  latencies.sort((a, b) => a - b);
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  return {
    rate: done / (elapsedMs / 1000),
    commits: done,
    ms: elapsedMs,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    maxMs: latencies[latencies.length - 1],
  };
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
    // Apart runs: where the first server's stream ends (its now instance id), below the target.
    const streamEnd = m.streamEndInstanceId ?? 0;
    let streamEndAt;
    askOnly = m.askOnly;
    const t0 = performance.now();
    node = await startNode({
      nodeId,
      cluster: [1, 2, 3],
      groups: 1,
      store: SqliteLogStore.open(dataDir),
      network,
      scheduler: realScheduler(),
      random: realRandom(),
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
    const faultsAtReady = process.resourceUsage().minorPageFault;
    if (process.env.CATCHUP_DEBUG)
      console.log(`${(performance.timeOrigin + readyAt).toFixed(1)} n${nodeId} ready`);
    const check = (instanceId) => {
      if (streamEnd > 0 && streamEndAt === undefined && instanceId >= streamEnd)
        streamEndAt = performance.now();
      if (doneSent || target === 0 || instanceId < target) return;
      doneSent = true;
      const doneAt = performance.now();
      const st = node.status(0);
      process.send({
        type: 'caughtUp',
        startMs: readyAt - t0,
        readyToFirstMs: (firstAt ?? doneAt) - readyAt,
        readyToDoneMs: doneAt - readyAt,
        ...(streamEnd > 0 && { readyToStreamEndMs: (streamEndAt ?? doneAt) - readyAt }),
        instances: instanceId,
        fromNodeId: st.learner.lastCatchUp?.fromNodeId ?? st.learner.catchUp?.fromNodeId,
        learnedBytes: st.learner.lastCatchUp?.learnedBytes ?? st.learner.catchUp?.learnedBytes ?? 0,
        maxRssMiB: process.resourceUsage().maxRSS / 1024,
        // CPU time of this process from ready to caught up: a cost per instance that a loaded
        // machine distorts less than the rate.
        cpuMs: cpuMs(process.cpuUsage(cpuAtReady)),
        userMs: process.cpuUsage(cpuAtReady).user / 1000,
        // Page faults (fresh memory the kernel zeroes: a buffer per frame shows here).
        minorPageFaults: process.resourceUsage().minorPageFault - faultsAtReady,
        counters: st.learner.counters,
        // Batch frames read into a buffer a released one gave back, and into fresh ones.
        receivePool: network.counters().receivePool,
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
    const r = await propose(m.ms, m.concurrency, m.valueBytes ?? 100);
    process.send({ type: 'proposed', ...r, instanceId: node.instanceId(0) });
  } else if (m.type === 'proposeOne') {
    const { instanceId } = await node.propose(0, new Uint8Array(m.valueBytes ?? 100), {
      smId: 10,
    });
    process.send({ type: 'proposedOne', instanceId });
  } else if (m.type === 'withhold') {
    withholdFrom = m.from;
    answerLate = m.answerLate;
    process.send({ type: 'ok' });
  } else if (m.type === 'proposeStop') {
    stopProposing = true;
  } else if (m.type === 'cpu') {
    process.send({ type: 'cpu', cpuMs: cpuMs(process.cpuUsage()) });
  } else if (m.type === 'status') {
    process.send({ type: 'status', status: node.status(0) });
  } else if (m.type === 'stop') {
    await node?.stop();
    if (!node) await network.close();
    process.exit(0);
  }
});
