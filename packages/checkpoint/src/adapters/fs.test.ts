// NodeFiles on a real temporary directory: the port's behaviour, and a whole transfer between two
// directories with a real symlink planted in staging.
import {
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryLogStore } from '@tspaxos/storage';
import type { CheckpointMsg } from '@tspaxos/transport';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CheckpointReceiver } from '../receiver';
import { CheckpointSender } from '../sender';
import { NODE_FILES_MAX_OPEN_WRITERS, resolveCheckpointOptions } from '../options';
import { FileStateMachine, bytes } from '../../test/harness';
import { NodeFiles } from './fs';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tspaxos-cp-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('NodeFiles', () => {
  it('reads, writes at offsets, lists, renames, removes, and codes its errors', async () => {
    const files = new NodeFiles();
    await files.write(join(dir, 'a/b/c'), 0, new Uint8Array([1, 2, 3]));
    await files.write(join(dir, 'a/b/c'), 3, new Uint8Array([4]));
    await files.fsync(join(dir, 'a/b/c'));
    await files.fsync(join(dir, 'a'));
    expect([...(await files.read(join(dir, 'a/b/c'), 1, 10))]).toEqual([2, 3, 4]);
    expect(await files.list(join(dir, 'a'))).toEqual(['b/c']);
    expect(await files.list(join(dir, 'missing'))).toEqual([]);
    expect(await files.stat(join(dir, 'a/b/c'))).toEqual({ size: 4, isDirectory: false });
    await files.rename(join(dir, 'a'), join(dir, 'z'));
    expect(await files.stat(join(dir, 'a'))).toBeUndefined();
    await expect(files.read(join(dir, 'a/b/c'), 0, 1)).rejects.toMatchObject({
      code: 'E_NOT_FOUND',
    });
    await files.remove(join(dir, 'z'));
    await files.fsync(join(dir, 'z/gone')); // fsyncs the nearest existing parent
    expect(await files.list(dir)).toEqual([]);
    expect(await files.freeBytes(join(dir, 'nothing/yet'))).toBeGreaterThan(0);
    expect(await files.realpath(join(dir, 'nope'))).toBeUndefined();
  });

  it('keeps files open across writes, evicts beyond its limit, and closes them on fsync', async () => {
    const files = new NodeFiles();
    const count = NODE_FILES_MAX_OPEN_WRITERS + 3;
    for (let part = 0; part < 2; part++)
      for (let i = 0; i < count; i++)
        await files.write(join(dir, `w/${i}`), part * 3, new Uint8Array([i, i, i]));
    for (let i = 0; i < count; i++) {
      await files.fsync(join(dir, `w/${i}`));
      expect([...(await readFile(join(dir, `w/${i}`)))]).toEqual([i, i, i, i, i, i]);
    }
    await files.write(join(dir, 'w/0'), 6, new Uint8Array([9]));
    await files.rename(join(dir, 'w'), join(dir, 'v')); // closes the handle first
    await files.write(join(dir, 'w/0'), 0, new Uint8Array([1])); // a new file, not the renamed one
    expect([...(await readFile(join(dir, 'v/0')))]).toEqual([0, 0, 0, 0, 0, 0, 9]);
    expect([...(await readFile(join(dir, 'w/0')))]).toEqual([1]);
    await files.close();
  });

  it('overlapping writes to one new file share one open; closing it under a write is refused', async () => {
    const files = new NodeFiles();
    const path = join(dir, 'o/p');
    // readdir's own descriptor is listed and closed by the time it is read: ENOENT is ''.
    const gone = (error: { code?: string }): string => {
      if (error.code === 'ENOENT') return '';
      throw error;
    };
    const openOnPath = async (): Promise<number> => {
      let n = 0;
      for (const fd of await readdir('/proc/self/fd'))
        if ((await readlink(`/proc/self/fd/${fd}`).catch(gone)) === path) n++;
      return n;
    };
    // The sixteen writes queue while the file opens, then go out together as one writev.
    const probe = await open(join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { writev: (...a: unknown[]) => unknown };
    await probe.close();
    const writev = proto.writev;
    let writevs = 0;
    proto.writev = function (this: unknown, ...a: unknown[]) {
      writevs++;
      return writev.apply(this, a);
    };
    try {
      await Promise.all(
        Array.from({ length: 16 }, (_, i) => files.write(path, i * 4, new Uint8Array(4).fill(i))),
      );
    } finally {
      proto.writev = writev;
    }
    expect(writevs).toBe(1);
    expect(await openOnPath()).toBe(1);
    const pending = files.write(path, 64, new Uint8Array([99]));
    await expect(files.fsync(path)).rejects.toThrow(/while a write to it is under way/);
    await pending;
    await files.fsync(path);
    expect(await openOnPath()).toBe(0);
    const expected = [...Array.from({ length: 16 }, (_, i) => [i, i, i, i]).flat(), 99];
    expect([...(await readFile(path))]).toEqual(expected);
  });

  it('transfers a checkpoint between two directories and refuses a real symlink out of staging', async () => {
    const files = new NodeFiles();
    const src = join(dir, 'sender/sm');
    const paths = ['x', 'deep/y', 'empty'];
    await writeFile(join(dir, 'outside'), 'secret');
    await mkdir(join(src, 'deep'), { recursive: true });
    await writeFile(join(src, 'x'), bytes(5000, 1));
    await writeFile(join(src, 'deep/y'), bytes(3000, 2));
    await writeFile(join(src, 'empty'), new Uint8Array(0));
    const options = resolveCheckpointOptions({ chunkBytes: 1024, freeSpaceMarginBytes: 0 });
    const toReceiver: CheckpointMsg[] = [];
    const toSender: CheckpointMsg[] = [];
    const senderSm = new FileStateMachine(4, files, src, paths, 41);
    const receiverSm = new FileStateMachine(4, files, join(dir, 'receiver/sm'), [], -1);
    const store = new MemoryLogStore();
    const receiver = new CheckpointReceiver(
      {
        nodeId: 2,
        group: 0,
        files,
        store,
        machines: [receiverSm],
        stagingRoot: join(dir, 'receiver/staging'),
        send: (_t, m) => toSender.push(m),
        minInstallableInstanceId: () => 0,
        promiseBallot: () => ({ proposalId: 0, nodeId: 0 }),
      },
      options,
    );
    const run = async (uuid: number, plant?: () => Promise<void>) => {
      const sender = new CheckpointSender(
        { nodeId: 1, group: 0, files, machines: [senderSm], send: (_t, m) => toReceiver.push(m) },
        options,
        2,
        uuid,
      );
      await sender.start(0);
      while (toReceiver.length > 0 || toSender.length > 0) {
        const frame = toReceiver.shift();
        if (frame) {
          if (frame.sequence === 1) await plant?.();
          await receiver.handle(1, frame, 0);
        }
        const ack = toSender.shift();
        if (ack) await sender.onAck(2, ack, 0);
      }
      return sender;
    };
    // A symlink where the first file's directory goes: the write must not follow it out.
    const planted = await run(7, async () => {
      await mkdir(join(dir, 'receiver/staging/t7/sm4'), { recursive: true });
      await symlink(dir, join(dir, 'receiver/staging/t7/sm4/deep'));
    });
    expect(planted.endReason).toBe('fail-ack');
    expect(receiver.counters.rejected['symlink-escape']).toBe(1);
    expect(await readFile(join(dir, 'outside'), 'utf8')).toBe('secret');
    const ok = await run(8);
    expect(ok.endReason).toBe('done');
    for (const p of paths)
      expect(await readFile(join(dir, 'receiver/sm', p))).toEqual(await readFile(join(src, p)));
    expect(store.getMinChosenInstanceId(0)).toBe(42);
    expect(await files.list(join(dir, 'receiver/staging'))).toEqual([]);
  });

  it('accepts a staging directory that lives behind a symlink (not an escape)', async () => {
    const files = new NodeFiles();
    await mkdir(join(dir, 'real'), { recursive: true });
    await symlink(join(dir, 'real'), join(dir, 'link'));
    const src = join(dir, 'src');
    await files.write(join(src, 'a/b'), 0, bytes(3000, 3));
    const options = resolveCheckpointOptions({ chunkBytes: 1024, freeSpaceMarginBytes: 0 });
    const toReceiver: CheckpointMsg[] = [];
    const toSender: CheckpointMsg[] = [];
    const receiverSm = new FileStateMachine(4, files, join(dir, 'live'), [], -1);
    const receiver = new CheckpointReceiver(
      {
        nodeId: 2,
        group: 0,
        files,
        store: new MemoryLogStore(),
        machines: [receiverSm],
        stagingRoot: join(dir, 'link/staging'),
        send: (_t, m) => toSender.push(m),
        minInstallableInstanceId: () => 0,
        promiseBallot: () => ({ proposalId: 0, nodeId: 0 }),
      },
      options,
    );
    const sender = new CheckpointSender(
      {
        nodeId: 1,
        group: 0,
        files,
        machines: [new FileStateMachine(4, files, src, ['a/b'], 7)],
        send: (_t, m) => toReceiver.push(m),
      },
      options,
      2,
      1,
    );
    await sender.start(0);
    while (toReceiver.length > 0 || toSender.length > 0) {
      const frame = toReceiver.shift();
      if (frame) await receiver.handle(1, frame, 0);
      const ack = toSender.shift();
      if (ack) await sender.onAck(2, ack, 0);
    }
    expect(sender.endReason).toBe('done');
    expect(receiver.counters.rejected).toEqual({});
    expect(await readFile(join(dir, 'live/a/b'))).toEqual(await readFile(join(src, 'a/b')));
  });
});
