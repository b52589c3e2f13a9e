// The key-value state machine: one SQLite file per node and group, beside (not inside) the paxos
// log. The paxos log is the truth; this file is a cache of its effect that survives restarts:
// - every instance is applied in ONE transaction that also stores the instance id it reached, so
//   a replay after a crash (the node replays from the checkpoint instance id) skips what is
//   already here and applies the rest exactly once;
// - a checkpoint is `VACUUM INTO` a temporary file in the checkpoint directory, fsynced and
//   renamed over the previous one (a reader never sees half a checkpoint). The live file is
//   committed with synchronous=NORMAL and the checkpoint is fsynced, so after an OS crash the
//   live file can be behind its checkpoint: it is then replaced by the checkpoint at start, so
//   the state always reflects at least the checkpoint instance id the node reports (the log
//   replays from there; issue 17, finding 2);
// - instances that carry no KV operation (master leases, barriers) count as applied too (the
//   server reports every executed run, noteExecuted), so a checkpoint reflects the whole log
//   and a peer asking for one gets one at the log's end (lockCheckpointState writes it);
// - loadCheckpointState copies the received file beside the live one, fsyncs it and renames it
//   over the live one (PhxPaxos LoadCheckpointState; idempotent: running it twice gives the same
//   state).
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ServerError } from './errors';
import { KV_SM_ID } from './options';
import type { ExecuteContext, StateMachine } from './stack';

export const KV_FILE = 'kv.sqlite';

/** Operation codes inside a KV value: `u8 op · u32 key length · key (UTF-8) · value`. */
export const OP_PUT = 1;
export const OP_DELETE = 2;

export interface KvOp {
  op: typeof OP_PUT | typeof OP_DELETE;
  key: string;
  value: Uint8Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeOp(op: KvOp): Uint8Array {
  const key = encoder.encode(op.key);
  const out = new Uint8Array(5 + key.length + op.value.length);
  out[0] = op.op;
  new DataView(out.buffer).setUint32(1, key.length);
  out.set(key, 5);
  out.set(op.value, 5 + key.length);
  return out;
}

/** Undefined for bytes that are not an operation (never produced by this server; applied as a no-op). */
export function decodeOp(bytes: Uint8Array): KvOp | undefined {
  if (bytes.length < 5) return undefined;
  const op = bytes[0];
  if (op !== OP_PUT && op !== OP_DELETE) return undefined;
  const keyLength = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(1);
  if (5 + keyLength > bytes.length) return undefined;
  let key: string;
  try {
    key = decoder.decode(bytes.subarray(5, 5 + keyLength));
  } catch {
    return undefined; // not UTF-8: not one of ours (the caller counts it as a bad op)
  }
  return { op, key, value: bytes.subarray(5 + keyLength) };
}

export interface KvResult {
  /** False when the value was not an operation (counted in `badOps`). */
  ok: boolean;
}

export interface KvCounters {
  /** Operations applied (kept in the file: a replay that applied twice would show here). */
  appliedOps: number;
  /** Instances skipped at replay because this file already reflects them. */
  skippedInstances: number;
  badOps: number;
  checkpoints: number;
  /** Of which written on their own (checkpointEveryInstances). */
  automaticCheckpoints: number;
  checkpointLoads: number;
  /** Starts that found the live file behind its checkpoint (or gone) and began from the checkpoint. */
  checkpointReinstalls: number;
  /** Checkpoints written because a peer asked for ours and it was behind (lockCheckpointState). */
  checkpointsForPeers: number;
}

export interface KvStateMachineOptions {
  /** The node's data directory; the file is `<dir>/kv-g<group>/kv.sqlite`. */
  dir: string;
  group: number;
  /** A commit of this file failed: the process must stop (the log replays it at restart). */
  onFatal: (error: Error) => void;
  /** Deliberate bug for the planted-bug test: re-applies instances this file already reflects. */
  unsafeIgnoreAppliedInstance?: boolean;
  /**
   * Writes a checkpoint on its own once this many instances were applied past the last one
   * (0: never). It bounds the replay at restart; compacting the log is the checkpoint package's.
   */
  checkpointEveryInstances?: number;
  /** An automatic checkpoint failed (a bug or a broken disk): the server counts it as a task error. */
  onError?: (error: Error) => void;
  /** Clock for lastCheckpointAtMs of automatic checkpoints. */
  nowMs?: () => number;
}

export class KvStateMachine implements StateMachine {
  readonly smId = KV_SM_ID;
  readonly group: number;
  readonly directory: string;
  readonly file: string;
  readonly checkpointDir: string;
  readonly counters: KvCounters = {
    appliedOps: 0,
    skippedInstances: 0,
    badOps: 0,
    checkpoints: 0,
    automaticCheckpoints: 0,
    checkpointLoads: 0,
    checkpointReinstalls: 0,
    checkpointsForPeers: 0,
  };
  /** Highest instance whose operations are in the file (committed, or in the open transaction). */
  appliedInstanceId = -1;
  private checkpointId = -1;
  private lastCheckpointAtMs: number | undefined;
  private locks = 0;
  private db!: Database.Database;
  private stmts!: ReturnType<KvStateMachine['prepare']>;
  private inTransaction = false;
  private checkpointScheduled = false;
  private closed = false;

