// Stamps the steps of a write inside one `tspaxos node` process, for trace-write.mjs (issue 22):
// preloaded with `node --import` (tspaxos-cluster.mjs adds it when BENCH_NODE_TRACE names a
// directory), it wraps the calls a write passes through without touching the server's code:
//   http-in      the HTTP server's 'request' event (the route runs in the same turn)
//   http-out     ServerResponse.end (the reply handed to the socket)
//   send         a write on an outbound TCP socket (the paxos transport: Accept, AcceptReply …)
//   writev       fs.writevSync (a segment append: the acceptor's record), with its duration
//   fdatasync    fs.fdatasync on the thread pool (start, and `end` when its callback runs)
//   fsync        fs.fsync likewise (the WAL, directories)
//   gc           a V8 garbage collection (its start and duration, PerformanceObserver)
//   loop-gap     the event loop held longer than LOOP_GAP_MS (an interval timer's lateness)
//   checkpoint   a `PRAGMA wal_checkpoint(…)` on the event loop (better-sqlite3), with its duration
//   slow-txn     a better-sqlite3 transaction that held the event loop longer than SLOW_TXN_MS
//                (the KV file's commits: SQLite's own WAL checkpoint runs inside one)
// Every stamp is performance.timeOrigin + performance.now() in ms, comparable across the processes
// of one machine. Written as JSON lines to <dir>/trace-<pid>.jsonl when the process exits.
// SQLite's own fsyncs (better-sqlite3, in C) are not seen one by one; strace sees them.
import Database from 'better-sqlite3';
import fs from 'node:fs';
import http from 'node:http';
import { syncBuiltinESMExports } from 'node:module';
import net from 'node:net';
import { join } from 'node:path';
import { PerformanceObserver, performance } from 'node:perf_hooks';

const DIR = process.env.BENCH_NODE_TRACE;
/** Stamps kept at most (a long run keeps its first ones). */
const MAX_EVENTS = 2_000_000;
/** A timer every LOOP_TICK_MS late by more than LOOP_GAP_MS is an event-loop stall worth a stamp. */
const LOOP_TICK_MS = 5;
const LOOP_GAP_MS = 2;
/** A transaction longer than this is stamped (a 100 B write's commit takes ~0.05 ms). */
const SLOW_TXN_MS = 1;

if (DIR) {
  const events = [];
  const origin = performance.timeOrigin;
  const now = () => origin + performance.now();
  const stamp = (ev, extra) => {
    if (events.length < MAX_EVENTS)
      events.push(extra === undefined ? { t: now(), ev } : { t: now(), ev, ...extra });
  };

  const emit = http.Server.prototype.emit;
  http.Server.prototype.emit = function (name, req, ...rest) {
    if (name === 'request') stamp('http-in', { method: req.method });
    return emit.call(this, name, req, ...rest);
  };
  const end = http.ServerResponse.prototype.end;
  http.ServerResponse.prototype.end = function (...args) {
    stamp('http-out', { status: this.statusCode });
    return end.apply(this, args);
  };
  const write = net.Socket.prototype.write;
  net.Socket.prototype.write = function (...args) {
    // Outbound connections only: the HTTP server's sockets have `server`, the transport's do not.
    if (this.server === undefined || this.server === null) stamp('send', { port: this.remotePort });
    return write.apply(this, args);
  };

  const writevSync = fs.writevSync;
  fs.writevSync = function (...args) {
    const t = now();
    const r = writevSync.apply(this, args);
    stamp('writev', { fd: args[0], ms: now() - t, start: t });
    return r;
  };
  for (const name of ['fdatasync', 'fsync']) {
    const original = fs[name];
    fs[name] = function (fd, callback) {
      const t = now();
      return original.call(this, fd, (err) => {
        stamp(name, { fd, start: t, ms: now() - t });
        callback(err);
      });
    };
  }
  // The bundle imports these by name from node:fs: make its bindings see the wrappers.
  syncBuiltinESMExports();

  new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      stamp('gc', { start: origin + e.startTime, ms: e.duration, kind: e.detail?.kind });
  }).observe({ entryTypes: ['gc'] });

  // The server's bundle imports the same better-sqlite3 module: its connections see these.
  const pragma = Database.prototype.pragma;
  Database.prototype.pragma = function (source, ...rest) {
    if (!/wal_checkpoint\(/i.test(source)) return pragma.call(this, source, ...rest);
    const t = now();
    try {
      return pragma.call(this, source, ...rest);
    } finally {
      stamp('checkpoint', { start: t, ms: now() - t, db: this.name });
    }
  };
  const timed = (db, run) =>
    function (...args) {
      const t = now();
      try {
        return run.apply(this, args);
      } finally {
        const ms = now() - t;
        if (ms > SLOW_TXN_MS) stamp('slow-txn', { start: t, ms, db: db.name });
      }
    };
  const transaction = Database.prototype.transaction;
  Database.prototype.transaction = function (fn) {
    const run = transaction.call(this, fn);
    const out = timed(this, run);
    for (const mode of ['default', 'deferred', 'immediate', 'exclusive'])
      out[mode] = timed(this, run[mode]);
    out.database = run.database;
    return out;
  };

  let last = performance.now();
  setInterval(() => {
    const t = performance.now();
    if (t - last > LOOP_TICK_MS + LOOP_GAP_MS)
      stamp('loop-gap', { start: origin + last + LOOP_TICK_MS, ms: t - last - LOOP_TICK_MS });
    last = t;
  }, LOOP_TICK_MS).unref();

  process.on('exit', () => {
    fs.writeFileSync(
      join(DIR, `trace-${process.pid}.jsonl`),
      events.map((e) => JSON.stringify(e)).join('\n') + '\n',
    );
  });
}
