// The KV file's WAL written to disk ahead of SQLite's checkpoints, on libuv's thread pool
// (issue 22, the one-client write's p99). SQLite checkpoints the WAL inside the commit that takes
// it past wal_autocheckpoint (1000 pages), on the event loop, and with synchronous=NORMAL it
// fsyncs the WAL first: no commit synced it before, so ~4 MB went to the disk with the loop held
// (7–14 ms on the bench machine under strace, every few hundred writes of 100 B, on every node;
// on the master that holds the write in flight). Synced here every few commits, the WAL leaves
// that fsync only the pages since the last sync. This adds syncs and removes none: what survives
// a crash is unchanged (the paxos log is the truth, kv-state-machine.ts).
import * as fs from 'node:fs';

/** Commits after which the WAL is synced (ours: a sync per 32 small writes, ~100–200 KB). */
export const KV_WAL_SYNC_EVERY_COMMITS = 32;
/** Bytes of commands after which the WAL is synced sooner (large values: 4 × 64 KiB). */
export const KV_WAL_SYNC_EVERY_BYTES = 256 * 1024;

/** fs.fdatasync's shape: the thread-pool sync (tests inject theirs). */
export type WalSyncFn = (fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => void;

export class KvWalSync {
  /** WAL syncs completed. */
  syncs = 0;
  private fd: number | undefined;
  private inFlight = false;
  private commits = 0;
  private bytes = 0;

  constructor(
    walPath: string,
    private readonly sync: WalSyncFn,
    /** A failed sync: the disk refused the file's pages (SQLite's own next fsync would too). */
    private readonly onError: (error: Error) => void,
    /** Commits between syncs; 0: never (SQLite's checkpoint fsyncs the whole WAL on the loop). */
    private readonly everyCommits = KV_WAL_SYNC_EVERY_COMMITS,
  ) {
    // Read-only is enough for fdatasync; SQLite keeps this file (and reuses it) while its
    // connection is open, which is as long as this object lives.
    if (everyCommits > 0) this.fd = fs.openSync(walPath, 'r');
  }

  /** A commit of `bytes` of commands went into the WAL: sync it once enough went in. */
  committed(bytes: number): void {
    this.commits++;
    this.bytes += bytes;
    if (this.fd === undefined || this.inFlight) return;
    if (this.commits < this.everyCommits && this.bytes < KV_WAL_SYNC_EVERY_BYTES) return;
    this.commits = 0;
    this.bytes = 0;
    this.inFlight = true;
    const fd = this.fd;
    this.sync(fd, (err) => {
      this.inFlight = false;
      // Closed meanwhile: the descriptor is this callback's to close (not reused under it).
      if (this.fd === undefined) fs.closeSync(fd);
      if (err) this.onError(err);
      else this.syncs++;
    });
  }

  /** The connection closes: no sync after this one; a sync in flight closes the file when done. */
  close(): void {
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined && !this.inFlight) fs.closeSync(fd);
  }
}
