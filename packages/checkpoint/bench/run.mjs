// @tspaxos/checkpoint benchmark: a checkpoint of several files sent from this process to a child
// on loopback with CheckpointSender → TcpNetwork → CheckpointReceiver (NodeFiles, SQLite install
// record), against copying the same files over a plain loopback socket (read stream → socket →
// file, fsync per file) in the same run, interleaved; and the receiver's peak RSS for 256 MiB and
// 1 GiB checkpoints (the window bounds it: it should not grow with the checkpoint).
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, rm, stat } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { TcpNetwork } from '@tspaxos/transport/tcp';
import { NodeFiles } from '../dist/fs.js';
import { CheckpointSender, resolveCheckpointOptions } from '../dist/index.js';
import { median, report, RUNS } from '../../../scripts/bench-harness.mjs';

const MiB = 1024 * 1024;
const root = await mkdtemp(join(tmpdir(), 'tspaxos-cp-bench-'));
const rows = [];

async function makeFiles(dir, fileMiB, count) {
  const block = Buffer.alloc(MiB);
  for (let i = 0; i < MiB; i++) block[i] = (i * 2654435761) >>> 24;
  const names = [];
  for (let f = 0; f < count; f++) {
    const name = f === 0 ? `f${f}.bin` : `sub/f${f}.bin`;
    await mkdir(dirname(join(dir, name)), { recursive: true });
    const h = await open(join(dir, name), 'w');
    for (let m = 0; m < fileMiB; m++) {
      block[0] = m;
      block[1] = f;
      await h.write(block);
    }
    await h.close();
    names.push(name);
  }
  return names;
}

function child(cmd) {
  const c = fork(new URL('./receiver.mjs', import.meta.url), { stdio: 'inherit' });
  c.send(cmd);
  return c;
}

/** The child's next message of `type`; rejects if the child exits first (no silent hang). */
const next = (c, type) =>
  new Promise((resolve, reject) => {
    const on = (m) => {
      if (m.type === type) {
        c.off('message', on);
        c.off('exit', onExit);
        resolve(m);
      }
    };
    const onExit = (code) => reject(new Error(`receiver exited (${code}) before '${type}'`));
    c.on('message', on);
    c.on('exit', onExit);
  });

async function checkpointRunner(dir, names, receiverDir) {
  const network = new TcpNetwork({
    nodeId: 1,
    clusterId: 'cp-bench',
    listen: { host: '127.0.0.1', port: 0 },
  });
  const { port } = await network.start();
  const c = child({ type: 'checkpoint', dir: receiverDir, senderPort: port });
  const ready = await next(c, 'ready');
  network.addPeer(2, { host: '127.0.0.1', port: ready.port });
  const files = new NodeFiles();
  const options = resolveCheckpointOptions();
  const machine = {
    smId: 4,
    getCheckpointInstanceId: () => 100,
    getCheckpointState: () => ({ dir, files: names }),
  };
  let sender;
  let chain = Promise.resolve();
  network.onMessage((from, _g, message) => {
    if (message.kind !== 'checkpoint') return;
    chain = chain.then(() => sender?.onAck(from, message.msg, Date.now()));
    chain.catch((error) => {
      console.error(error);
      process.exit(1);
    });
  });
  let uuid = 0;
  return {
    async run() {
      sender = new CheckpointSender(
        {
          nodeId: 1,
          group: 0,
          files,
          machines: [machine],
          send: (to, m) => network.send(to, 0, { kind: 'checkpoint', msg: m }),
        },
        options,
        2,
        ++uuid,
      );
      const ended = new Promise((resolve) => sender.onEnd(resolve));
      const installed = next(c, 'installed');
      const t0 = performance.now();
      await sender.start(Date.now());
      const reason = await ended;
      const seconds = (performance.now() - t0) / 1000;
      if (reason !== 'done') throw new Error(`transfer ended: ${reason}`);
      const { rssMiB } = await installed; // the install finishes before the next run
      return { bytes: sender.status().totalBytes, seconds, rssMiB };
    },
    async close() {
      c.kill();
      await network.close();
    },
  };
}

