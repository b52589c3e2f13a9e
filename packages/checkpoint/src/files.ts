// The file port of the checkpoint cores (design.md §5): everything they do to a disk goes through
// this interface, so the simulator runs them on MemoryFiles (which loses unsynced writes on a
// crash) and a node runs them on NodeFiles (`@tspaxos/checkpoint/fs`). Paths are absolute,
// '/'-separated strings; joinPath and checkRelativePath below are the only path logic the cores
// use.

export interface FileStat {
  size: number;
  isDirectory: boolean;
}

export interface CheckpointFiles {
  /** Up to `length` bytes at `offset`; fewer at the end of the file. Rejects E_NOT_FOUND. */
  read(path: string, offset: number, length: number): Promise<Uint8Array>;
  /** Writes at `offset`, creating the file and its parent directories. Rejects E_NO_SPACE when full. */
  write(path: string, offset: number, bytes: Uint8Array): Promise<void>;
  /** Makes a file's content durable, or (a directory) the names of everything under it. */
  fsync(path: string): Promise<void>;
  /** Atomic rename (replaces `to`); durable once the parent directory is fsynced. */
  rename(from: string, to: string): Promise<void>;
  /** Removes a file or a directory tree; nothing to do when missing. */
  remove(path: string): Promise<void>;
  /** Every regular file under a directory, as paths relative to it, sorted; [] when missing. */
  list(dir: string): Promise<string[]>;
  /** undefined when missing. Follows symlinks. */
  stat(path: string): Promise<FileStat | undefined>;
  /** Bytes still free on the file system that holds `path`. */
  freeBytes(path: string): Promise<number>;
  /** The path with every symlink resolved; undefined when it does not exist. */
  realpath(path: string): Promise<string | undefined>;
}

/** Joins absolute and relative '/'-paths (no normalisation: parts are checked before). */
export function joinPath(...parts: string[]): string {
  return parts
    .filter((p) => p.length > 0)
    .join('/')
    .replace(/\/{2,}/g, '/');
}

export function parentPath(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** True when `path` is `dir` or inside it (both resolved). */
export function isInside(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/**
 * Why a file path from the network is refused, or undefined when it is a plain relative path:
 * not empty, at most `maxChars`, no NUL, not absolute (`/x`, `C:\x`, `\\host`), no backslash,
 * and normalized (no `.`, `..` or empty segment). PhxPaxos joins the path blindly
 * (CheckpointReceiver::InitFilePath); symlinks are checked separately against the disk.
 */
export function checkRelativePath(path: string, maxChars = 4096): string | undefined {
  if (typeof path !== 'string' || path.length === 0) return 'empty';
  if (path.length > maxChars) return 'too-long';
  if (path.includes('\0')) return 'nul';
  if (path.includes('\\')) return 'backslash';
  if (path.startsWith('/')) return 'absolute';
  if (/^[A-Za-z]:/.test(path)) return 'drive';
  for (const segment of path.split('/')) {
    if (segment === '..') return 'dot-dot';
    if (segment === '.' || segment === '') return 'not-normalized';
  }
  return undefined;
}
