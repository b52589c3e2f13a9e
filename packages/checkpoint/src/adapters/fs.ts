// NodeFiles: the checkpoint file port on node:fs (`@tspaxos/checkpoint/fs`). Every error comes
// out as a CheckpointError with a code (E_NOT_FOUND, E_NO_SPACE, E_IO) and the system error as
// its cause. fsync of a directory fsyncs it and every directory below it (names of new, renamed
// and removed files); fsync of a path that no longer exists fsyncs its nearest existing parent (that
// directory only).
import { constants } from 'node:fs';
import {
  type FileHandle,
  mkdir,
  open,
  readdir,
  realpath,
  rename,
  rm,
  stat,
  statfs,
} from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { assert, InvariantError } from '@tspaxos/core';
import { CheckpointError } from '../errors';
import { type CheckpointFiles, type FileStat, isInside } from '../files';
import { NODE_FILES_MAX_OPEN_WRITERS, NODE_FILES_MAX_WRITEV_BUFFERS } from '../options';

export { CheckpointError } from '../errors';
export type { CheckpointFiles, FileStat } from '../files';

function wrap(error: unknown, what: string): Error {
  if (error instanceof CheckpointError) return error;
  if (error instanceof InvariantError) return error; // a bug goes up as it is, not as E_IO
  const code = (error as { code?: string })?.code;
  const message = `${what}: ${error instanceof Error ? error.message : String(error)}`;
  if (code === 'ENOENT') return new CheckpointError('E_NOT_FOUND', message, { cause: error });
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new CheckpointError('E_NO_SPACE', message, { cause: error });
  return new CheckpointError('E_IO', message, { cause: error });
}

interface QueuedWrite {
  offset: number;
  bytes: Uint8Array;
  done(error?: unknown): void;
}

interface OpenWriter {
  /** The handle, once open (writes that come while it opens share the one open). */
  opened: Promise<FileHandle>;
  /** Writes queued or under way on the handle: it is not closed by eviction while > 0. */
  users: number;
  /** Writes waiting for the one under way, in order. */
  queue: QueuedWrite[];
  writing: boolean;
}

export class NodeFiles implements CheckpointFiles {
  private lastCreatedDir: string | undefined;
  private readonly writers = new Map<string, OpenWriter>();

  async read(path: string, offset: number, length: number): Promise<Uint8Array> {
    try {
      const handle = await open(path, 'r');
      try {
        // Not zero-filled (and not pooled): every byte handed out is read from the file first.
        const buffer = Buffer.allocUnsafeSlow(length);
        let filled = 0;
        while (filled < length) {
          const { bytesRead } = await handle.read(buffer, filled, length - filled, offset + filled);
          if (bytesRead === 0) break;
          filled += bytesRead;
        }
        return filled === length ? buffer : buffer.subarray(0, filled);
      } finally {
        await handle.close();
      }
    } catch (error) {
      throw wrap(error, `read of ${path}`);
    }
  }

  /**
   * Writes to one path may overlap (fsync, rename, remove of it may not). They are made one at a
   * time, in order: writes that queued behind one under way at contiguous offsets go together
   * as one writev (concurrent writes to one file only contend for its inode lock: on 2 cores
   * the waiters spun on it, measured with perf).
   */
  async write(path: string, offset: number, bytes: Uint8Array): Promise<void> {
    const entry = this.writer(path);
    entry.users++;
    try {
      await new Promise<void>((resolve, reject) => {
        entry.queue.push({ offset, bytes, done: (e) => (e === undefined ? resolve() : reject(e)) });
        if (!entry.writing) void this.drainQueue(path, entry);
      });
    } catch (error) {
      throw wrap(error, `write of ${path}`);
    } finally {
      entry.users--;
    }
  }

