// MemoryFiles: the file port for tests and the simulator. It models what a crash keeps: a file's
// bytes survive only up to its last fsync, and a file's name (creation, rename, removal) only once
// a directory above it was fsynced, as on a POSIX file system without data journaling. A
// `beforeOp` hook lets a test stop the world at any operation (a crash point). Symlinks exist
// for the path-escape tests. No timers, no clock, no randomness.
import { CheckpointError } from './errors';
import { type CheckpointFiles, type FileStat, isInside } from './files';

interface Inode {
  data: Uint8Array;
  size: number;
  /** Content as of the last fsync; undefined: never synced (empty after a crash). */
  durable: Uint8Array | undefined;
}

export type FileOp = 'read' | 'write' | 'fsync' | 'rename' | 'remove' | 'list' | 'stat';

export interface MemoryFilesOptions {
  /** Size of the simulated disk (default 1 GiB). */
  capacityBytes?: number;
  /** Called before every operation; throwing there simulates a crash at that point. */
  beforeOp?: (op: FileOp, path: string) => void;
}

const MAX_SYMLINK_HOPS = 40;

export class MemoryFiles implements CheckpointFiles {
  capacityBytes: number;
  beforeOp: ((op: FileOp, path: string) => void) | undefined;
  private visible = new Map<string, Inode>();
  private durableNames = new Map<string, Inode>();
  private readonly symlinks = new Map<string, string>();
  /** For tests: how many operations of each kind ran. */
  readonly counters: Record<FileOp, number> = {
    read: 0,
    write: 0,
    fsync: 0,
    rename: 0,
    remove: 0,
    list: 0,
    stat: 0,
  };

  constructor(options: MemoryFilesOptions = {}) {
    this.capacityBytes = options.capacityBytes ?? 1024 ** 3;
    this.beforeOp = options.beforeOp;
  }

  /** Power loss: unsynced bytes and unsynced names are gone. */
  crash(): void {
    const next = new Map<string, Inode>();
    for (const [path, inode] of this.durableNames) {
      const data = inode.durable === undefined ? new Uint8Array(0) : inode.durable.slice();
      const fresh: Inode = { data, size: data.length, durable: inode.durable };
      next.set(path, fresh);
    }
    this.visible = next;
    this.durableNames = new Map(next);
  }

  /** Test helper: a symlink at `path` pointing to the absolute `target` (durable at once). */
  symlink(target: string, path: string): void {
    this.symlinks.set(path, target);
  }

  /** Test helper: the visible bytes of a file (undefined when missing), synchronously. */
  peek(path: string): Uint8Array | undefined {
    const inode = this.visible.get(this.resolve(path));
    return inode?.data.slice(0, inode.size);
  }

  get usedBytes(): number {
    let used = 0;
    for (const inode of this.visible.values()) used += inode.size;
    return used;
  }

  async read(path: string, offset: number, length: number): Promise<Uint8Array> {
    this.op('read', path);
    const inode = this.visible.get(this.resolve(path));
    if (inode === undefined) throw new CheckpointError('E_NOT_FOUND', `no file ${path}`);
    const end = Math.min(inode.size, offset + length);
    return offset >= end ? new Uint8Array(0) : inode.data.slice(offset, end);
  }

  async write(path: string, offset: number, bytes: Uint8Array): Promise<void> {
    this.op('write', path);
    const real = this.resolve(path);
    let inode = this.visible.get(real);
    const grow = Math.max(0, offset + bytes.length - (inode?.size ?? 0));
    if (this.usedBytes + grow > this.capacityBytes)
      throw new CheckpointError('E_NO_SPACE', `no space left for ${path}`);
    if (inode === undefined) {
      inode = { data: new Uint8Array(0), size: 0, durable: undefined };
      this.visible.set(real, inode);
    }
    const end = offset + bytes.length;
    if (end > inode.data.length) {
      const data = new Uint8Array(Math.max(end, inode.data.length * 2));
      data.set(inode.data.subarray(0, inode.size));
      inode.data = data;
    }
    inode.data.set(bytes, offset);
    inode.size = Math.max(inode.size, end);
  }

  async fsync(path: string): Promise<void> {
    this.op('fsync', path);
    const real = this.resolve(path);
    const inode = this.visible.get(real);
    if (inode !== undefined) {
      inode.durable = inode.data.slice(0, inode.size);
      return;
    }
    // A directory: the names under it become what is visible now.
    for (const name of [...this.durableNames.keys()])
      if (isInside(name, real) && !this.visible.has(name)) this.durableNames.delete(name);
    for (const [name, node] of this.visible)
      if (isInside(name, real)) this.durableNames.set(name, node);
  }

  async rename(from: string, to: string): Promise<void> {
    this.op('rename', from);
    const src = this.resolve(from);
    const dst = this.resolve(to);
    const inode = this.visible.get(src);
    if (inode !== undefined) {
      this.visible.delete(src);
      this.visible.set(dst, inode);
      return;
    }
    const moved = [...this.visible.entries()].filter(([name]) => isInside(name, src));
    if (moved.length === 0) throw new CheckpointError('E_NOT_FOUND', `no file ${from}`);
    for (const [name] of [...this.visible]) if (isInside(name, dst)) this.visible.delete(name);
    for (const [name, node] of moved) {
      this.visible.delete(name);
      this.visible.set(dst + name.slice(src.length), node);
    }
  }

  async remove(path: string): Promise<void> {
    this.op('remove', path);
    const real = this.resolve(path);
    for (const name of [...this.visible.keys()])
      if (isInside(name, real)) this.visible.delete(name);
    for (const name of [...this.symlinks.keys()])
      if (isInside(name, real)) this.symlinks.delete(name);
  }

  async list(dir: string): Promise<string[]> {
    this.op('list', dir);
    const real = this.resolve(dir);
    const prefix = real.endsWith('/') ? real : `${real}/`;
    return [...this.visible.keys()]
      .filter((name) => name.startsWith(prefix))
      .map((name) => name.slice(prefix.length))
      .sort();
  }

  async stat(path: string): Promise<FileStat | undefined> {
    this.op('stat', path);
    const real = this.resolve(path);
    const inode = this.visible.get(real);
    if (inode !== undefined) return { size: inode.size, isDirectory: false };
    for (const name of this.visible.keys())
      if (name !== real && isInside(name, real)) return { size: 0, isDirectory: true };
    return undefined;
  }

  async freeBytes(_path: string): Promise<number> {
    return Math.max(0, this.capacityBytes - this.usedBytes);
  }

  async realpath(path: string): Promise<string | undefined> {
    const real = this.resolve(path);
    // A followed symlink's target counts as an existing directory (directories are implicit).
    if (real !== path || this.visible.has(real)) return real;
    for (const name of this.visible.keys()) if (isInside(name, real)) return real;
    return undefined;
  }

  private op(op: FileOp, path: string): void {
    this.counters[op]++;
    this.beforeOp?.(op, path);
  }

  /** Resolves symlinks in every prefix of an absolute path. */
  private resolve(path: string): string {
    let current = path;
    for (let hop = 0; hop < MAX_SYMLINK_HOPS; hop++) {
      const parts = current.split('/');
      let replaced = false;
      for (let i = 2; i <= parts.length; i++) {
        const prefix = parts.slice(0, i).join('/');
        const target = this.symlinks.get(prefix);
        if (target !== undefined) {
          current = target + current.slice(prefix.length);
          replaced = true;
          break;
        }
      }
      if (!replaced) return current;
    }
    throw new CheckpointError('E_IO', `too many symlinks in ${path}`);
  }
}
