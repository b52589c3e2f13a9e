// WAL checkpoints (SQLite's copy of the WAL into the database; not the state-machine checkpoints
// of @tspaxos/checkpoint): when, where, and what bounds the WAL.
//
// They are the store's (wal_autocheckpoint=0): SQLite never checkpoints inside a write call.
// The store runs `PRAGMA wal_checkpoint(PASSIVE)` off every caller's path: at the end of a group
// commit once the WAL holds about walCheckpointPages pages, and, if only sync:false writes come,
// when it holds walCheckpointMaxPages. So a sync:false stream causes no fsync at all until then.
//
// Why a checkpoint keeps the group commit's "fsync of the WAL" argument (group-commit.ts) across
// WAL restarts: in synchronous=NORMAL SQLite fsyncs the WAL before it copies and the database
// after, before it records the copy as done, and only a later write transaction restarts the WAL
// from its start. So no frame is overwritten before its content is durable in the database.
//
// Where: the unsynced streams' checkpoints run on a worker thread's own connection
// (wal-checkpoint-worker.ts), so neither the copy nor SQLite's fsyncs hold the event loop. For
// sync writers (issue 22: their rounds fsync only segments, so the WAL is not durable) the round
// after which a checkpoint is due fsyncs the WAL too, on the thread pool after its segments
// (acknowledging its writes first), and the checkpoint runs at its end on the event loop before
// any other write: SQLite's fsync of the WAL finds nothing to write and no segment needs an
// fdatasync, so the loop is held for the copy and the database's fsync only; and as no write
// comes meanwhile it copies every frame, so the next write restarts the WAL. On the worker a
// continuous writer never lets the WAL restart (and the store's commits would run in
// locking_mode NORMAL meanwhile).
//
// The bound: the WAL restarts only when a checkpoint copied every frame and no write came
// meanwhile, so a writer that never pauses keeps it growing. Once it extends to twice
// walCheckpointMaxPages a checkpoint runs on the event loop, inside the write that got there
// (the WAL stays bounded, at the price of that stall); if the worker's checkpoint holds
// SQLite's checkpoint lock then, an unsynced write resolves only when that checkpoint is over
// (backpressure).
//
// Locking: the store's connection runs in locking_mode=EXCLUSIVE (no shared-memory lock per
// transaction). For a worker checkpoint it switches to NORMAL (effective at its next read), the
// worker opens its own connection, checkpoints, closes it and answers, and the store takes
// EXCLUSIVE back. Meanwhile the lock file (lock-file.ts) keeps other processes out, and the
// store's connection waits for SQLite's locks (busy_timeout) rather than failing: the worker's
// connection takes the WAL's write lock for a moment whenever it reads the WAL index's header
// while the store's commit is writing it (SQLite's walIndexReadHdr re-reads it under that lock),
// and with no wait a put then failed with E_LOCKED (SQLITE_BUSY; the bench's yielding caller
// did, at random). In EXCLUSIVE mode the connection never waits (timeout 0): nothing else holds
// a lock then, and taking EXCLUSIVE back must not hold the event loop while a tool has the
// database open (retakeBusy).
import type Database from 'better-sqlite3';
import { StorageError } from './errors';
import type { FsyncFn, StickyFailure, StorageUnsafeFaults, SyncStats } from './group-commit';
import {
  WAL_CHECKPOINT_BUSY_TIMEOUT_MS,
  type WalCheckpointPort,
  type WalCheckpointResult,
  workerWalCheckpointPort,
} from './wal-checkpoint-worker';

/**
 * WAL pages after which the store checkpoints at the end of the next group commit: SQLite's
 * wal_autocheckpoint default (1000), which was ours before the store took checkpoints over.
 */
