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
// - instances that carry no KV operation (master leases, barriers) count as applied too (paxos
//   reports each to executeOther, in the replay at start as while running), so a checkpoint
//   reflects the whole log and a peer asking for one gets one at the log's end
//   (lockCheckpointState writes it), also from a node restarted since the last key write;
// - loadCheckpointState copies the received file beside the live one, fsyncs it and renames it
//   over the live one (PhxPaxos LoadCheckpointState; idempotent: running it twice gives the same
//   state);
// - each key carries a version, the instance id of its last write, and a write's precondition
//   (If-Match / If-None-Match) is checked here, at apply time, so it holds whatever node
//   proposed it and however often it was retried;
// - a write with an Idempotency-Key records the key and its outcome in the same transaction as
//   its effect (so in every replica and in checkpoints); the same key again returns that outcome
//   and applies nothing. Keys expire by a window of time and count that travels in each write
//   with the proposer's clock, so every replica expires the same ones (the Raft dissertation
//   §6.3, client sessions).
// One idea, kept in one file though it passes 600 lines (issue 21): the StateMachine over one
// SQLite file; apply, reads and the checkpoint hooks share its statements and the rules above.
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ServerError } from './errors';
import {
  decodeWrite,
  KvCommandError,
  type IdempotencyWindow,
  type KvWrite,
  type Precondition,
} from './kv-command';
import { KvWalSync, KV_WAL_SYNC_EVERY_COMMITS, type WalSyncFn } from './kv-wal-sync';
import { KV_SM_ID } from './options';
import type { ExecuteContext, StateMachine } from './stack';

export const KV_FILE = 'kv.sqlite';

/** A key's value and its version (the instance id of its last write; design.md §6). */
export interface KvEntry {
  key: string;
  value: Buffer;
  version: string;
}

/** What a write did; the same on every replica, and the same again for a replay. */
export interface WriteOutcome {
  /**
   * applied: the write took effect. precondition_failed: If-Match / If-None-Match did not hold,
   * nothing changed. idempotency_mismatch: its Idempotency-Key was first used for another
   * request, nothing changed (and nothing is recorded).
   */
  status: 'applied' | 'precondition_failed' | 'idempotency_mismatch';
  /** The instance of the outcome: on a replay, the first request's. */
  instanceId: number;
  /** applied: the version the write gave the key. precondition_failed: the key's version then (null: absent). */
  version: string | null;
  /** The outcome is the first request's with the same Idempotency-Key; this one applied nothing. */
  replayed: boolean;
}

/**
 * What execute() returns (a plain object: a forwarded write carries it back). `skipped`: the
 * instance was already reflected here (a replay at start; no caller waits for it).
 */
export type KvResult =
  | { ok: true; outcome: WriteOutcome }
  | { ok: true; skipped: true }
  | { ok: false; error: string; message: string };

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
  /** Writes whose Idempotency-Key was already recorded: answered the first outcome, applied nothing. */
  idempotentReplays: number;
  /** Writes whose Idempotency-Key was first used for another request: refused. */
  idempotencyMismatches: number;
  /** Writes whose If-Match / If-None-Match did not hold. */
  preconditionFailures: number;
  /** Idempotency keys dropped by the window (its time or its count). */
  idempotencyKeysExpired: number;
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
  /** Deliberate bug for the planted-bug tests: never looks an Idempotency-Key up (applies retries again). */
  unsafeIgnoreIdempotencyKey?: boolean;
  /** The WAL's sync on the thread pool (kv-wal-sync.ts; default fs.fdatasync). */
  walSync?: WalSyncFn;
  /**
   * Commits between those syncs (KV_WAL_SYNC_EVERY_COMMITS); 0: none, SQLite's checkpoint then
   * fsyncs the whole WAL on the event loop (the behaviour before, for the tests' comparison).
   */
  walSyncEveryCommits?: number;
}

