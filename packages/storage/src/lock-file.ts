// One process per log. The store's own connection lets go of the database's lock while a worker
// connection checkpoints the WAL (wal-checkpointer.ts), so the database cannot be the lock:
// the store holds an exclusive SQLite lock on a lock file beside it (`<database>-lock`, a tiny
// database in locking_mode=EXCLUSIVE) from open to close. A second node or store pointed at the
// same directory then fails at open with E_LOCKED instead of sharing an acceptor's promises. The
// lock is a POSIX lock, so it goes with the process: a killed node's log opens again at once.
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';

/** Suffix of the lock file beside the database. */
export const LOCK_FILE_SUFFIX = '-lock';

/**
 * Takes the log's lock on the lock file at `path`, held until the returned connection closes (a
 * second store, in this process or another, gets SQLITE_BUSY: E_LOCKED). Read-only: checks that
 * no one holds it, without taking it.
 */
export function lockLog(path: string, readonly: boolean): Database.Database | undefined {
  if (readonly) {
    if (!existsSync(path)) return undefined;
    const probe = new Database(path, { readonly: true, timeout: 0 });
    try {
      probe.prepare('SELECT count(*) FROM sqlite_master').get();
    } finally {
      probe.close();
    }
    return undefined;
  }
  const db = new Database(path, { timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE; COMMIT'); // in EXCLUSIVE locking mode the lock stays taken
  } catch (e) {
    db.close();
    throw e;
  }
  return db;
}