export const DEFAULT_WAL_CHECKPOINT_PAGES = 1000;
/**
 * WAL pages after which the store checkpoints even if no sync write comes (the only fsyncs
 * sync:false writes can cause): 4,096 pages of 4 KiB = 16 MiB of WAL, ours. With values out of
 * line that is ~10⁵ index rows (GBs of values); a checkpoint then copies at most 16 MiB (bench:
 * "longest single put" with twice this inside a write, the bound for a caller that never yields).
 */
export const DEFAULT_WAL_CHECKPOINT_MAX_PAGES = 4_096;
/**
 * How long the store's connection waits for a SQLite lock while it lets the worker's connection
 * in (locking_mode NORMAL): the worker holds the WAL's write lock only for a moment (a header
 * re-read, microseconds; SQLite's busy handler retries after 1 ms, then 2, 5, ...), so this is a
 * bound, not a wait: the worker's own, 5 s. A write past it fails with E_LOCKED, as before.
 */
export const SHARED_BUSY_TIMEOUT_MS = WAL_CHECKPOINT_BUSY_TIMEOUT_MS;
/** SQLite's page size here (its default), used to estimate how many WAL pages a commit adds. */
const PAGE_BYTES = 4096;

export interface WalCheckpointOptions {
  /**
   * WAL pages (4 KiB) after which the end of a group commit checkpoints the WAL into the
   * database (DEFAULT_WAL_CHECKPOINT_PAGES). Small values exercise WAL restarts (tests).
   */
  walCheckpointPages?: number;
  /** WAL pages after which a checkpoint runs with no sync write in sight (DEFAULT_WAL_CHECKPOINT_MAX_PAGES). */
  walCheckpointMaxPages?: number;
  /**
   * Where WAL checkpoints run: 'worker' (default: a worker thread's own connection, off the
   * event loop) or 'inline' (the store's connection, on the event loop: the behaviour before
   * the worker, kept for comparison in the bench and as the planted bug of the stall test).
   */
  walCheckpointIn?: 'worker' | 'inline';
  /** Replaces the worker checkpoint runner (given the database path): fault injection and tests. */
  walCheckpointPort?: (databasePath: string) => WalCheckpointPort;
}

interface WalCheckpointPolicy {
  pages: number;
  maxPages: number;
  /** The runner for unsynced streams' checkpoints; undefined: inline, on the event loop. */
  port: ((databasePath: string) => WalCheckpointPort) | undefined;
}

/** Checks the options (E_BAD_ARGUMENT) and fills in the defaults. */
export function resolveWalCheckpointOptions(options: WalCheckpointOptions): WalCheckpointPolicy {
  const pages = positiveInteger(
    options.walCheckpointPages,
    DEFAULT_WAL_CHECKPOINT_PAGES,
    'walCheckpointPages',
  );
  const maxPages = positiveInteger(
    options.walCheckpointMaxPages,
    Math.max(DEFAULT_WAL_CHECKPOINT_MAX_PAGES, pages),
    'walCheckpointMaxPages',
  );
  const where = options.walCheckpointIn ?? 'worker';
  if (where !== 'worker' && where !== 'inline')
    throw new StorageError('E_BAD_ARGUMENT', "walCheckpointIn must be 'worker' or 'inline'");
  const port =
    where === 'inline' ? undefined : (options.walCheckpointPort ?? workerWalCheckpointPort);
  return { pages, maxPages, port };
}

function positiveInteger(value: number | undefined, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1)
    throw new StorageError('E_BAD_ARGUMENT', `${name} must be a positive integer`);
  return v;
}