  constructor(private readonly opts: KvStateMachineOptions) {
    this.group = opts.group;
    this.directory = path.join(opts.dir, `kv-g${opts.group}`);
    this.file = path.join(this.directory, KV_FILE);
    this.checkpointDir = path.join(this.directory, 'checkpoint');
    fs.mkdirSync(this.checkpointDir, { recursive: true });
    const checkpointFile = path.join(this.checkpointDir, KV_FILE);
    if (fs.existsSync(checkpointFile)) this.checkpointId = readAppliedInstanceId(checkpointFile);
    this.open();
    // The live file is gone, or an OS crash rolled it back below its checkpoint (it is not
    // fsynced, the checkpoint is): the node replays the log from the checkpoint on, so the state
    // must be the checkpoint's, else the instances between are never applied here.
    if (this.appliedInstanceId < this.checkpointId) {
      this.db.close();
      installFile(checkpointFile, this.file);
      this.counters.checkpointReinstalls++;
      this.open();
    }
  }

  get isLocked(): boolean {
    return this.locks > 0;
  }

  status(): {
    appliedInstanceId: number;
    checkpointInstanceId: number;
    lastCheckpointAtMs: number | undefined;
    locked: boolean;
    counters: KvCounters;
  } {
    return {
      appliedInstanceId: this.appliedInstanceId,
      checkpointInstanceId: this.checkpointId,
      lastCheckpointAtMs: this.lastCheckpointAtMs,
      locked: this.isLocked,
      counters: { ...this.counters },
    };
  }

  get(key: string): Buffer | undefined {
    const row = this.stmts.get.get(key) as { value: Buffer } | undefined;
    return row?.value;
  }

  execute(value: Uint8Array, ctx: ExecuteContext): KvResult {
    if (this.closed) throw new ServerError('E_STOPPING', 'the key-value store is closed');
    if (ctx.instanceId <= this.appliedInstanceId && !this.inTransaction) {
      if (!this.opts.unsafeIgnoreAppliedInstance) {
        this.counters.skippedInstances++;
        return { ok: true };
      }
    }
    if (!this.inTransaction) {
      // One transaction per instance: the items of a batch are executed back to back in one
      // synchronous loop, so a commit queued as a microtask runs after the last of them and
      // before any reply or any other request is handled (a replay at start may put several
      // instances in one transaction: still atomic, and it records the last).
      this.db.exec('BEGIN');
      this.inTransaction = true;
      queueMicrotask(() => this.commit());
    }
    this.appliedInstanceId = Math.max(this.appliedInstanceId, ctx.instanceId);
    const op = decodeOp(value);
    if (op === undefined) {
      this.counters.badOps++;
      return { ok: false };
    }
    if (op.op === OP_PUT) this.stmts.put.run(op.key, op.value);
    else this.stmts.delete.run(op.key);
    this.counters.appliedOps++;
    return { ok: true };
  }

  /**
   * The group executed every instance below `nextInstanceId` (the server's `learned` listener):
   * those that carried no KV operation are reflected here too, so they count toward the
   * applied instance id, the automatic checkpoint and the checkpoint a peer gets.
   */
  noteExecuted(nextInstanceId: number): void {
    if (this.closed || nextInstanceId - 1 <= this.appliedInstanceId) return;
    this.appliedInstanceId = nextInstanceId - 1;
    // In a transaction, its commit records it; else the next commit or checkpoint does.
    if (!this.inTransaction) this.maybeCheckpoint();
  }

  private commit(): void {
    if (!this.inTransaction) return;
    try {
      this.stmts.setMeta.run('applied', this.appliedInstanceId);
      this.stmts.setMeta.run('ops', this.counters.appliedOps);
      this.db.exec('COMMIT');
      this.inTransaction = false;
    } catch (error) {
      this.inTransaction = false;
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      this.opts.onFatal(error as Error);
      return;
    }
    this.maybeCheckpoint();
  }

  private maybeCheckpoint(): void {
    const every = this.opts.checkpointEveryInstances ?? 0;
    if (every <= 0 || this.checkpointScheduled || this.closed) return;
    if (this.appliedInstanceId - this.checkpointId < every) return;
    this.checkpointScheduled = true;
    // Out of the apply path: after the replies of this instance went out.
    setImmediate(() => {
      this.checkpointScheduled = false;
      if (this.closed || this.isLocked || this.inTransaction) return;
      try {
        this.checkpoint((this.opts.nowMs ?? Date.now)());
        this.counters.automaticCheckpoints++;
      } catch (error) {
        if (this.opts.onError) this.opts.onError(error as Error);
        else throw error;
      }
    });
  }

  // ---- checkpoint hooks (PhxPaxos StateMachine) -----------------------------------------------

  getCheckpointInstanceId(): number {
    return this.checkpointId;
  }