  /** Writes a writer's queue out; every outcome goes to the queued writes (it never rejects). */
  private async drainQueue(path: string, entry: OpenWriter): Promise<void> {
    entry.writing = true;
    let handle: FileHandle | undefined;
    try {
      handle = await entry.opened;
      await this.evictIdleWriter(path);
    } catch (error) {
      if (this.writers.get(path) === entry) this.writers.delete(path); // open again next time
      entry.writing = false;
      for (const w of entry.queue.splice(0)) w.done(error);
      return;
    }
    while (entry.queue.length > 0) {
      const batch = [entry.queue.shift()!];
      let end = batch[0]!.offset + batch[0]!.bytes.length;
      while (
        batch.length < NODE_FILES_MAX_WRITEV_BUFFERS &&
        entry.queue.length > 0 &&
        entry.queue[0]!.offset === end
      ) {
        const next = entry.queue.shift()!;
        batch.push(next);
        end += next.bytes.length;
      }
      let failure: unknown;
      try {
        await writeAll(
          handle,
          batch.map((w) => w.bytes),
          batch[0]!.offset,
        );
      } catch (error) {
        failure = error ?? new Error(`write of ${path} failed without an error`);
      }
      for (const w of batch) w.done(failure);
    }
    entry.writing = false;
  }

  /** Closes the files kept open for writing (they are also closed by fsync, rename, remove). */
  async close(): Promise<void> {
    await this.closeWriters(() => true);
  }

  /**
   * An open handle for writing `path`: chunks of one file come in a row, so the file is opened
   * once, not per chunk (at most NODE_FILES_MAX_OPEN_WRITERS stay open; the least recent idle one closes).
   */
  private writer(path: string): OpenWriter {
    const cached = this.writers.get(path);
    if (cached !== undefined) {
      this.writers.delete(path); // re-insert: most recent last
      this.writers.set(path, cached);
      return cached;
    }
    const entry: OpenWriter = {
      opened: this.openForWrite(path),
      users: 0,
      queue: [],
      writing: false,
    };
    this.writers.set(path, entry);
    return entry;
  }

  private async openForWrite(path: string): Promise<FileHandle> {
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW;
    const parent = dirname(path);
    let handle: FileHandle;
    try {
      if (parent !== this.lastCreatedDir) await mkdir(parent, { recursive: true });
      handle = await open(path, flags);
    } catch (error) {
      if ((error as { code?: string }).code !== 'ENOENT') throw error;
      await mkdir(parent, { recursive: true }); // removed behind our back: make it again
      handle = await open(path, flags);
    }
    this.lastCreatedDir = parent;
    return handle;
  }

  /** Beyond NODE_FILES_MAX_OPEN_WRITERS, closes the least recent writer with no write under way. */
  private async evictIdleWriter(keep: string): Promise<void> {
    if (this.writers.size <= NODE_FILES_MAX_OPEN_WRITERS) return;
    for (const [p, w] of this.writers) {
      if (w.users > 0 || p === keep) continue;
      this.writers.delete(p);
      await (await w.opened).close();
      return;
    }
  }

  /**
   * Closes the cached writers whose path matches (before fsync, rename, remove of it). A write
   * under way to such a path is the caller's bug (the port's contract): it throws, uncoded.
   */
  private async closeWriters(match: (path: string) => boolean): Promise<void> {
    const closing = [...this.writers].filter(([p]) => match(p));
    for (const [p, w] of closing)
      assert(w.users === 0, `NodeFiles: ${p} is closed while a write to it is under way`);
    for (const [p, w] of closing) {
      this.writers.delete(p);
      await (await w.opened).close();
    }
  }

  async fsync(path: string): Promise<void> {
    try {
      await this.closeWriters((p) => isInside(p, path));
      const info = await stat(path).catch(notFoundAsUndefined);
      if (info !== undefined) {
        await this.fsyncTree(path, info.isDirectory());
        return;
      }
      // Gone (removed): its removal is durable once the nearest existing parent is fsynced, that
      // directory alone (never a walk of, say, all of /tmp).
      let parent = dirname(path);
      while ((await stat(parent).catch(notFoundAsUndefined)) === undefined) {
        if (dirname(parent) === parent) return;
        parent = dirname(parent);
      }
      await this.fsyncOne(parent);
    } catch (error) {
      throw wrap(error, `fsync of ${path}`);
    }
  }