export interface WalCheckpointerPorts {
  /** The store's connection. */
  db: Database.Database;
  path: string;
  /** The WAL (group-commit.ts openWal); undefined when read-only: no checkpoint runs. */
  walFd: number | undefined;
  fsync: FsyncFn;
  stats: SyncStats;
  failure: StickyFailure;
  /** Wakes a close() waiting for a checkpoint (the group commit's kick). */
  wake: () => void;
  /**
   * Segment entries are written whose fdatasync has not begun: a checkpoint makes the WAL's
   * index rows durable, so their entries go first (syncSegments: a group commit round, on the
   * thread pool; or syncSegmentsHere inside a write).
   */
  segmentsDirty: () => boolean;
  /** Resolves after a group commit round that began after the call (GroupCommit.segmentsSynced). */
  syncSegments: () => Promise<void>;
  syncSegmentsHere: () => void;
  /** Planted bugs (group-commit.ts); tests only. */
  faults?: StorageUnsafeFaults;
}

export class WalCheckpointer {
  /**
   * Times the store could not take locking_mode=EXCLUSIVE back after a worker checkpoint
   * (another connection, e.g. a tool, had the database open): it then runs in NORMAL mode,
   * correct but slower, and tries again after the next checkpoint.
   */
  readonly lockStats = { retakeBusy: 0 };
  /** Estimated WAL pages not yet copied into the database. */
  private walPages = 0;
  /** Estimated extent of the WAL in pages (it restarts from its start only after a complete checkpoint). */
  private walEnd = 0;
  private scheduled = false;
  /** Where unsynced streams' checkpoints run (undefined: inline, on the store's connection). */
  private readonly port: WalCheckpointPort | undefined;
  /** A checkpoint is running on the port. */
  private running = false;
  /** The fsync before an inline checkpoint is under way. */
  private syncing = false;
  /** Unsynced writes held back until the worker's checkpoint is over (see unsyncedWrite). */
  private waiters: Array<() => void> = [];
  /** walPages when the last checkpoint started. */
  private pagesAtStart = 0;
  /** Counts inline checkpoints, so that a worker's result that overlapped one is not used for the estimates. */
  private inlineRuns = 0;
  /** The store let go of its exclusive lock for a worker checkpoint. */
  private shared = false;
  /** A read that makes a locking_mode change take effect. */
  private touch: Database.Statement | undefined;
  private stopped = false;

  constructor(
    private readonly ports: WalCheckpointerPorts,
    private readonly policy: WalCheckpointPolicy,
    readonly: boolean,
  ) {
    this.port = readonly ? undefined : policy.port?.(ports.path);
  }

  /** A checkpoint or its fsync is under way (close() waits for it). */
  get busy(): boolean {
    return this.syncing || this.running;
  }

  /** No checkpoint starts after this (close()). */
  stop(): void {
    this.stopped = true;
  }

  /** Ends the worker, once no checkpoint runs: its connection closes before the store's. */
  async close(): Promise<void> {
    await this.port?.close();
  }

  /**
   * Counts the WAL pages a commit added (an estimate: its bytes, plus the pages it touches).
   * Past walCheckpointMaxPages a checkpoint is scheduled; once the WAL extends to twice that (a
   * checkpoint that cannot keep up, or a caller writing in a loop that never lets the event
   * loop turn) one runs here, inside the write, so the WAL stays bounded whatever the caller
   * does.
   */
  wrote(bytes: number, pages = 1): void {
    const n = pages + Math.floor(bytes / PAGE_BYTES);
    this.walPages += n;
    this.walEnd += n;
    if (this.walEnd >= 2 * this.policy.maxPages) this.runHere();
    else if (this.walPages >= this.policy.maxPages) this.schedule();
  }

  /**
   * A checkpoint is due after the next group commit: the round fsyncs the WAL (GroupCommit),
   * on the thread pool, after the segments its rows name.
   */
  get due(): boolean {
    return this.walPages >= this.policy.pages && !this.busy && !this.scheduled && !this.stopped;
  }

