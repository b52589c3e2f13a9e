// The data directory's own checks, before anything in it is opened: one process at a time (a
// lock), and the identity it was created with (cluster id, node id, --groups). A restart with
// another --groups would hash keys to other groups (old keys would read 404), and another node
// id or cluster id would make this log answer for a node it never was: both refuse to start.
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { StartError } from './start-error';

/** The identity file, written at the first start (JSON). */
export const IDENTITY_FILE = 'tspaxos-identity.json';
/** The lock file: a tiny SQLite database held in locking_mode=EXCLUSIVE while the node runs. */
export const LOCK_FILE = 'tspaxos.lock';

export interface DataIdentity {
  clusterId: string;
  nodeId: number;
  groups: number;
}

/**
 * Creates the directory if needed and takes its lock (released when the returned handle closes
 * or the process dies: a POSIX lock, so a SIGKILLed node restarts at once), as the log store
 * does for its own database (packages/storage lock-file.ts).
 */
export function lockDataDir(dir: string): { close(): void } {
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.accessSync(dir, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK);
  } catch (error) {
    throw new StartError(`data directory ${dir} cannot be used: ${(error as Error).message}`, 1);
  }
  const file = path.join(dir, LOCK_FILE);
  let db: Database.Database;
  try {
    db = new Database(file, { timeout: 0 });
  } catch (error) {
    throw new StartError(
      `data directory ${dir}: cannot open ${file}: ${(error as Error).message}`,
      1,
    );
  }
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE; COMMIT'); // in EXCLUSIVE locking mode the lock stays taken
  } catch (error) {
    db.close();
    const busy = (error as { code?: string }).code === 'SQLITE_BUSY';
    throw new StartError(
      busy
        ? `data directory ${dir} is in use by another process (it holds ${file})`
        : `data directory ${dir}: cannot lock ${file}: ${(error as Error).message}`,
      1,
    );
  }
  return { close: () => db.close() };
}

function describe(id: DataIdentity): string {
  return `cluster id '${id.clusterId}', node ${id.nodeId}, --groups ${id.groups}`;
}

/**
 * Records `want` at the first start (atomically: a temporary file, fsync, rename); later starts
 * must give the same values. Returns whether the identity was recorded now.
 */
export function checkIdentity(dir: string, want: DataIdentity): 'recorded' | 'matched' {
  const file = path.join(dir, IDENTITY_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as { code?: string }).code !== 'ENOENT')
      throw new StartError(
        `data directory ${dir}: cannot read ${file}: ${(error as Error).message}`,
        1,
      );
    const tmp = `${file}.tmp`;
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, JSON.stringify({ format: 1, ...want }, null, 2) + '\n');
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
    return 'recorded';
  }
  let have: Partial<DataIdentity>;
  try {
    have = JSON.parse(text) as Partial<DataIdentity>;
  } catch (error) {
    throw new StartError(
      `data directory ${dir}: ${file} is not JSON (${(error as Error).message})`,
      1,
    );
  }
  if (
    typeof have !== 'object' ||
    have === null ||
    typeof have.clusterId !== 'string' ||
    typeof have.nodeId !== 'number' ||
    typeof have.groups !== 'number'
  )
    throw new StartError(`data directory ${dir}: ${file} lacks clusterId, nodeId or groups`, 1);
  const recorded = have as DataIdentity;
  if (
    recorded.clusterId !== want.clusterId ||
    recorded.nodeId !== want.nodeId ||
    recorded.groups !== want.groups
  )
    throw new StartError(
      `data directory ${dir} was created for ${describe(recorded)}; this start gives ${describe(want)}`,
      2,
    );
  return 'matched';
}
