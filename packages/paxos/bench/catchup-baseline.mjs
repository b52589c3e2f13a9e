// The catch-up benchmark's baseline (catchup.mjs): the same record bytes, without Paxos. As
// `send <dataDir> <port>` it reads node 1's log with range() and writes each record
// (instanceId u64, checksum u32, value length u32, value) to a plain loopback socket; as
// `receive <dir>` it listens, and inserts what arrives into better-sqlite3 in batched
// transactions (WAL, synchronous=NORMAL, as SqliteLogStore), then reports. As `receive-file <dir>`
// (the physical baseline) it appends every socket read as it comes to one plain file (no parsing,
// no fsync), and as `send-plain <dataDir> <port>` it reads the records into memory before it
// connects: together the physical baseline, the floor a copy from socket to disk costs here. As
// `send-file <dataDir> <port>` (the physical baseline read from a file) it first writes the same
// record bytes to a plain file (before the clock; the file stays in the page cache, as the log
// does), then reads it in 256 KiB chunks while it sends: the like-for-like floor of a catch-up,
// whose sender reads its log from disk (page cache) too.
import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteLogStore } from '@tspaxos/storage/sqlite';

const [mode, dir, portArg] = process.argv.slice(2);
const BATCH_ROWS = 2048;
/** Bytes per socket write of the senders (and per file read of `send-file`). */
const CHUNK_BYTES = 256 * 1024;