  /**
   * After a group commit: the checkpoint once the WAL holds walCheckpointPages. When the round
   * fsynced the WAL (`walSynced`) and no segment has bytes not yet fdatasynced, it runs at
   * once, before any write: no fdatasync on the event loop (the checkpoint makes the WAL's rows
   * durable, so the entries they name must be), and SQLite's own fsync of the WAL finds little
   * to write (commits made during the round's fsync); the event loop is held for the copy and
   * the database's fsync. As no write comes while it runs, it copies every frame and the next
   * write restarts the WAL. With segments written meanwhile (sync:false large values) it is
   * an unsynced stream's checkpoint (schedule).
   */
  afterGroupCommit(walSynced: boolean): void {
    if (!walSynced || !this.due) return;
    if (this.unsyncedSegments()) this.schedule();
    else this.runHere();
  }

  /**
   * What an unsynced write waits for. Backpressure: the WAL reached twice walCheckpointMaxPages
   * while the worker's checkpoint runs (the fallback on the event loop cannot run then: SQLite's
   * checkpoint lock is taken), so the write resolves only when that checkpoint is over. A writer
   * that awaits its writes (the learner does) cannot grow the WAL further than what it had in
   * flight.
   */
  unsyncedWrite(): Promise<void> {
    if (this.running && this.walEnd >= 2 * this.policy.maxPages) {
      this.ports.stats.backpressureWaits++;
      return new Promise((resolve) => this.waiters.push(resolve));
    }
    return Promise.resolve();
  }

  /**
   * Takes the exclusive lock back as soon as the worker's connection is closed, not when its
   * answer gets an event-loop turn (a caller may not yield for a while). Called at every call.
   */
  retakeLockIfReleased(): void {
    if (this.shared && this.port?.released?.() === true) this.retakeLock();
  }

  /**
   * Starts a checkpoint of an unsynced stream off every caller's path. On the worker it starts
   * at once: SQLite's fsyncs and the copy run on the worker's thread. Inline, the WAL is first
   * fsynced on the thread pool, then it runs when that fsync is done: SQLite's own fsync of the WAL
   * inside the checkpoint then finds little to write, and the event loop is held mostly while
   * pages are copied and the database is fsynced.
   */
  private schedule(): void {
    if (this.scheduled || this.running || this.syncing) return;
    const { walFd, failure, path } = this.ports;
    if (this.stopped || failure.error !== undefined || walFd === undefined) return;
    if (this.ports.segmentsDirty()) {
      // The entries the WAL's rows name are made durable before the checkpoint makes the rows so.
      this.syncing = true;
      this.ports.syncSegments().then(
        () => {
          this.syncing = false;
          this.schedule();
          this.ports.wake();
        },
        (err: unknown) => {
          this.syncing = false;
          failure.record(err, `fdatasync of the segments before a checkpoint of ${path} failed`);
          this.ports.wake();
        },
      );
      return;
    }
    const port = this.port;
    if (port !== undefined) {
      try {
        this.setLocking('NORMAL'); // lets the worker's connection in
        this.shared = true;
      } catch (e) {
        failure.record(e, `checkpoint of ${path}: releasing the lock failed`);
        return;
      }
      this.running = true;
      this.pagesAtStart = this.walPages;
      const inlineBefore = this.inlineRuns;
      port.run((err, result) => {
        this.running = false;
        // The writes held back by the WAL's bound go on (a failure reaches them at their next write).
        for (const wake of this.waiters.splice(0)) wake();
        this.retakeLock();
        if (err !== undefined && err !== null) {
          failure.record(err, `checkpoint of ${path} (worker); the log refuses further writes`);
        } else if (result !== undefined && result.busy === 0) {
          this.ports.stats.walCheckpoints++;
          if (this.inlineRuns === inlineBefore) this.checkpointed(result);
        }
        this.ports.wake();
        // The WAL did not restart (writes came during the checkpoint): copy the rest.
        if (this.walEnd >= this.policy.maxPages && this.walPages > 0) this.schedule();
      });
      return;
    }
    this.scheduled = true;
    const run = () => {
      this.scheduled = false;
      this.runHere();
      this.ports.wake();
    };
    this.syncing = true;
    this.ports.stats.fsyncs++;
    this.ports.fsync(walFd, (err) => {
      this.syncing = false;
      if (err) {
        this.scheduled = false;
        failure.record(err, `fsync of ${path}-wal before a checkpoint failed`);
        this.ports.wake();
        return;
      }
      run();
    });
  }

