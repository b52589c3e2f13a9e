// Durability: the group commit, and the fsync rule it keeps.
//
// A write commits inside its call: records of a sync write (and every record of a batch with a
// large value) are appended to their segment as entries (segment-entry.ts), then the index rows
// commit into the WAL (synchronous=NORMAL: in the OS, not fsynced). A `sync: true` write then
// waits for the group commit, run on libuv's thread pool so the event loop never blocks on it:
//   (1) fdatasync of every segment with bytes written since the last round began, and fsync of
//       any directory that got a new segment file, in parallel; and, only if a write in the
//       round is durable through the WAL alone (a meta value, a dropped group, an index row with
//       no entry) or a WAL checkpoint is due (its writes then acknowledged after (1)),
//   (2) fsync of the WAL, once the segments written during (1) are fdatasynced too.
// A round that needs one fdatasync and nothing else (one segment written, no new directory entry,
// no WAL fsync) runs it on the event loop instead when the store is opened with `syncInline`
// (sqlite-log-store.ts says what it saves and what it costs).
// Every record written before (1) starts is durable when the round ends; writes committed
// meanwhile share the next round. So a durable write of records is one append and one
// fdatasync: the segments are the truth, and an open replays the entries the durable index
// lacks (recovery.ts).
//
// The writes themselves are grouped too (issue 22: as one append and one commit each, 64
// concurrent single sync puts ran at 4.5x sequential, 13.3x before). A sync write of entries
// starts its round in a microtask (durableSoon), not at once; one that comes while a round runs
// or is due is checked and encoded at its call and queued, and the round writes every queued
// one as it begins (beforeRound: one pwritev per segment, one transaction for all their rows),
// so they share its fdatasync. A queued write joins only a round that begins after it is
// written: none is acknowledged by an fdatasync that may have missed its bytes. Any other call
// on the store writes the queue first, so reads and later writes see it, in order. A durable index row never names segment bytes that are not: (2) and a
// WAL checkpoint (wal-checkpointer.ts) come after the fdatasync of every segment written
// before them.
//
// A `sync: false` write (the learner's catch-up) causes no fsync and no fdatasync (until the WAL
// needs a checkpoint: wal-checkpointer.ts); a power cut can lose it until a later round or
// close(). As the OS may write the WAL page of an index row back on its own before the segment
// page of its entry, a large one can then come back as a row whose bytes are missing: it reads
// as E_CORRUPT_RECORD (the value's CRC is in the row), never as a wrong value.
//
// The rule after a failure: once an fsync or fdatasync fails, the kernel may have dropped the
// unwritten pages, and a retry can succeed without them (PostgreSQL's "fsyncgate", 2018). So
// the failure fails its round and every later write (StickyFailure), rather than acknowledge
// data that may be gone.
import { closeSync, existsSync, fdatasyncSync, fsyncSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { StorageError } from './errors';
import type { Segments } from './segments';
import { wrap } from './sqlite-errors';

export type FsyncFn = (fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => void;

/**
 * What the store did to make writes durable: fsyncs (WAL and directories) and fdatasyncs
 * (segments), the sync writes they covered, of which `queuedSyncWrites` came while a round ran
 * and were written together as the next began, the WAL checkpoints (each: SQLite's own two
 * fsyncs), of which `inlineWalCheckpoints` on the event loop (and `inlineFdatasyncs` of the
 * fdatasyncs, syncInline), and the unsynced writes held back
 * by the WAL's bound (wal-checkpointer.ts).
 */
export interface SyncStats {
  fsyncs: number;
  fdatasyncs: number;
  syncWrites: number;
  queuedSyncWrites: number;
  walCheckpoints: number;
  inlineWalCheckpoints: number;
  /** Of `fdatasyncs`, those run on the event loop (syncInline). */
  inlineFdatasyncs: number;
  backpressureWaits: number;
}

/** The first failed fsync or checkpoint: from then on every write fails with it (the rule above). */
export class StickyFailure {
  error: StorageError | undefined;

  record(e: unknown, what: string): void {
    this.error ??= wrap(e, 'E_IO', what);
  }
}

/**
 * Opens the WAL of the database at `path` for the group commit's fsync, and fsyncs its directory
 * once so the names of the database and its WAL are durable too (SQLite does not for the WAL).
 * The WAL is reused in place, never deleted while the log is open, so the descriptor always
 * names the file SQLite writes to.
 */
export function openWal(path: string): number {
  const wal = `${path}-wal`;
  // SQLite opened the WAL at the first read of migrate(); never fall back to the database file:
  // closing a second descriptor of it would drop SQLite's POSIX locks on it.
  if (!existsSync(wal)) throw new StorageError('E_OPEN_FAILED', `${wal} was not created`);
  const fd = openSync(wal, 'r');
  try {
    if (process.platform !== 'win32') {
      const dirFd = openSync(dirname(path), 'r');
      try {
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
    }
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

/**
 * Planted bugs for the crash tests (style.md 13), off unless a test sets them: each breaks the
 * fsync rule above, and test/power-loss.test.ts must catch it.
 */
export interface StorageUnsafeFaults {
  /** Planted: a round acknowledges its writes when it starts, before its fdatasyncs end. */
  ackBeforeFdatasync?: boolean;
  /**
   * Planted: the index first. Segment bytes are held back; a round fsyncs the WAL (making the
   * index rows durable), then writes the held bytes, fdatasyncs them, and acknowledges.
   */
  indexFirst?: boolean;
  /**
   * Planted: the classic group-commit bug. A sync write that comes while a round runs is
   * written at once and joins that round, whose fdatasyncs may have started before its bytes.
   */
  joinRoundUnderWay?: boolean;
  /**
   * Planted: a WAL checkpoint runs at the end of a round even though segments have bytes not
   * yet fdatasynced (written during the round's WAL fsync): it makes durable index rows that
   * name them.
   */
  checkpointOverUnsyncedSegments?: boolean;
}

export interface GroupCommitPorts {
  /** The database's path (error messages). */
  path: string;
  segments: Segments;
  /** The WAL, from openWal (undefined when read-only: sync writes are refused). */
  walFd: number | undefined;
  fsync: FsyncFn;
  fdatasync: FsyncFn;
  /**
   * Set (syncInline): a round whose only sync is one segment's fdatasync runs it with this, on
   * the event loop, instead of `fdatasync` on the pool. Throws on failure.
   */
  fdatasyncInline?: (fd: number) => void;
  stats: SyncStats;
  failure: StickyFailure;
  /**
   * Called after each round that made its writes durable (the WAL checkpointer's cue);
   * `walSynced`: the round fsynced the WAL, after the segments its rows name.
   */
  afterRound: (walSynced: boolean) => void;
  /**
   * A WAL checkpoint is due: the round fsyncs the WAL too (after its segments, on the pool),
   * so the checkpoint at its end finds nothing to fsync in the WAL (wal-checkpointer.ts).
   */
  walSyncDue: () => boolean;
  /**
   * Called before a round starts: writes the sync puts queued while the last one ran (one
   * append per segment, one transaction), which join() the round.
   */
  beforeRound: () => void;
  faults?: StorageUnsafeFaults;
  /** With faults.indexFirst: the segment writes held back until the WAL is fsynced. */
  heldWrites?: Array<() => void>;
}

export interface Waiter {
  resolve: () => void;
  reject: (e: unknown) => void;
}

export class GroupCommit {
  /** A round is under way. */
  syncing = false;
  /** Sync writes committed and waiting for the next round to start. */
  private waiting: Waiter[] = [];
  /** Some waiting write is durable only through the WAL (an inline row, a meta value, a drop). */
  private waitingForWal = false;
  private idleWaiters: Array<() => void> = [];
  private walFd: number | undefined;

  constructor(private readonly ports: GroupCommitPorts) {
    this.walFd = ports.walFd;
  }

  /** A kick() is due in a microtask (durableSoon). */
  private kickDue = false;

  /** The writes of the round under way (faults.joinRoundUnderWay adds to them). */
  private underWay: Waiter[] | undefined;

  /** A round is under way or due: a sync write of entries that comes now is queued for it. */
  get collecting(): boolean {
    return (this.syncing && this.ports.faults?.joinRoundUnderWay !== true) || this.kickDue;
  }

  /** A round is under way or about to start. */
  get busy(): boolean {
    return this.syncing || this.waiting.length > 0;
  }

  /**
   * Resolves after a round that began after this call. `wal`: the write is durable only once
   * the WAL is (false: its records are segment entries, durable by the segments' fdatasync).
   */
  durable(wal = true): Promise<void> {
    return new Promise((resolve, reject) => {
      this.join({ resolve, reject }, wal);
      this.kick();
    });
  }

  /**
   * Resolves after a round that began after this call: every segment written before it is
   * fdatasynced (what a WAL checkpoint waits for). Only a round takes the dirty segments while
   * writes wait for one: a sync of its own, outside a round, would take a waiting write's
   * segment out of its round, and the round would acknowledge it before that sync ended.
   */
  segmentsSynced(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.kick();
    });
  }

  /**
   * durable(false) with the round started in a microtask, not at once: the sync writes of
   * entries made in the same turn (an acceptor's writes for the messages of one read) are
   * queued meanwhile and share its one pwritev and one fdatasync.
   */
  durableSoon(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.join({ resolve, reject }, false);
      if (this.kickDue) return;
      this.kickDue = true;
      queueMicrotask(() => {
        this.kickDue = false;
        this.kick();
      });
    });
  }

  /** Like durable(), for a write committed by beforeRound: it joins the round about to start. */
  join(waiter: Waiter, wal: boolean): void {
    this.ports.stats.syncWrites++;
    if (this.ports.faults?.joinRoundUnderWay === true && this.underWay !== undefined) {
      this.underWay.push(waiter);
      return;
    }
    if (wal) this.waitingForWal = true;
    this.waiting.push(waiter);
  }

  /** Resolves at the next kick() that finds no round to run (close() waits with it). */
  idle(): Promise<void> {
    return new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Writes the queued sync writes (beforeRound), then starts a round if sync writes wait and
   * none is under way; else wakes idle() waiters. A round: (1) fdatasync of every segment written since the last round began and fsync of the
   * directories that got a new segment, in parallel; then, (2) only if a write in the round
   * needs it, fsync of the WAL.
   */
  kick(): void {
    if (this.syncing) return;
    const { segments, stats, failure, path } = this.ports;
    this.ports.beforeRound();
    segments.release(); // no fdatasync is using a dropped segment's descriptor now
    if (this.waiting.length === 0) {
      for (const wake of this.idleWaiters.splice(0)) wake();
      return;
    }
    const batch = this.waiting.splice(0);
    const writesNeedWal = this.waitingForWal;
    const needsWal = writesNeedWal || this.ports.walSyncDue();
    this.waitingForWal = false;
    const walFd = this.walFd;
    if (walFd === undefined || failure.error !== undefined) {
      const e = failure.error ?? new StorageError('E_READ_ONLY', `${path} is open read-only`);
      for (const w of batch) w.reject(e);
      this.kick();
      return;
    }
    this.syncing = true;
    this.underWay = batch;
    const faults = this.ports.faults ?? {};
    let acked = false;
    const ack = () => {
      if (acked) return;
      acked = true;
      for (const w of batch) w.resolve();
    };
    if (faults.ackBeforeFdatasync === true) ack();
    const fail = (err: unknown, what: string) => {
      failure.record(err, `${what} failed; the log refuses further writes`);
      this.syncing = false;
      this.underWay = undefined;
      if (!acked) for (const w of batch) w.reject(failure.error);
      this.kick();
    };
    let walSynced = false;
    const finish = () => {
      this.syncing = false;
      this.underWay = undefined;
      ack();
      this.ports.afterRound(walSynced);
      this.kick();
    };
    const syncWal = (then: () => void) => {
      stats.fsyncs++;
      this.ports.fsync(walFd, (err) => {
        if (err) return fail(err, `fsync of ${path}-wal`);
        walSynced = true;
        then();
      });
    };
    const syncSegments = () => {
      for (const write of this.ports.heldWrites?.splice(0) ?? []) write();
      const { segments: dirty, dirs } = segments.takeDirty();
      const then = () => {
        segments.synced(dirty);
        if (!needsWal || faults.indexFirst === true) return finish();
        // The writes are durable already; only the checkpoint due waits for the WAL's fsync.
        if (!writesNeedWal) ack();
        // Writes committed while the fdatasyncs ran have index rows in the WAL: their entries
        // go first, so the WAL's fsync never makes a row durable before the bytes it names.
        if (segments.hasDirty) syncSegments();
        else syncWal(finish);
      };
      const inline = this.ports.fdatasyncInline;
      if (inline !== undefined && dirty.length === 1 && dirs.length === 0 && !needsWal) {
        // The one sync of the round: no pool hand-offs (sqlite-log-store.ts, syncInline).
        stats.fdatasyncs++;
        stats.inlineFdatasyncs++;
        try {
          inline(dirty[0]!.segment.fd);
        } catch (e) {
          return fail(e, 'fdatasync of a segment file');
        }
        return then();
      }
      let pending = dirty.length + dirs.length;
      if (pending === 0) return then();
      let failed = false;
      const done = (err: unknown, what: string) => {
        if (failed) return;
        if (err) {
          failed = true;
          return fail(err, what);
        }
        if (--pending === 0) then();
      };
      for (const { segment } of dirty) {
        stats.fdatasyncs++;
        this.ports.fdatasync(segment.fd, (err) => done(err, 'fdatasync of a segment file'));
      }
      for (const dir of dirs) {
        let dirFd: number;
        try {
          dirFd = openSync(dir, 'r');
        } catch (e) {
          done(e, `open of ${dir}`);
          continue;
        }
        stats.fsyncs++;
        this.ports.fsync(dirFd, (err) => {
          closeSync(dirFd);
          done(err, `fsync of ${dir}`);
        });
      }
    };
    if (faults.indexFirst === true) syncWal(syncSegments);
    else syncSegments();
  }

  /**
   * Fdatasyncs the segments written since the last round: at close, once no round runs and
   * none can start (SQLite's close then makes the WAL durable). Nothing to do after a failure
   * or when read-only.
   */
  async syncSegments(): Promise<void> {
    if (this.walFd === undefined || this.ports.failure.error !== undefined) return;
    for (const write of this.ports.heldWrites?.splice(0) ?? []) write();
    const { segments: dirty, dirs } = this.ports.segments.takeDirty();
    this.ports.stats.fdatasyncs += dirty.length;
    this.ports.stats.fsyncs += dirs.length;
    await Promise.all([
      ...dirty.map(({ segment }) => promisify(this.ports.fdatasync, segment.fd)),
      ...dirs.map(async (dir) => {
        const dirFd = openSync(dir, 'r');
        try {
          await promisify(this.ports.fsync, dirFd);
        } finally {
          closeSync(dirFd);
        }
      }),
    ]);
    this.ports.segments.synced(dirty);
  }

  /** syncSegments on the event loop (fdatasyncSync): the WAL's bound inside a write. */
  syncSegmentsHere(): void {
    for (const write of this.ports.heldWrites?.splice(0) ?? []) write();
    const { segments: dirty, dirs } = this.ports.segments.takeDirty();
    for (const { segment } of dirty) {
      this.ports.stats.fdatasyncs++;
      fdatasyncSync(segment.fd);
    }
    for (const dir of dirs) {
      const dirFd = openSync(dir, 'r');
      try {
        this.ports.stats.fsyncs++;
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
    }
    this.ports.segments.synced(dirty);
  }

  closeWal(): void {
    if (this.walFd !== undefined) closeSync(this.walFd);
    this.walFd = undefined;
  }
}

function promisify(fn: FsyncFn, fd: number): Promise<void> {
  return new Promise((resolve, reject) => fn(fd, (err) => (err ? reject(err) : resolve())));
}
