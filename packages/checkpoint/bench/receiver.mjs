// Child process of the checkpoint benchmark. `checkpoint`: a CheckpointReceiver on NodeFiles and a
// SqliteLogStore over TcpNetwork, installing into a no-op machine (the transfer and the install
// procedure are measured, not a machine's own load). `raw`: a node:net server that writes the
// files it is sent (name, size, bytes) to disk and fsyncs each, the baseline; it removes them
// after its reply, as the install removes staging. Both report their peak RSS after every transfer.
import * as net from 'node:net';
import { open, mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { NodeFiles } from '../dist/fs.js';
import { CheckpointReceiver, resolveCheckpointOptions } from '../dist/index.js';
import { SqliteLogStore } from '@tspaxos/storage/sqlite';
import { TcpNetwork } from '@tspaxos/transport/tcp';

const rssMiB = () => process.resourceUsage().maxRSS / 1024;

process.on('message', async (cmd) => {
  if (cmd.type === 'checkpoint') {
    const files = new NodeFiles();
    const store = SqliteLogStore.open(join(cmd.dir, 'log'));
    const network = new TcpNetwork({
      nodeId: 2,
      clusterId: 'cp-bench',
      listen: { host: '127.0.0.1', port: 0 },
      peers: { 1: { host: '127.0.0.1', port: cmd.senderPort } },
    });
    const machine = {
      smId: 4,
      cp: -1,
      getCheckpointInstanceId() {
        return this.cp;
      },
      loadCheckpointState(_group, _dir, _files, cp) {
        this.cp = cp;
      },
    };
    const receiver = new CheckpointReceiver(
      {
        nodeId: 2,
        group: 0,
        files,
        store,
        machines: [machine],
        stagingRoot: join(cmd.dir, 'staging'),
        send: (to, msg) => network.send(to, 0, { kind: 'checkpoint', msg }),
        minInstallableInstanceId: () => 0,
        promiseBallot: () => ({ proposalId: 0, nodeId: 0 }),
      },
      resolveCheckpointOptions({ freeSpaceMarginBytes: 0 }),
    );
    let chain = Promise.resolve();
    network.onMessage((from, _g, message) => {
      if (message.kind !== 'checkpoint') return;
      chain = chain.then(async () => {
        const event = await receiver.handle(from, message.msg, Date.now());
        if (event.kind === 'rejected') throw new Error(`rejected: ${event.reason}`);
        if (event.kind === 'installed') process.send({ type: 'installed', rssMiB: rssMiB() });
      });
      chain.catch((error) => {
        console.error(error);
        process.exit(1);
      });
    });
    const { port } = await network.start();
    process.send({ type: 'ready', port });
  } else if (cmd.type === 'raw') {
    const server = net.createServer((socket) => receiveRaw(socket, cmd.dir));
    server.listen(0, '127.0.0.1', () =>
      process.send({ type: 'ready', port: server.address().port }),
    );
  }
});

/** Baseline protocol: [u32 file count] then per file [u16 name length][name][f64 size][bytes]. */
function receiveRaw(socket, dir) {
  let buffered = [];
  let bufferedBytes = 0;
  let waiter;
  // Backpressure: stop reading past 8 MiB buffered, as a plain stream pipeline would.
  const resumeBelow = () => {
    if (socket.isPaused() && bufferedBytes < 8 * 1024 * 1024) socket.resume();
  };
  socket.on('data', (d) => {
    buffered.push(d);
    bufferedBytes += d.length;
    if (bufferedBytes >= 8 * 1024 * 1024) socket.pause();
    if (waiter && bufferedBytes >= waiter.n) {
      const w = waiter;
      waiter = undefined;
      w.resolve();
    }
  });
  const take = async (n) => {
    if (bufferedBytes < n) await new Promise((resolve) => (waiter = { n, resolve }));
    const all = Buffer.concat(buffered);
    buffered = [all.subarray(n)];
    bufferedBytes = all.length - n;
    resumeBelow();
    return all.subarray(0, n);
  };
  // Hands out up to `max` bytes as they arrive (for file bodies: no whole-file buffering).
  const takeSome = async (max) => {
    if (bufferedBytes === 0) await new Promise((resolve) => (waiter = { n: 1, resolve }));
    const first = buffered.length === 1 ? buffered[0] : Buffer.concat(buffered);
    const n = Math.min(max, first.length);
    buffered = [first.subarray(n)];
    bufferedBytes = first.length - n;
    resumeBelow();
    return first.subarray(0, n);
  };
  (async () => {
    const count = (await take(4)).readUInt32LE(0);
    for (let i = 0; i < count; i++) {
      const nameLength = (await take(2)).readUInt16LE(0);
      const name = (await take(nameLength)).toString('utf8');
      let left = (await take(8)).readDoubleLE(0);
      const path = join(dir, 'raw', name);
      await mkdir(dirname(path), { recursive: true });
      const handle = await open(path, 'w');
      while (left > 0) {
        const chunk = await takeSome(left);
        await handle.write(chunk);
        left -= chunk.length;
      }
      await handle.sync();
      await handle.close();
    }
    socket.write(Buffer.from([1]));
    // As the checkpoint receiver's install removes its staging directory before it reports: the
    // files go after the reply, outside the timed part, so both sides free their pages at the
    // same point (on this VM, page cache written right after a large free is ~3× cheaper than
    // page cache written seconds later: freed memory goes back to the host).
    await rm(join(dir, 'raw'), { recursive: true, force: true });
    process.send({ type: 'installed', rssMiB: rssMiB() });
  })().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