  /**
   * Sets SQLite's locking mode: NORMAL takes effect at a read, EXCLUSIVE at a write transaction.
   * In NORMAL mode the connection waits up to SHARED_BUSY_TIMEOUT_MS for a lock the worker's
   * connection holds for a moment (see the file header); in EXCLUSIVE mode it never waits.
   */
  private setLocking(mode: 'NORMAL' | 'EXCLUSIVE'): void {
    const db = this.ports.db;
    db.pragma(`busy_timeout = ${mode === 'NORMAL' ? SHARED_BUSY_TIMEOUT_MS : 0}`);
    db.pragma(`locking_mode = ${mode}`);
    if (mode === 'EXCLUSIVE') {
      db.exec('BEGIN IMMEDIATE; COMMIT');
      return;
    }
    this.touch ??= db.prepare('SELECT 1 FROM schema_version LIMIT 1');
    this.touch.get();
  }

  /**
   * Back to locking_mode=EXCLUSIVE after a worker checkpoint (the worker's connection is closed
   * by then). SQLITE_BUSY (someone else has the database open) is counted, and the store stays
   * in NORMAL mode until the next checkpoint tries again; anything else fails the log.
   */
  private retakeLock(): void {
    if (this.stopped || !this.shared) return;
    this.shared = false;
    const db = this.ports.db;
    try {
      this.setLocking('EXCLUSIVE');
    } catch (e) {
      if (db.inTransaction) db.exec('ROLLBACK');
      db.pragma('locking_mode = NORMAL');
      if (String((e as { code?: unknown })?.code ?? '').startsWith('SQLITE_BUSY')) {
        this.lockStats.retakeBusy++;
        return;
      }
      this.ports.failure.record(e, `checkpoint of ${this.ports.path}: taking the lock back failed`);
    }
  }

  /** Segments have bytes not yet fdatasynced, which a checkpoint must wait for. */
  private unsyncedSegments(): boolean {
    return this.ports.segmentsDirty() && this.ports.faults?.checkpointOverUnsyncedSegments !== true;
  }

  /** Updates the WAL estimates after a checkpoint that saw `result`. */
  private checkpointed(result: WalCheckpointResult): void {
    const during = Math.max(0, this.walPages - this.pagesAtStart);
    this.walPages = during + Math.max(0, result.log - result.checkpointed);
    // The next write restarts the WAL only if every frame was copied and none came meanwhile.
    this.walEnd = this.walPages === 0 ? 0 : Math.max(result.log, 0) + during;
  }

  /**
   * Copies the WAL into the database on the store's connection, on the event loop (PASSIVE:
   * never waits; while the worker's checkpoint runs it finds SQLite's checkpoint lock taken and
   * does nothing, and the next write tries again). SQLite fsyncs the WAL before and the database
   * after (synchronous=NORMAL). A failure fails every later write, as a failed fsync does.
   */
  private runHere(): void {
    const { walFd, failure, path, db, stats } = this.ports;
    if (this.stopped || failure.error !== undefined || walFd === undefined) return;
    try {
      if (this.unsyncedSegments()) this.ports.syncSegmentsHere();
      const [row] = db.pragma('wal_checkpoint(PASSIVE)') as WalCheckpointResult[];
      if (row === undefined || row.busy !== 0) return;
      stats.walCheckpoints++;
      stats.inlineWalCheckpoints++;
      this.inlineRuns++;
      this.pagesAtStart = this.walPages;
      this.checkpointed(row);
    } catch (e) {
      failure.record(e, `checkpoint of ${path}; the log refuses further writes`);
    }
  }
}
