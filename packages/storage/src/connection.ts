// The store's SQLite connection, opened with the settings its mechanisms rest on: WAL mode,
// synchronous=NORMAL (a commit is a write to the WAL; the group commit fsyncs), no automatic
// WAL checkpoint (the WAL checkpointer runs them), and locking_mode=EXCLUSIVE (no shared-memory
// lock per transaction). The log's lock file is taken first and the schema brought up to date.
import { accessSync, constants, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { StorageError } from './errors';
import { lockLog, LOCK_FILE_SUFFIX } from './lock-file';
import { migrate } from './schema';
import { wrap } from './sqlite-errors';

export interface Connection {
  db: Database.Database;
  /** The lock file's connection, holding the log's lock until closed (undefined when read-only). */
  lockDb: Database.Database | undefined;
}

/**
 * Opens the database at `path` (creating it unless read-only). Throws the StorageError of the
 * first thing that fails, with everything it opened closed again.
 */
export function openConnection(
  path: string,
  readonly: boolean,
  maxDatabaseBytes: number | undefined,
): Connection {
  if (!readonly) checkWritable(path);
  let db: Database.Database | undefined;
  let lockDb: Database.Database | undefined;
  try {
    lockDb = lockLog(`${path}${LOCK_FILE_SUFFIX}`, readonly);
    db = new Database(path, { readonly, fileMustExist: readonly, timeout: 0 });
    if (!readonly) {
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') throw new StorageError('E_OPEN_FAILED', `WAL mode refused (${mode})`);
      db.pragma('synchronous = NORMAL');
      db.pragma('wal_autocheckpoint = 0'); // WAL checkpoints are ours (wal-checkpointer.ts)
      // After a first read in WAL mode, so the WAL index is in the -shm file the worker's
      // connection shares (set before it, SQLite keeps the index in heap memory and the lock
      // for good); taken at the first write.
      db.prepare('SELECT count(*) FROM sqlite_master').get();
      db.pragma('locking_mode = EXCLUSIVE');
    }
    if (maxDatabaseBytes !== undefined) {
      if (!Number.isSafeInteger(maxDatabaseBytes) || maxDatabaseBytes < 1)
        throw new StorageError('E_BAD_ARGUMENT', 'maxDatabaseBytes must be a positive integer');
      const pageBytes = db.pragma('page_size', { simple: true }) as number;
      const pages = Math.max(1, Math.floor(maxDatabaseBytes / pageBytes));
      db.pragma(`max_page_count = ${pages}`);
    }
    migrate(db, path, readonly);
    if (!readonly) db.exec('BEGIN IMMEDIATE; COMMIT'); // takes the exclusive lock now
    return { db, lockDb };
  } catch (e) {
    closeQuietly(db, lockDb);
    throw wrap(e, 'E_OPEN_FAILED', `cannot open the paxos log ${path}`);
  }
}

/** Closes what an open that failed later had opened (the open's failure is what matters). */
export function closeQuietly(...dbs: Array<Database.Database | undefined>): void {
  for (const db of dbs) {
    try {
      db?.close();
    } catch {
      // the open failure is what matters
    }
  }
}

/**
 * Refuses a log the OS will not let us write (read-only mount, write-protected file or
 * directory) before SQLite sees it: SQLite would open it read-only without a word and fail later
 * with a lock error. access(2), not open(2): this process may already hold the log open in
 * another store, and closing any descriptor of the file would drop that store's POSIX locks.
 */
function checkWritable(path: string): void {
  try {
    accessSync(dirname(path), constants.W_OK); // the WAL is created beside the database
    if (existsSync(path)) accessSync(path, constants.W_OK);
  } catch (e) {
    const code = String((e as { code?: unknown }).code ?? '');
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS')
      throw new StorageError('E_READ_ONLY', `the paxos log ${path} is write-protected (${code})`, {
        cause: e,
      });
    throw wrap(e, 'E_OPEN_FAILED', `cannot open the paxos log ${path}`);
  }
}