async function rawRunner(dir, names, receiverDir) {
  const c = child({ type: 'raw', dir: receiverDir });
  const { port } = await next(c, 'ready');
  return {
    async run() {
      const installed = next(c, 'installed');
      const t0 = performance.now();
      const socket = net.connect(port, '127.0.0.1');
      await once(socket, 'connect');
      const done = once(socket, 'data');
      const header = Buffer.alloc(4);
      header.writeUInt32LE(names.length, 0);
      socket.write(header);
      let bytes = 0;
      for (const name of names) {
        const size = (await stat(join(dir, name))).size;
        const nameBytes = Buffer.from(name);
        const h = Buffer.alloc(2 + nameBytes.length + 8);
        h.writeUInt16LE(nameBytes.length, 0);
        nameBytes.copy(h, 2);
        h.writeDoubleLE(size, 2 + nameBytes.length);
        socket.write(h);
        for await (const chunk of createReadStream(join(dir, name), { highWaterMark: MiB })) {
          if (!socket.write(chunk)) await once(socket, 'drain');
        }
        bytes += size;
      }
      await done;
      const seconds = (performance.now() - t0) / 1000;
      socket.destroy();
      const { rssMiB } = await installed;
      return { bytes, seconds, rssMiB };
    },
    async close() {
      c.kill();
    },
  };
}

try {
  const results = {};
  for (const [label, fileMiB, runs] of [
    ['256 MiB', 64, RUNS],
    ['1 GiB', 256, Math.max(1, Math.min(3, RUNS))],
  ]) {
    console.error(`checkpoint bench: ${label}`);
    const dir = join(root, `src-${fileMiB}`);
    const names = await makeFiles(dir, fileMiB, 4);
    console.error(`checkpoint bench: ${label}: files written`);
    const ours = await checkpointRunner(dir, names, join(root, `cp-${fileMiB}`));
    const raw = await rawRunner(dir, names, join(root, `raw-${fileMiB}`));
    // One unmeasured transfer each first: JIT, the child's heap, and freed page cache behind both.
    for (const runner of [ours, raw]) await runner.run();
    const oursMBps = [];
    const rawMBps = [];
    let oursRss = 0;
    let rawRss = 0;
    for (let r = 0; r < runs; r++) {
      // Interleaved, ours first on even runs and second on odd ones.
      const order = r % 2 === 0 ? [ours, raw] : [raw, ours];
      for (const runner of order) {
        const m = await runner.run();
        console.error(
          `checkpoint bench: ${label}: ${runner === ours ? 'checkpoint' : 'socket'} ${(m.bytes / 1e6 / m.seconds).toFixed(0)} MB/s`,
        );
        const mbps = m.bytes / 1e6 / m.seconds;
        if (runner === ours) {
          oursMBps.push(mbps);
          oursRss = Math.max(oursRss, m.rssMiB);
        } else {
          rawMBps.push(mbps);
          rawRss = Math.max(rawRss, m.rssMiB);
        }
      }
    }
    await ours.close();
    await raw.close();
    await rm(dir, { recursive: true, force: true });
    const o = median(oursMBps);
    const b = median(rawMBps);
    results[label] = { oursMBps, rawMBps, oursRssMiB: oursRss, rawRssMiB: rawRss };
    rows.push({
      name: `checkpoint transfer ${label} (MB/s)`,
      value: o,
      unit: 'MB/s',
      ratio: o / b,
      baseline: 'plain socket copy',
    });
    rows.push({ name: `plain socket copy ${label} (MB/s)`, value: b, unit: 'MB/s' });
    rows.push({
      name: `checkpoint receiver peak RSS ${label}`,
      value: oursRss,
      unit: 'MiB',
      ratio: oursRss / rawRss,
      baseline: 'plain receiver RSS',
    });
    rows.push({ name: `plain receiver peak RSS ${label}`, value: rawRss, unit: 'MiB' });
  }
  report('checkpoint', rows, { results });
} finally {
  await rm(root, { recursive: true, force: true });
}
