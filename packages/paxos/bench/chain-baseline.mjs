// The physical floor of one value per instance on this machine (issue 22), for the propose cells
// of phxpaxos.mjs: the shortest chain a replicated durable write can have, in plain Node, with no
// Paxos, no index, no encoding. A proposer process sends each value to one follower over TCP
// (4-byte length prefix), both append it to a file and make it durable (`fdatasync`), the
// follower replies (an empty frame), and the proposer starts the next value once it has the reply
// and its own sync. One value in flight, as one Paxos group proposes one instance at a time.
//
// `node chain-baseline.mjs follower <dir> <sync>` listens on port 0 and prints its port, and at
// the end its CPU ms since the proposer's mark (an empty frame sent after the warm-up);
// `node chain-baseline.mjs proposer <dir> <sync> <port> <valueBytes> <ms> <warmupMs>` runs for
// <warmupMs> + <ms> and prints one JSON line about the <ms>. Both append with writeSync; <sync>:
// `pool` (fs.fdatasync on libuv's thread pool, as @tspaxos/storage does) or `inline`
// (fdatasyncSync on the event loop, as PhxPaxos's thread does). phxpaxos.mjs runs both and times
// them beside tspaxos and PhxPaxos.
import { fdatasync, fdatasyncSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';

const [role, dir, sync] = process.argv.slice(2);
if (sync !== 'pool' && sync !== 'inline') throw new Error(`sync must be pool or inline: ${sync}`);
const fd = openSync(join(dir, `${role}.log`), 'w');
/** The file grows in steps, sparse (ftruncate), as @tspaxos/storage's segments do (8 MiB). */
const GROW_BYTES = 8 * 1024 * 1024;
let size = 0;
let position = 0;

/** The follower's reply, and the proposer's mark after the warm-up: a frame of length 0. */
const EMPTY_FRAME = Buffer.alloc(4);

/**
 * Appends `buf` and makes it durable, then calls `done` (an error fails the process). The append
 * is a synchronous pwrite in both modes, as @tspaxos/storage's segment pwritev is.
 */
function appendDurable(buf, done) {
  if (position + buf.length > size) ftruncateSync(fd, (size += GROW_BYTES));
  writeSync(fd, buf, 0, buf.length, position);
  position += buf.length;
  if (sync === 'inline') {
    fdatasyncSync(fd);
    done();
    return;
  }
  fdatasync(fd, (err) => {
    if (err) throw err;
    done();
  });
}

/** Calls `onFrame` with each length-prefixed frame of `socket`'s stream (one copy per frame). */
function frames(socket, onFrame) {
  let pending = [];
  let have = 0;
  let need = -1; // the frame's length once its prefix is here
  socket.on('data', (chunk) => {
    pending.push(chunk);
    have += chunk.length;
    for (;;) {
      if (need < 0) {
        if (have < 4) return;
        if (pending[0].length < 4) pending = [Buffer.concat(pending)];
        need = pending[0].readUInt32BE(0);
      }
      if (have < 4 + need) return;
      const all = pending.length === 1 ? pending[0] : Buffer.concat(pending);
      onFrame(all.subarray(4, 4 + need));
      pending = have > 4 + need ? [all.subarray(4 + need)] : [];
      have -= 4 + need;
      need = -1;
    }
  });
}

if (role === 'follower') {
  let cpu0 = process.cpuUsage();
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    frames(socket, (value) => {
      if (value.length === 0) {
        cpu0 = process.cpuUsage(); // the mark: the measured window starts
        socket.write(EMPTY_FRAME);
        return;
      }
      appendDurable(value, () => {
        socket.write(EMPTY_FRAME);
      });
    });
    socket.on('close', () => {
      const cpu = process.cpuUsage(cpu0);
      console.log(JSON.stringify({ cpuMs: (cpu.user + cpu.system) / 1000 }));
      process.exit(0);
    });
  });
  server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
} else if (role === 'proposer') {
  const [port, valueBytes, ms, warmupMs] = process.argv.slice(5).map(Number);
  const value = Buffer.alloc(valueBytes, 7);
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let t0 = performance.now();
  let end = t0 + warmupMs;
  let cpu0 = process.cpuUsage();
  let measuring = false;
  let latencies = [];
  let count = 0;
  let waiting = 0;
  let started = 0;
  const next = () => {
    if (--waiting > 0) return;
    latencies.push(performance.now() - started);
    count++;
    if (performance.now() >= end) {
      if (measuring) finish();
      else mark();
      return;
    }
    start();
  };
  const start = () => {
    waiting = 2;
    started = performance.now();
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32BE(value.length, 0);
    // The value leaves before the local write starts, as tspaxos's Accept does.
    socket.cork();
    socket.write(head);
    socket.write(value);
    socket.uncork();
    appendDurable(value, next);
  };
  /** After the warm-up: an empty frame, answered at once, starts the follower's CPU window. */
  const mark = () => {
    measuring = true;
    onReply = () => {
      onReply = next;
      latencies = [];
      count = 0;
      t0 = performance.now();
      end = t0 + ms;
      cpu0 = process.cpuUsage();
      start();
    };
    socket.write(EMPTY_FRAME);
  };
  let onReply = next;
  frames(socket, () => onReply());
  const finish = () => {
    const s = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    latencies.sort((a, b) => a - b);
    const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
    console.log(
      JSON.stringify({
        valuesPerSec: count / s,
        count,
        p50Ms: at(0.5),
        p99Ms: at(0.99),
        cpuMsProposer: (cpu.user + cpu.system) / 1000,
      }),
    );
    socket.end();
    process.exit(0);
  };
  start();
} else {
  throw new Error(`role must be follower or proposer: ${role}`);
}
