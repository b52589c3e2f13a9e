// One process of the floor cluster (floor.mjs): the least work a replicated durable write needs
// with the parts tspaxos uses, and nothing else. Node, HTTP/1.1 through node:http, loopback TCP
// with no delay, and per copy one append and one fdatasync on libuv's thread pool (what the paxos
// log's group commit does for a lone writer). No consensus (no ballot, no instance, no vote that
// can be refused), no index, no state machine, no checksum: the leader (index 0) appends its copy
// of a PUT's body while it sends the body to both followers; each follower appends its copy and
// answers once it is durable; the leader answers 200 once 2 of the 3 copies are (its own counts).
//
// argv: index, data directory, the 3 peer ports, the leader's HTTP port. Prints "listening" once
// it listens (followers) or once it is connected to both followers (the leader).
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';

const [index, dir, ...portArgs] = process.argv.slice(2);
const me = Number(index);
const [peerPorts, httpPort] = [portArgs.slice(0, 3).map(Number), Number(portArgs[3])];
const fd = fs.openSync(join(dir, `copy-${me}`), 'a');

/** Appends `bytes` and calls `done` once they are durable; any failure ends the process. */
function durable(bytes, done) {
  fs.write(fd, bytes, (error) => {
    if (error) throw error;
    fs.fdatasync(fd, (syncError) => {
      if (syncError) throw syncError;
      done();
    });
  });
}

/** Calls `onFrame(seq, body)` for every frame ([u32 length][u32 seq][body]) read from `socket`. */
function readFrames(socket, onFrame) {
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 8) {
      const length = pending.readUInt32LE(0);
      if (pending.length < 8 + length) break;
      onFrame(pending.readUInt32LE(4), pending.subarray(8, 8 + length));
      pending = pending.subarray(8 + length);
    }
  });
}

/** An ack's body: none. */
const NO_BODY = Buffer.alloc(0);

/** A frame of `body` (an ack: none) for write `seq`. */
function frame(seq, body = NO_BODY) {
  const out = Buffer.alloc(8 + body.length);
  out.writeUInt32LE(body.length, 0);
  out.writeUInt32LE(seq, 4);
  body.copy(out, 8);
  return out;
}

if (me !== 0) {
  net
    .createServer((socket) => {
      socket.setNoDelay(true);
      readFrames(socket, (seq, body) => {
        durable(body, () => socket.write(frame(seq)));
      });
    })
    .listen(peerPorts[me], '127.0.0.1', () => console.log('listening'));
} else {
  /** Writes in flight by seq: the copies durable so far and the reply to send at 2. */
  const inFlight = new Map();
  const vote = (seq) => {
    const write = inFlight.get(seq);
    if (write === undefined || ++write.copies < 2) return;
    inFlight.delete(seq);
    write.res.end();
  };
  const followers = await Promise.all(
    [1, 2].map(
      (i) =>
        new Promise((resolve, reject) => {
          const socket = net.connect(peerPorts[i], '127.0.0.1', () => resolve(socket));
          socket.setNoDelay(true);
          socket.once('error', reject);
          readFrames(socket, (seq) => vote(seq));
        }),
    ),
  );
  let seq = 0;
  http
    .createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const id = ++seq;
        inFlight.set(id, { copies: 0, res });
        const copy = frame(id, body);
        for (const socket of followers) socket.write(copy);
        durable(body, () => vote(id));
      });
    })
    .listen(httpPort, '127.0.0.1', () => console.log('listening'));
}
