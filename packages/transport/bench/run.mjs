// @tspaxos/transport benchmark: frames/s and MB/s from one process to another on loopback, for
// 100 B and 64 KiB values through TcpNetwork, against raw node:net writing length-prefixed frames
// of the same bytes (64 pre-encoded frames joined into one write(), the fastest plain pattern
// measured in BASELINES.md: faster than corking 64 writes), the two measured in alternation in
// the same run; plus codec encode+decode per second.
import { fork } from 'node:child_process';
import * as net from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { concatChunks, decodeFrame, encodeFrame, paxosMsg } from '../dist/index.js';
import { TcpNetwork } from '../dist/tcp.js';
import {
  envInteger,
  median,
  medianOf,
  opsPerSec,
  report,
} from '../../../scripts/bench-harness.mjs';

const rows = [];
const message = (value) => ({
  kind: 'paxos',
  msg: paxosMsg({
    msgType: 6,
    instanceId: 123456,
    nodeId: 1,
    proposalId: 7,
    proposalNodeId: 1,
    value,
    lastChecksum: 99,
  }),
});

async function child(type, expect) {
  const c = fork(new URL('./receiver.mjs', import.meta.url), { stdio: 'inherit' });
  c.send({ type, expect });
  const [ready] = await once(c, 'message');
  return { c, port: ready.port };
}

function waitDone(c) {
  return new Promise((resolve) => {
    const on = (m) => {
      if (m.type === 'done') {
        c.off('message', on);
        resolve();
      }
    };
    c.on('message', on);
  });
}

const SCALE = envInteger('BENCH_SCALE', 1, { min: 1 });
/** Frames joined into one write by the raw baseline (the fastest plain pattern, BASELINES.md). */
const RAW_FRAMES_PER_WRITE = 64;

for (const [label, size, count] of [
  ['100 B', 100, 200_000 * SCALE],
  ['64 KiB', 65536, 4000 * SCALE],
]) {
  console.error(`transport bench: ${label}`);
  const value = randomBytes(size);
  const frameBytes = concatChunks(encodeFrame(0, message(value))).length;

  // Ours: TcpNetwork from encode to the receiver's handler.
  const oursChild = await child('tcp', count);
  const sender = new TcpNetwork({
    nodeId: 1,
    clusterId: 'bench',
    listen: { host: '127.0.0.1', port: 0 },
    peers: { 2: { host: '127.0.0.1', port: oursChild.port } },
  });
  await sender.start();
  const m = message(value);
  const measureOurs = async () => {
    const done = waitDone(oursChild.c);
    const t0 = performance.now();
    for (let i = 0; i < count; i++) {
      sender.send(2, 0, m);
      // Pace like the raw loop (which waits for 'drain' past 8 MiB): TcpNetwork never blocks a
      // sender, it drops the oldest past 200 MiB, so a benchmark must not outrun the socket.
      while (sender.queuedBytes(2) > 8 * 1024 * 1024) await new Promise((r) => setTimeout(r, 1));
      if ((i & 1023) === 1023) await new Promise((r) => setImmediate(r));
    }
    await done;
    return count / ((performance.now() - t0) / 1000);
  };

  // Raw node:net with the same frame bytes, pre-encoded, RAW_FRAMES_PER_WRITE of them joined
  // into one buffer and written with one write() call: no per-frame work at all.
  const rawChild = await child('raw', count);
  const socket = net.connect(rawChild.port, '127.0.0.1');
  socket.setNoDelay(true);
  await once(socket, 'connect');
  const frame = concatChunks(encodeFrame(0, m));
  const joined = Buffer.concat(Array.from({ length: RAW_FRAMES_PER_WRITE }, () => frame));
  const measureRaw = async () => {
    const done = waitDone(rawChild.c);
    const t0 = performance.now();
    for (let i = 0; i < count; i += RAW_FRAMES_PER_WRITE) {
      const n = Math.min(RAW_FRAMES_PER_WRITE, count - i);
      socket.write(n === RAW_FRAMES_PER_WRITE ? joined : joined.subarray(0, n * frame.length));
      if (socket.writableLength > 8 * 1024 * 1024) await once(socket, 'drain');
    }
    await done;
    return count / ((performance.now() - t0) / 1000);
  };

  // Interleaved: ours, raw, ours, raw, … so both see the same machine load.
  const oursRates = [];
  const rawRates = [];
  await medianOf(async () => {
    oursRates.push(await measureOurs());
    rawRates.push(await measureRaw());
    return 0;
  });
  const ours = median(oursRates);
  const raw = median(rawRates);
  const ratio = median(oursRates.map((o, i) => o / rawRates[i]));
  await sender.close();
  socket.destroy();
  oursChild.c.kill();
  rawChild.c.kill();

  rows.push({
    name: `TcpNetwork ${label}`,
    value: ours,
    unit: 'frames/s',
    ratio,
    baseline: `raw node:net, ${RAW_FRAMES_PER_WRITE} frames per write`,
  });
  rows.push({ name: `TcpNetwork ${label} (MB/s)`, value: (ours * frameBytes) / 1e6, unit: 'MB/s' });
  rows.push({
    name: `raw node:net ${label}`,
    value: raw,
    unit: 'frames/s',
    ratio: 1,
    baseline: `raw node:net, ${RAW_FRAMES_PER_WRITE} frames per write`,
  });
}

for (const [label, size] of [
  ['100 B', 100],
  ['100 KiB', 100 * 1024],
]) {
  const m = message(randomBytes(size));
  const value = opsPerSec(() => {
    const d = decodeFrame(concatChunks(encodeFrame(0, m)));
    if (!d.ok) throw d.error;
  });
  rows.push({ name: `codec encode+decode ${label}`, value, unit: 'msgs/s' });
}

report('transport', rows);
process.exit(0);
