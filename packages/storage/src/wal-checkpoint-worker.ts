// The WAL checkpoint (wal-checkpointer.ts) off the event loop: a worker thread with its own better-sqlite3 connection
// to the log runs `PRAGMA wal_checkpoint(PASSIVE)`, which WAL mode allows from a second
// connection while the first one keeps writing (SQLite "WAL mode", section "Checkpointing": a
// PASSIVE checkpoint copies the frames no reader still needs and never blocks the writer). The
// connection uses the store's policy (synchronous=NORMAL: SQLite fsyncs the WAL before the copy
// and the database after it, before it records the copy as done; wal_autocheckpoint=0), so the
// durability argument of the store is the same wherever the checkpoint runs; the fsyncs and the
// copy just happen on the worker's thread.
//
// The worker is evaluated from a string (`eval: true`), so no separate file has to be found next
// to the ESM build, the CJS build, the sources under vitest, or an installed package; it is given
// the path of the better-sqlite3 the store itself resolved. It is started at the first
// checkpoint and unref'd between checkpoints (a store that is never closed does not keep a
// process alive; a running checkpoint or a close does, so an awaited close() ends).
//
// The worker opens its connection for each checkpoint and closes it before it answers: the
// store's connection runs in locking_mode=EXCLUSIVE between checkpoints (no shared-memory lock
// per transaction, much faster: BENCHMARKS.md, storage notes) and can take that lock back only
// when no other connection is open. Opening a connection costs about a millisecond.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * How long the worker's connection waits for a SQLite lock the store's connection holds for a
 * moment (a transaction in NORMAL mode, a WAL restart) before its checkpoint fails: 5 s, ours.
 * Waiting blocks only the worker's thread. The store's connection waits as long for the WAL's
 * write lock, which the worker's connection takes for a moment when it re-reads the WAL index's
 * header (wal-checkpointer.ts, Locking), and only while it runs in NORMAL mode for a checkpoint.
 */
export const WAL_CHECKPOINT_BUSY_TIMEOUT_MS = 5_000;

/** What one checkpoint did: SQLite's (busy, log, checkpointed) row of `wal_checkpoint`. */
export interface WalCheckpointResult {
  /** 1 when another checkpoint held SQLite's checkpoint lock and nothing was done. */
  busy: number;
  /** Frames in the WAL when the checkpoint ran. */
  log: number;
  /** Frames copied into the database (all of them when equal to `log`). */
  checkpointed: number;
}

/**
 * Where the store's WAL checkpoints run: `run` starts one (never two at a time: the store waits for
 * the callback before it starts another), `close` ends the runner after the last callback.
 * The default is `workerWalCheckpointPort`; tests inject others (fault injection).
 */
export interface WalCheckpointPort {
  run(callback: (err: unknown, result?: WalCheckpointResult) => void): void;
  close(): Promise<void>;
  /**
   * True once the running checkpoint's connection is closed, possibly before its callback (which
   * needs an event-loop turn): the store may take its exclusive lock back at once.
   */
  released?(): boolean;
}

/** The worker's code (CommonJS, evaluated by worker_threads). Errors go back as messages. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
parentPort.on('message', (m) => {
  if (m === 'close') {
    parentPort.postMessage({ closed: true });
    parentPort.close();
    return;
  }
  let db;
  try {
    Atomics.store(workerData.released, 0, 0);
    db = new Database(workerData.path, { fileMustExist: true, timeout: workerData.busyTimeoutMs });
    db.pragma('synchronous = NORMAL');
    db.pragma('wal_autocheckpoint = 0');
    const row = db.pragma('wal_checkpoint(PASSIVE)')[0];
    db.close();
    Atomics.store(workerData.released, 0, 1);
    parentPort.postMessage({ result: { busy: row.busy, log: row.log, checkpointed: row.checkpointed } });
  } catch (e) {
    let message = e.message;
    if (db !== undefined && db.open) {
      try { db.close(); } catch (closeError) { message += '; then close failed: ' + closeError.message; }
    }
    if (db === undefined || !db.open) Atomics.store(workerData.released, 0, 1);
    parentPort.postMessage({ error: { code: e.code, message } });
  }
});
`;

interface WorkerReply {
  result?: WalCheckpointResult;
  error?: { code?: string; message?: string };
  closed?: boolean;
}

/** An error from the worker, with SQLite's code kept (the store classifies it). */
function workerError(error: { code?: string; message?: string }): Error {
  const e = new Error(error.message ?? 'checkpoint worker failed') as Error & { code?: string };
  if (error.code !== undefined) e.code = error.code;
  return e;
}

/** The better-sqlite3 this module loads, as a path a worker can require. */
function sqliteModulePath(): string {
  const here = typeof __filename === 'string' ? __filename : fileURLToPath(import.meta.url);
  return createRequire(here).resolve('better-sqlite3');
}

/** WAL checkpoints of the database at `path` on a worker thread's own connection. */
export function workerWalCheckpointPort(path: string): WalCheckpointPort {
  let worker: Worker | undefined;
  let pending: ((err: unknown, result?: WalCheckpointResult) => void) | undefined;
  let closing: ((err?: unknown) => void) | undefined;
  let failed: unknown;
  /** [0]: 1 when no worker connection is open (set by the worker, cleared by run). */
  const released = new Int32Array(new SharedArrayBuffer(4));
  released[0] = 1;
  const settle = (err: unknown, result?: WalCheckpointResult) => {
    const cb = pending;
    pending = undefined;
    worker?.unref();
    cb?.(err, result);
  };
  const start = (): Worker => {
    const w = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        sqlite: sqliteModulePath(),
        path,
        released,
        busyTimeoutMs: WAL_CHECKPOINT_BUSY_TIMEOUT_MS,
      },
    });
    w.unref();
    w.on('message', (m: WorkerReply) => {
      if (m.closed) {
        closing?.();
        closing = undefined;
      } else if (m.error !== undefined) settle(workerError(m.error));
      else settle(undefined, m.result);
    });
    w.on('error', (e) => {
      failed = e;
      settle(e);
      closing?.(e);
      closing = undefined;
    });
    w.on('exit', (code) => {
      const e = new Error(`checkpoint worker exited (code ${code})`);
      failed ??= e;
      settle(e);
      closing?.(); // a close that was asked for ends here at the latest
      closing = undefined;
    });
    return w;
  };
  return {
    run(callback) {
      if (pending !== undefined) throw new Error('a checkpoint is already running');
      if (failed !== undefined) {
        queueMicrotask(() => callback(failed));
        return;
      }
      pending = callback;
      Atomics.store(released, 0, 0);
      worker ??= start();
      worker.ref(); // a running checkpoint keeps the process alive (a close() may wait for it)
      worker.postMessage('run');
    },
    released: () => Atomics.load(released, 0) === 1,
    close() {
      const w = worker;
      if (w === undefined || failed !== undefined) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        closing = (err) => (err === undefined ? resolve() : reject(err));
        w.ref();
        w.postMessage('close');
      });
    },
  };
}