  /** A file, or a directory and every directory below it (names of new, renamed, removed files). */
  private async fsyncTree(path: string, isDirectory: boolean): Promise<void> {
    if (isDirectory) {
      for (const entry of await readdir(path, { withFileTypes: true }))
        if (entry.isDirectory()) await this.fsyncTree(join(path, entry.name), true);
    }
    await this.fsyncOne(path);
  }

  private async fsyncOne(path: string): Promise<void> {
    const handle = await open(path, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  async rename(from: string, to: string): Promise<void> {
    this.lastCreatedDir = undefined;
    try {
      await this.closeWriters((p) => isInside(p, from) || isInside(p, to));
      await rename(from, to);
    } catch (error) {
      throw wrap(error, `rename of ${from} to ${to}`);
    }
  }

  async remove(path: string): Promise<void> {
    this.lastCreatedDir = undefined;
    try {
      await this.closeWriters((p) => isInside(p, path));
      await rm(path, { recursive: true, force: true });
    } catch (error) {
      throw wrap(error, `remove of ${path}`);
    }
  }

  async list(dir: string): Promise<string[]> {
    try {
      const out: string[] = [];
      const walk = async (relative: string): Promise<void> => {
        const entries = await readdir(join(dir, relative), { withFileTypes: true });
        for (const entry of entries) {
          const child = relative === '' ? entry.name : `${relative}/${entry.name}`;
          if (entry.isDirectory()) await walk(child);
          else if (entry.isFile()) out.push(child);
        }
      };
      if ((await stat(dir).catch(notFoundAsUndefined)) === undefined) return [];
      await walk('');
      return out.sort();
    } catch (error) {
      throw wrap(error, `list of ${dir}`);
    }
  }

  async stat(path: string): Promise<FileStat | undefined> {
    try {
      const info = await stat(path).catch(notFoundAsUndefined);
      return info === undefined ? undefined : { size: info.size, isDirectory: info.isDirectory() };
    } catch (error) {
      throw wrap(error, `stat of ${path}`);
    }
  }

  async freeBytes(path: string): Promise<number> {
    try {
      let target = path;
      while ((await stat(target).catch(notFoundAsUndefined)) === undefined) {
        const parent = dirname(target);
        if (parent === target) break;
        target = parent;
      }
      const fs = await statfs(target);
      return fs.bavail * fs.bsize;
    } catch (error) {
      throw wrap(error, `free space of ${path}`);
    }
  }

  async realpath(path: string): Promise<string | undefined> {
    try {
      return await realpath(path).catch(notFoundAsUndefined);
    } catch (error) {
      throw wrap(error, `realpath of ${path}`);
    }
  }
}

/** All of `buffers` at `position`, through as many writev calls as the system needs. */
async function writeAll(
  handle: FileHandle,
  buffers: Uint8Array[],
  position: number,
): Promise<void> {
  let total = 0;
  for (const b of buffers) total += b.length;
  let written = 0;
  while (written < total) {
    let skip = written;
    const rest: Uint8Array[] = [];
    for (const b of buffers) {
      if (skip >= b.length) skip -= b.length;
      else {
        rest.push(skip === 0 ? b : b.subarray(skip));
        skip = 0;
      }
    }
    const { bytesWritten } = await handle.writev(rest, position + written);
    written += bytesWritten;
  }
}

/** ENOENT → undefined; every other error is rethrown. */
function notFoundAsUndefined(error: unknown): undefined {
  if ((error as { code?: string })?.code === 'ENOENT') return undefined;
  throw error;
}