  /**
   * A peer is about to copy the checkpoint: bring it up to what is applied first, so that a
   * node that lost its state can install it whatever its log holds (a checkpoint older than the
   * asker's log is refused as stale; in a quiet cluster none newer would ever come: finding 6).
   */
  lockCheckpointState(): void {
    if (this.locks === 0 && !this.closed && this.appliedInstanceId > this.checkpointId) {
      this.commit();
      this.checkpoint((this.opts.nowMs ?? Date.now)());
      this.counters.checkpointsForPeers++;
    }
    this.locks++;
  }

  unlockCheckpointState(): void {
    if (this.locks === 0) throw new Error('unlockCheckpointState without lockCheckpointState');
    this.locks--;
  }

  getCheckpointState(): { dir: string; files: string[] } {
    return { dir: this.checkpointDir, files: [KV_FILE] };
  }

  /** Writes a checkpoint of the current state; returns the instance id it reflects. */
  checkpoint(nowMs: number): number {
    if (this.isLocked)
      throw new ServerError('E_CHECKPOINT_LOCKED', 'the checkpoint is being sent to a peer');
    if (this.inTransaction) throw new Error('checkpoint() inside an open apply transaction');
    const target = path.join(this.checkpointDir, KV_FILE);
    const temp = `${target}.tmp`;
    fs.rmSync(temp, { force: true });
    // The instances applied without a KV operation since the last commit (noteExecuted).
    this.stmts.setMeta.run('applied', this.appliedInstanceId);
    this.db.prepare('VACUUM INTO ?').run(temp);
    fsyncFile(temp);
    fs.renameSync(temp, target);
    fsyncFile(this.checkpointDir);
    this.checkpointId = this.appliedInstanceId;
    this.lastCheckpointAtMs = nowMs;
    this.counters.checkpoints++;
    return this.checkpointId;
  }

  loadCheckpointState(
    _group: number,
    dir: string,
    files: string[],
    checkpointInstanceId: number,
  ): void {
    if (!files.includes(KV_FILE))
      throw new ServerError(
        'E_BAD_CHECKPOINT',
        `a checkpoint without ${KV_FILE}: ${files.join(', ')}`,
      );
    const source = path.join(dir, KV_FILE);
    const found = readAppliedInstanceId(source);
    if (found !== checkpointInstanceId)
      throw new ServerError(
        'E_BAD_CHECKPOINT',
        `checkpoint file reflects instance ${found}, expected ${checkpointInstanceId}`,
      );
    if (this.inTransaction)
      throw new Error('loadCheckpointState() inside an open apply transaction');
    this.db.close(); // closing the last connection folds the WAL into the file and removes it
    installFile(source, this.file);
    if (path.resolve(dir) !== path.resolve(this.checkpointDir))
      installFile(source, path.join(this.checkpointDir, KV_FILE));
    this.checkpointId = checkpointInstanceId;
    this.counters.checkpointLoads++;
    this.open();
  }

  close(): void {
    if (this.closed) return;
    this.commit();
    this.closed = true;
    this.db.close();
  }

  private open(): void {
    const db = new Database(this.file);
    // WAL and synchronous=NORMAL: a commit here need not be durable, the paxos log is; a lost
    // tail is replayed at the next start.
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec(
      'CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;' +
        'CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID;',
    );
    this.db = db;
    this.stmts = this.prepare();
    this.appliedInstanceId = this.readMeta('applied', -1);
    this.counters.appliedOps = this.readMeta('ops', 0);
  }

  private prepare() {
    return {
      get: this.db.prepare('SELECT value FROM kv WHERE key = ?'),
      put: this.db.prepare('INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)'),
      delete: this.db.prepare('DELETE FROM kv WHERE key = ?'),
      getMeta: this.db.prepare('SELECT v FROM meta WHERE k = ?'),
      setMeta: this.db.prepare('INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)'),
    };
  }

  private readMeta(k: string, fallback: number): number {
    const row = this.stmts.getMeta.get(k) as { v: number } | undefined;
    return row?.v ?? fallback;
  }
}

/** The applied instance id stored in a KV file (a checkpoint); -1 when it has none. */
export function readAppliedInstanceId(file: string): number {
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch (error) {
    throw new ServerError('E_BAD_CHECKPOINT', `cannot open ${file}: ${(error as Error).message}`);
  }
  try {
    const row = db.prepare("SELECT v FROM meta WHERE k = 'applied'").get() as
      { v: number } | undefined;
    return row?.v ?? -1;
  } catch (error) {
    throw new ServerError(
      'E_BAD_CHECKPOINT',
      `${file} is not a KV file: ${(error as Error).message}`,
    );
  } finally {
    db.close();
  }
}

function fsyncFile(p: string): void {
  const fd = fs.openSync(p, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Copies `source` beside `target`, makes it durable, and renames it over `target`. */
function installFile(source: string, target: string): void {
  const temp = `${target}.installing`;
  fs.copyFileSync(source, temp);
  fsyncFile(temp);
  // A WAL left beside the target belongs to the old file and must not be applied to the new one.
  fs.rmSync(`${target}-wal`, { force: true });
  fs.rmSync(`${target}-shm`, { force: true });
  fs.renameSync(temp, target);
  fsyncFile(path.dirname(target));
}