export class KvStateMachine implements StateMachine {
  readonly smId = KV_SM_ID;
  /**
   * A value is decoded and its bytes bound into SQLite (which copies them) within execute(); the
   * result holds none of them: a catch-up's receive buffers may be reused once it returns.
   */
  readonly copiesValues = true;
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
    idempotentReplays: 0,
    idempotencyMismatches: 0,
    preconditionFailures: 0,
    idempotencyKeysExpired: 0,
  };
  /** Highest instance whose operations are in the file (committed, or in the open transaction). */
  appliedInstanceId = -1;
  /**
   * The state machine's clock: the largest proposer clock a write carried (replicated, so every
   * replica expires the same idempotency keys; the Raft dissertation §6.3).
   */
  private clockMs = 0;
  /** Sequence number of the last idempotency key recorded (the count window drops the oldest). */
  private idempotencySeq = 0;
  private idempotencyKeys = 0;
  /**
   * At most the oldest recorded key's time (Infinity: none recorded): a write whose window cuts
   * below it expires nothing, and skips the DELETE (writes without keys, a catch-up's thousands).
   */
  private idempotencyOldestAtMs = Infinity;
  /**
   * Writes to each key in the instance being applied: the second write to a key in one batch
   * gets version `<instance id>.1`, so a version names one write (not derived from any clock).
   */
  private versionInstanceId = -1;
  private readonly writesInInstance = new Map<string, number>();
  /** The instance whose savepoint is open in the transaction, and the memory before it. */
  private instanceStart: InstanceStart | undefined;
  private checkpointId = -1;
  private lastCheckpointAtMs: number | undefined;
  private locks = 0;
  private db!: Database.Database;
  private stmts!: ReturnType<KvStateMachine['prepare']>;
  private inTransaction = false;
  /** Bytes of commands in the open transaction (when the WAL is synced: kv-wal-sync.ts). */
  private transactionBytes = 0;
  private wal!: KvWalSync;
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
      this.closeDb();
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
    /** Idempotency keys held now (at most the window's count). */
    idempotencyKeys: number;
    counters: KvCounters;
    /** Syncs of the WAL on the thread pool since the file was opened (kv-wal-sync.ts). */
    walSyncs: number;
  } {
    return {
      appliedInstanceId: this.appliedInstanceId,
      checkpointInstanceId: this.checkpointId,
      lastCheckpointAtMs: this.lastCheckpointAtMs,
      locked: this.isLocked,
      idempotencyKeys: this.idempotencyKeys,
      counters: { ...this.counters },
      walSyncs: this.wal.syncs,
    };
  }

  get(key: string): Buffer | undefined {
    return this.read(key)?.value;
  }

  read(key: string): KvEntry | undefined {
    return this.stmts.get.get(key) as KvEntry | undefined;
  }

  /**
   * The entries whose key starts with `prefix` and comes after `after`, in key order (UTF-8
   * bytes, SQLite's BINARY collation). Lazy: the caller stops when its page is full and must
   * finish or return() the iterator before anything else uses this file.
   */
  entries(prefix: string, after: string | undefined): IterableIterator<KvEntry> {
    const end = prefixEnd(prefix);
    const lower = after ?? '';
    return (
      end === undefined
        ? this.stmts.scanOpen.iterate(lower, prefix)
        : this.stmts.scanBounded.iterate(lower, prefix, end)
    ) as IterableIterator<KvEntry>;
  }

  execute(value: Uint8Array, ctx: ExecuteContext): KvResult {
    if (this.closed) throw new ServerError('E_STOPPING', 'the key-value store is closed');
    if (ctx.instanceId <= this.appliedInstanceId && !this.inTransaction) {
      if (!this.opts.unsafeIgnoreAppliedInstance) {
        this.counters.skippedInstances++;
        return { ok: true, skipped: true };
      }
    }
    if (!this.inTransaction) {
      // One transaction per instance: the items of a batch are executed back to back in one
      // synchronous loop, so a commit queued as a microtask runs after the last of them and
      // before any reply or any other request is handled (a replay at start may put several
      // instances in one transaction: still atomic, and it records the last).
      this.stmts.begin.run();
      this.inTransaction = true;
      this.transactionBytes = 0;
      queueMicrotask(() => this.commit());
    }
    if (this.instanceStart?.instanceId !== ctx.instanceId) {
      // A savepoint per instance: an execute() that throws (a broken record, a full disk) undoes
      // its whole instance, which paxos retries from its first item; the instances before it in
      // this transaction stay.
      if (this.instanceStart !== undefined) this.stmts.release.run();
      this.stmts.savepoint.run();
      this.instanceStart = this.memory(ctx.instanceId);
    }
    this.transactionBytes += value.length;
    try {
      this.appliedInstanceId = Math.max(this.appliedInstanceId, ctx.instanceId);
      let write: KvWrite;
      try {
        write = decodeWrite(value);
      } catch (error) {
        // Never produced by this server: applied as a no-op on every node alike, and counted.
        if (!(error instanceof KvCommandError)) throw error;
        this.counters.badOps++;
        return { ok: false, error: error.code, message: error.message };
      }
      return { ok: true, outcome: this.apply(write, ctx.instanceId) };
    } catch (error) {
      const start = this.instanceStart!;
      this.db.exec('ROLLBACK TO instance');
      this.db.exec('RELEASE instance');
      this.instanceStart = undefined;
      this.appliedInstanceId = start.appliedInstanceId;
      this.clockMs = start.clockMs;
      this.idempotencySeq = start.idempotencySeq;
      this.idempotencyKeys = start.idempotencyKeys;
      this.idempotencyOldestAtMs = start.idempotencyOldestAtMs;
      Object.assign(this.counters, start.counters);
      this.writesInInstance.clear();
      this.versionInstanceId = -1;
      throw error;
    }
  }

  /** What an instance changes besides the file, to put back if it fails half-way. */
  private memory(instanceId: number): InstanceStart {
    return {
      instanceId,
      appliedInstanceId: this.appliedInstanceId,
      clockMs: this.clockMs,
      idempotencySeq: this.idempotencySeq,
      idempotencyKeys: this.idempotencyKeys,
      idempotencyOldestAtMs: this.idempotencyOldestAtMs,
      counters: { ...this.counters },
    };
  }

  /** One write, inside the instance's transaction: the key and its outcome commit together. */
  private apply(write: KvWrite, instanceId: number): WriteOutcome {
    if (write.proposedAtMs !== undefined && write.window !== undefined)
      this.expireIdempotencyKeys(write.proposedAtMs, write.window);
    const idempotencyKey = this.opts.unsafeIgnoreIdempotencyKey ? undefined : write.idempotencyKey;
    const print = idempotencyKey === undefined ? undefined : fingerprint(write);
    if (idempotencyKey !== undefined) {
      const first = this.stmts.getIdempotency.get(idempotencyKey) as IdempotencyRow | undefined;
      if (first !== undefined) {
        if (!Buffer.from(print!).equals(first.fingerprint)) {
          this.counters.idempotencyMismatches++;
          return {
            status: 'idempotency_mismatch',
            instanceId: first.instance,
            version: null,
            replayed: false,
          };
        }
        const outcome = outcomeOf(first, this.file);
        this.counters.idempotentReplays++;
        return { ...outcome, replayed: true };
      }
    }
    // Only a precondition reads the key's version (a catch-up applies ~20,000 writes at once).
    const current =
      write.precondition.kind === 'none'
        ? undefined
        : (this.stmts.getVersion.get(write.key) as { version: string } | undefined)?.version;
    let outcome: WriteOutcome;
    if (!holds(write.precondition, current)) {
      this.counters.preconditionFailures++;
      outcome = {
        status: 'precondition_failed',
        instanceId,
        version: current ?? null,
        replayed: false,
      };
    } else {
      // The writes of before versions (no clock) leave the version every older row has: '0'.
      const version =
        write.proposedAtMs === undefined ? '0' : this.nextVersion(write.key, instanceId);
      if (write.action === 'put') this.stmts.put.run(write.key, write.value, version);
      else this.stmts.delete.run(write.key);
      this.counters.appliedOps++;
      outcome = { status: 'applied', instanceId, version, replayed: false };
    }
    if (idempotencyKey !== undefined && write.window !== undefined) {
      this.idempotencySeq++;
      this.stmts.putIdempotency.run(
        this.idempotencySeq,
        idempotencyKey,
        this.clockMs,
        print,
        instanceId,
        STATUS_CODES.indexOf(outcome.status),
        outcome.version,
      );
      this.idempotencyKeys++;
      this.idempotencyOldestAtMs = Math.min(this.idempotencyOldestAtMs, this.clockMs);
      this.dropIdempotencyKeys(
        this.stmts.expireIdempotencyBySeq.run(this.idempotencySeq - write.window.keys).changes,
      );
    }
    return outcome;
  }

  private nextVersion(key: string, instanceId: number): string {
    if (instanceId !== this.versionInstanceId) {
      this.versionInstanceId = instanceId;
      this.writesInInstance.clear();
    }
    const before = this.writesInInstance.get(key) ?? 0;
    this.writesInInstance.set(key, before + 1);
    return before === 0 ? String(instanceId) : `${instanceId}.${before}`;
  }

  /** Advances the replicated clock to the write's and drops the keys older than the window. */
  private expireIdempotencyKeys(proposedAtMs: number, window: IdempotencyWindow): void {
    // A proposer whose clock is behind does not move it back (keys would live longer).
    this.clockMs = Math.max(this.clockMs, proposedAtMs);
    const cutoffMs = this.clockMs - window.ms;
    if (cutoffMs <= this.idempotencyOldestAtMs) return;
    this.dropIdempotencyKeys(this.stmts.expireIdempotencyByTime.run(cutoffMs).changes);
    // Every key left was recorded at or after the cut-off.
    this.idempotencyOldestAtMs = this.idempotencyKeys === 0 ? Infinity : cutoffMs;
  }

  private dropIdempotencyKeys(n: number): void {
    this.idempotencyKeys -= n;
    this.counters.idempotencyKeysExpired += n;
  }

  /**
   * An instance without a KV operation (a master lease, a barrier) was executed: paxos tells every
   * machine of the instances that carry nothing for it, in the replay at start as while running.
   * It counts toward the applied instance id, the automatic checkpoint and the checkpoint a peer
   * gets, so those reflect the log's end even when no key was written since a restart.
   */
  executeOther(ctx: ExecuteContext): void {
    if (this.closed || ctx.instanceId <= this.appliedInstanceId) return;
    this.appliedInstanceId = ctx.instanceId;
    // In a transaction, its commit records it; else the next commit or checkpoint does.
    if (!this.inTransaction) this.maybeCheckpoint();
  }

  private commit(): void {
    if (!this.inTransaction) return;
    try {
      this.stmts.setMeta.run('applied', this.appliedInstanceId);
      this.stmts.setMeta.run('ops', this.counters.appliedOps);
      this.stmts.setMeta.run('clockMs', this.clockMs);
      this.stmts.setMeta.run('idempotencySeq', this.idempotencySeq);
      this.stmts.commit.run();
      this.inTransaction = false;
      this.instanceStart = undefined;
      this.wal.committed(this.transactionBytes);
    } catch (error) {
      this.inTransaction = false;
      this.instanceStart = undefined;
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
   * Where the replay at start may begin (paxos StateMachine.getAppliedInstanceId): every instance
   * up to here is in this file, so a restart reads the log's tail past it, not every instance
   * since the last checkpoint (up to checkpointEveryInstances, 64 KiB values included).
   */
  getAppliedInstanceId(): number {
    return this.appliedInstanceId;
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
    // The instances applied without a KV operation since the last commit (executeOther).
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
    this.closeDb(); // closing the last connection folds the WAL into the file and removes it
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
    this.closeDb();
  }

  private closeDb(): void {
    this.wal.close();
    this.db.close();
  }

  private open(): void {
    const db = new Database(this.file);
    // This connection is the file's only one while the node runs (the data directory's lock keeps
    // other processes out): it holds SQLite's locks for its life instead of taking and dropping
    // them with fcntl() in every transaction (2 calls per read, 6 per applied instance; the paxos
    // log holds its own too, storage connection.ts, set after WAL mode there because its
    // checkpoint worker shares the -shm file). Set before WAL mode here, so the WAL's index lives
    // in this process's memory, not in a -shm file. Another connection is refused (SQLITE_BUSY).
    db.pragma('locking_mode = EXCLUSIVE');
    // WAL and synchronous=NORMAL: a commit here need not be durable, the paxos log is; a lost
    // tail is replayed at the next start.
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec(
      'CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, ' +
        "version TEXT NOT NULL DEFAULT '0') WITHOUT ROWID;" +
        'CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID;' +
        // seq orders the keys for the count window; at_ms (the replicated clock) for the time one.
        'CREATE TABLE IF NOT EXISTS idempotency (seq INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE, ' +
        'at_ms INTEGER NOT NULL, fingerprint BLOB NOT NULL, instance INTEGER NOT NULL, ' +
        'status INTEGER NOT NULL, version TEXT);' +
        'CREATE INDEX IF NOT EXISTS idempotency_at ON idempotency (at_ms);',
    );
    // A file (or a checkpoint from a peer) of before versions: its rows get version '0' on every
    // replica alike, as the writes of before versions still in a log do when replayed.
    const columns = db.prepare('PRAGMA table_info(kv)').all() as { name: string }[];
    if (!columns.some((c) => c.name === 'version'))
      db.exec("ALTER TABLE kv ADD COLUMN version TEXT NOT NULL DEFAULT '0'");
    this.db = db;
    this.wal = new KvWalSync(
      `${this.file}-wal`,
      this.opts.walSync ?? fs.fdatasync,
      (error) => (this.opts.onError ?? this.opts.onFatal)(error),
      this.opts.walSyncEveryCommits ?? KV_WAL_SYNC_EVERY_COMMITS,
    );
    this.stmts = this.prepare();
    this.appliedInstanceId = this.readMeta('applied', -1);
    this.counters.appliedOps = this.readMeta('ops', 0);
    this.clockMs = this.readMeta('clockMs', 0);
    this.idempotencySeq = this.readMeta('idempotencySeq', 0);
    const keys = db
      .prepare('SELECT COUNT(*) AS n, MIN(at_ms) AS oldest FROM idempotency')
      .get() as {
      n: number;
      oldest: number | null;
    };
    this.idempotencyKeys = keys.n;
    this.idempotencyOldestAtMs = keys.oldest ?? Infinity;
  }

  private prepare() {
    return {
      // Prepared, not exec()'d: a streamed batch opens a savepoint per instance (SQL parsed once).
      begin: this.db.prepare('BEGIN'),
      savepoint: this.db.prepare('SAVEPOINT instance'),
      release: this.db.prepare('RELEASE instance'),
      commit: this.db.prepare('COMMIT'),
      get: this.db.prepare('SELECT key, value, version FROM kv WHERE key = ?'),
      getVersion: this.db.prepare('SELECT version FROM kv WHERE key = ?'),
      put: this.db.prepare('INSERT OR REPLACE INTO kv (key, value, version) VALUES (?, ?, ?)'),
      scanOpen: this.db.prepare(
        'SELECT key, value, version FROM kv WHERE key > ? AND key >= ? ORDER BY key',
      ),
      scanBounded: this.db.prepare(
        'SELECT key, value, version FROM kv WHERE key > ? AND key >= ? AND key < ? ORDER BY key',
      ),
      getIdempotency: this.db.prepare(
        'SELECT fingerprint, instance, status, version FROM idempotency WHERE key = ?',
      ),
      putIdempotency: this.db.prepare(
        'INSERT INTO idempotency (seq, key, at_ms, fingerprint, instance, status, version) ' +
          'VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      expireIdempotencyByTime: this.db.prepare('DELETE FROM idempotency WHERE at_ms < ?'),
      expireIdempotencyBySeq: this.db.prepare('DELETE FROM idempotency WHERE seq <= ?'),
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

/** Stored outcome codes of the idempotency table (the index is what is stored). */
const STATUS_CODES: readonly WriteOutcome['status'][] = ['applied', 'precondition_failed'];

interface InstanceStart {
  instanceId: number;
  appliedInstanceId: number;
  clockMs: number;
  idempotencySeq: number;
  idempotencyKeys: number;
  idempotencyOldestAtMs: number;
  counters: KvCounters;
}

interface IdempotencyRow {
  fingerprint: Buffer;
  instance: number;
  status: number;
  version: string | null;
}

/** A recorded outcome; a row this server did not write is a broken file, not a replay. */
function outcomeOf(row: IdempotencyRow, file: string): Omit<WriteOutcome, 'replayed'> {
  const status = STATUS_CODES[row.status];
  if (status === undefined || !Number.isSafeInteger(row.instance))
    throw new ServerError(
      'E_BAD_STATE',
      `${file}: an idempotency record with status ${row.status} at instance ${row.instance}`,
    );
  return { status, instanceId: row.instance, version: row.version };
}

/** What makes two requests with one Idempotency-Key the same request (not the clock or window). */
function fingerprint(write: KvWrite): Uint8Array {
  const hash = createHash('sha256');
  const p = write.precondition;
  hash.update(`${write.action}\0${p.kind}\0${p.kind === 'version' ? p.version : ''}\0`);
  hash.update(`${Buffer.byteLength(write.key)}\0${write.key}`);
  hash.update(write.value);
  return hash.digest().subarray(0, 16);
}

function holds(precondition: Precondition, version: string | undefined): boolean {
  switch (precondition.kind) {
    case 'none':
      return true;
    case 'version':
      return version === precondition.version;
    case 'exists':
      return version !== undefined;
    case 'absent':
      return version === undefined;
  }
}

/**
 * The least string above every string that starts with `prefix` (code point order, which is
 * UTF-8 byte order); undefined when there is none (empty, or only U+10FFFF).
 */
export function prefixEnd(prefix: string): string | undefined {
  const points = [...prefix];
  while (points.length > 0) {
    const last = points.pop()!.codePointAt(0)!;
    if (last < 0x10ffff) {
      // The surrogates are no code points of a string that is UTF-8.
      const next = last + 1 === 0xd800 ? 0xe000 : last + 1;
      return points.join('') + String.fromCodePoint(next);
    }
  }
  return undefined;
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