if (mode === 'receive-file') {
  mkdirSync(dir, { recursive: true });
  const fd = openSync(join(dir, 'baseline.bin'), 'a');
  let bytes = 0;
  let firstAt;
  let cpuAtFirst;
  let faultsAtFirst;
  const server = net.createServer((socket) => {
    socket.on('data', (data) => {
      if (firstAt === undefined) {
        firstAt = performance.now();
        cpuAtFirst = process.cpuUsage();
        faultsAtFirst = process.resourceUsage().minorPageFault;
      }
      writeSync(fd, data);
      bytes += data.length;
    });
    socket.on('end', () => {
      const doneAt = performance.now();
      const cpu = process.cpuUsage(cpuAtFirst);
      closeSync(fd);
      // Records are counted by the sender (each is 16 header bytes + its value). The CPU time of
      // this process over the copy: what the catch-up's learning node spends per value, bare.
      process.send({
        type: 'done',
        bytes,
        ms: doneAt - firstAt,
        cpuMs: (cpu.user + cpu.system) / 1000,
        userMs: cpu.user / 1000,
        minorPageFaults: process.resourceUsage().minorPageFault - faultsAtFirst,
      });
      server.close();
      process.exit(0);
    });
  });
  server.listen(0, '127.0.0.1', () =>
    process.send({ type: 'listening', port: server.address().port }),
  );
} else if (mode === 'receive') {
  mkdirSync(dir, { recursive: true });
  const db = new Database(join(dir, 'baseline.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec('CREATE TABLE log (id INTEGER PRIMARY KEY, checksum INTEGER, value BLOB)');
  const insert = db.prepare('INSERT INTO log VALUES (?, ?, ?)');
  const insertMany = db.transaction((rows) => {
    for (const r of rows) insert.run(r[0], r[1], r[2]);
  });
  let rows = [];
  let pending = Buffer.alloc(0);
  let count = 0;
  let bytes = 0;
  let firstAt;
  const server = net.createServer((socket) => {
    socket.on('data', (data) => {
      firstAt ??= performance.now();
      pending = pending.length ? Buffer.concat([pending, data]) : data;
      let at = 0;
      while (pending.length - at >= 16) {
        const n = pending.readUInt32LE(at + 12);
        if (pending.length - at < 16 + n) break;
        const id = pending.readUInt32LE(at) + pending.readUInt32LE(at + 4) * 2 ** 32;
        rows.push([id, pending.readUInt32LE(at + 8), pending.subarray(at + 16, at + 16 + n)]);
        bytes += n;
        at += 16 + n;
        if (rows.length >= BATCH_ROWS) {
          insertMany(rows);
          count += rows.length;
          rows = [];
        }
      }
      pending = pending.subarray(at);
    });
    socket.on('end', () => {
      insertMany(rows);
      count += rows.length;
      const doneAt = performance.now();
      process.send({ type: 'done', count, bytes, ms: doneAt - firstAt });
      db.close();
      server.close();
      process.exit(0);
    });
  });
  server.listen(0, '127.0.0.1', () =>
    process.send({ type: 'listening', port: server.address().port }),
  );
} else if (mode === 'send-plain' || mode === 'send-file') {
  // The physical baseline's sender: the same record bytes, read from the log before connecting,
  // then written in 256 KiB chunks: from memory (`send-plain`), or (`send-file`) from a plain
  // file written before connecting and read back chunk by chunk while sending.
  const store = SqliteLogStore.open(dir);
  const totals = { count: 0, valueBytes: 0 };
  const chunks = [...recordChunks(store, totals)];
  await store.close();
  let source;
  let sourceDir;
  if (mode === 'send-file') {
    sourceDir = mkdtempSync(join(tmpdir(), 'tspaxos-catchup-source-'));
    const fd = openSync(join(sourceDir, 'records.bin'), 'w+');
    let at = 0;
    for (const c of chunks) at += writeSync(fd, c, 0, c.length, at);
    source = { fd, bytes: at };
    chunks.length = 0;
  }
  const socket = net.connect({ host: '127.0.0.1', port: Number(portArg) });
  await new Promise((resolve) => socket.once('connect', resolve));
  if (source === undefined) {
    for (const c of chunks)
      if (!socket.write(c)) await new Promise((res) => socket.once('drain', res));
  } else {
    // A fresh buffer per chunk: the socket holds each until it is written.
    for (let at = 0; at < source.bytes;) {
      const c = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, source.bytes - at));
      let n = 0;
      while (n < c.length) n += readSync(source.fd, c, n, c.length - n, at + n);
      at += n;
      if (!socket.write(c)) await new Promise((res) => socket.once('drain', res));
    }
  }
  socket.end();
  await new Promise((resolve) => socket.once('close', resolve));
  if (source !== undefined) {
    closeSync(source.fd);
    rmSync(sourceDir, { recursive: true, force: true });
  }
  process.send({ type: 'sent', count: totals.count, bytes: totals.valueBytes }, () =>
    process.exit(0),
  );
} else {
  // The SQLite baseline's sender: reads the log while it sends.
  const store = SqliteLogStore.open(dir);
  const socket = net.connect({ host: '127.0.0.1', port: Number(portArg) });
  await new Promise((resolve) => socket.once('connect', resolve));
  const totals = { count: 0, valueBytes: 0 };
  for (const c of recordChunks(store, totals))
    if (!socket.write(c)) await new Promise((res) => socket.once('drain', res));
  socket.end();
  await new Promise((resolve) => socket.once('close', resolve));
  await store.close();
  process.send({ type: 'sent', count: totals.count, bytes: totals.valueBytes }, () =>
    process.exit(0),
  );
}

/**
 * Group 0's records from `store`, each as a 16-byte header (instance id, checksum, value length)
 * and its value, joined into buffers of about CHUNK_BYTES; counts into `totals` as it goes.
 */
function* recordChunks(store, totals) {
  const max = store.maxInstanceId(0) ?? -1;
  let chunk = [];
  let chunkBytes = 0;
  for (const r of store.range(0, 0, max + 1)) {
    totals.count++;
    totals.valueBytes += r.value.length;
    const head = Buffer.allocUnsafe(16);
    head.writeUInt32LE(r.instanceId % 2 ** 32, 0);
    head.writeUInt32LE(Math.floor(r.instanceId / 2 ** 32), 4);
    head.writeUInt32LE(r.checksum, 8);
    head.writeUInt32LE(r.value.length, 12);
    chunk.push(head, r.value);
    chunkBytes += 16 + r.value.length;
    if (chunkBytes >= CHUNK_BYTES) {
      yield Buffer.concat(chunk);
      chunk = [];
      chunkBytes = 0;
    }
  }
  yield Buffer.concat(chunk);
}
