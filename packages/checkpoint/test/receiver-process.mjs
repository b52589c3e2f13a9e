// The receiving node of the two-process test (two-process.test.ts): a CheckpointReceiver on
// NodeFiles and a SqliteLogStore, over TcpNetwork. At start it finishes or discards what a kill
// left (recoverInstall), then asks node 1 for a checkpoint until a transfer begins. Its state
// machine keeps its files in <dir>/live and its checkpoint instance id in <dir>/live/CP.
// Prints one JSON line per event on stdout. Runs from the packages' dist builds.
import { copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
// This package's own build (what `@tspaxos/checkpoint` and `@tspaxos/checkpoint/fs` resolve to).
import { NodeFiles } from '../dist/fs.js';
import { CheckpointReceiver, recoverInstall, resolveCheckpointOptions } from '../dist/index.js';
import { SqliteLogStore } from '@tspaxos/storage/sqlite';
import { PaxosMsgType, paxosMsg } from '@tspaxos/transport';
import { TcpNetwork } from '@tspaxos/transport/tcp';

const [dir, senderPort] = process.argv.slice(2);
const say = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);
const files = new NodeFiles();
const store = SqliteLogStore.open(join(dir, 'log'));
const live = join(dir, 'live');

async function readCp() {
  try {
    return Number(await readFile(join(live, 'CP'), 'utf8'));
  } catch (error) {
    if (error.code === 'ENOENT') return -1;
    throw error;
  }
}

const machine = {
  smId: 4,
  cp: await readCp(),
  getCheckpointInstanceId() {
    return this.cp;
  },
  // Idempotent: copy beside the live state, fsync, then switch by rename (README).
  async loadCheckpointState(_group, staged, list, cp) {
    // A slow machine (300 ms): the parent's kill at END's ack lands inside the install.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const next = `${live}.next`;
    await rm(next, { recursive: true, force: true });
    for (const f of list) {
      await mkdir(dirname(join(next, f)), { recursive: true });
      await copyFile(join(staged, f), join(next, f));
      await files.fsync(join(next, f));
    }
    await writeFile(join(next, 'CP'), String(cp));
    await files.fsync(join(next, 'CP'));
    await rm(live, { recursive: true, force: true });
    await rename(next, live);
    await files.fsync(dir);
    this.cp = cp;
  },
};

const stagingRoot = join(dir, 'staging');
const recovered = await recoverInstall({
  group: 0,
  files,
  store,
  machines: [machine],
  stagingRoot,
});
say({ event: 'ready', recovered: recovered.kind, cp: machine.cp });

const network = new TcpNetwork({
  nodeId: 2,
  clusterId: 'cp-test',
  listen: { host: '127.0.0.1', port: 0 },
  peers: { 1: { host: '127.0.0.1', port: Number(senderPort) } },
});
await network.start();
const options = resolveCheckpointOptions({ freeSpaceMarginBytes: 0 });
const receiver = new CheckpointReceiver(
  {
    nodeId: 2,
    group: 0,
    files,
    store,
    machines: [machine],
    stagingRoot,
    send: (to, msg) => network.send(to, 0, { kind: 'checkpoint', msg }),
    minInstallableInstanceId: () => 0,
    promiseBallot: () => ({ proposalId: 0, nodeId: 0 }),
  },
  options,
);

let begun = false;
/** When the last frame arrived: a transfer that went quiet is asked for again (see below). */
let lastFrameMs = Date.now();
let chain = Promise.resolve();
network.onMessage((from, _group, message) => {
  if (message.kind !== 'checkpoint') return;
  lastFrameMs = Date.now();
  chain = chain.then(async () => {
    const event = await receiver.handle(from, message.msg, Date.now());
    begun = receiver.isReceiving; // a refused or stray frame: ask again
    if (event.kind === 'rejected') say({ event: 'rejected', reason: event.reason });
    if (event.kind === 'installed') {
      clearInterval(timer); // done: ask no more
      say({ event: 'installed', cp: event.checkpointInstanceId });
    }
  });
  chain.catch((error) => {
    say({ event: 'error', error: String(error) });
    process.exit(1);
  });
});
const ask = () =>
  network.send(1, 0, {
    kind: 'paxos',
    msg: paxosMsg({ msgType: PaxosMsgType.AskforCheckpoint, nodeId: 2 }),
  });
ask();
// The parent's sender gives up after its ack timeout (1 s), which a loaded machine's fsyncs can
// outlast; a receiver left "receiving" then waited for frames that never came (the test timed
// out). Like CheckpointManager's idle timeout: a transfer quiet for this long is asked for again.
const QUIET_TRANSFER_MS = 3000;
const timer = setInterval(() => {
  if (!begun || Date.now() - lastFrameMs > QUIET_TRANSFER_MS) ask();
}, 200);
process.on('SIGTERM', async () => {
  clearInterval(timer);
  await network.close();
  await store.close();
  process.exit(0);
});
