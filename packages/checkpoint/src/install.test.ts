// The install survives a crash at every file and log operation: after a restart the node has
// either its old state (old files, old log) or the new one (the sender's files, the log reset
// after the checkpoint), never a mix, and no staging left behind.
import { describe, expect, it } from 'vitest';
import { FileStateMachine, makePair } from '../test/harness';
import { INSTALL_META_KEY, recoverInstall } from './install';

class Crash extends Error {}

const record = (instanceId: number) => ({
  instanceId,
  promiseId: 1,
  promiseNodeId: 1,
  acceptedId: 1,
  acceptedNodeId: 1,
  value: new Uint8Array([instanceId]),
  checksum: 0,
});

/** Crashes the install at operation 1, 2, … until it completes; checks every restart. */
async function crashAtEveryPoint(plantSkipFsync: boolean): Promise<{ old: number; new: number }> {
  const outcomes = { old: 0, new: 0 };
  for (let k = 1; ; k++) {
    const p = await makePair([2500, 0, 700]);
    await p.receiverFiles.write('/b/sm/old', 0, new Uint8Array([1, 2, 3]));
    await p.receiverFiles.fsync('/b/sm/old');
    await p.receiverFiles.fsync('/b');
    for (let i = 0; i < 10; i++) await p.store.put(0, record(i), { sync: true });
    let ops = 0;
    const cut = (): void => {
      if (++ops === k) throw new Crash(`cut at operation ${k}`);
    };
    p.receiverFiles.beforeOp = (op) => {
      if (op !== 'stat' && op !== 'list') cut();
    };
    if (plantSkipFsync) {
      // The planted bug: staged files are never fsynced (the manifest still is).
      const fsync = p.receiverFiles.fsync.bind(p.receiverFiles);
      p.receiverFiles.fsync = (path: string) =>
        path.includes('/sm4/') ? Promise.resolve() : fsync(path);
    }
    const store = p.store as unknown as Record<string, (...a: unknown[]) => unknown>;
    for (const name of ['setMeta', 'resetGroup', 'put', 'setMinChosenInstanceId']) {
      const original = store[name]!.bind(p.store);
      store[name] = (...args: unknown[]) => {
        cut();
        return original(...args);
      };
    }
    await p.sender.start(0);
    let crashed = false;
    try {
      await p.run();
    } catch (error) {
      // A crash inside a machine's load comes back wrapped in E_LOAD_FAILED.
      const cause = error instanceof Crash ? error : (error as { cause?: unknown }).cause;
      if (!(cause instanceof Crash)) throw error;
      crashed = true;
    }
    if (!crashed) {
      expect(p.receiver.counters.installs).toBe(1);
      break;
    }
    // Restart: power loss on both, machines rebuilt from what is on disk, then recovery.
    p.receiverFiles.beforeOp = undefined;
    for (const name of ['setMeta', 'resetGroup', 'put', 'setMinChosenInstanceId'])
      delete store[name];
    p.receiverFiles.crash();
    p.store.crash();
    const onDisk = await p.receiverFiles.list('/b/sm');
    const sm = new FileStateMachine(
      4,
      p.receiverFiles,
      '/b/sm',
      onDisk,
      onDisk.includes('old') ? -1 : 99,
    );
    await recoverInstall({
      group: 0,
      files: p.receiverFiles,
      store: p.store,
      machines: [sm],
      stagingRoot: '/b/staging',
    });
    expect(await p.receiverFiles.list('/b/staging')).toEqual([]);
    expect(p.store.getMeta(0, INSTALL_META_KEY) ?? new Uint8Array(0)).toEqual(new Uint8Array(0));
    const files = await p.receiverFiles.list('/b/sm');
    if (p.store.getMinChosenInstanceId(0) === 100) {
      outcomes.new++;
      expect(files).toEqual(
        [...p.senderSm.paths]
          .filter((f) => f !== 'sub/dir/f1')
          .concat('sub/dir/f1')
          .sort(),
      );
      for (const f of p.senderSm.paths)
        expect(p.receiverFiles.peek(`/b/sm/${f}`)).toEqual(p.senderFiles.peek(`/a/sm/${f}`));
      expect(p.store.maxInstanceId(0)).toBe(100);
      expect(p.store.get(0, 100)).toMatchObject({ promiseId: 5, promiseNodeId: 3 });
    } else {
      outcomes.old++;
      expect(files).toEqual(['old']);
      expect(p.receiverFiles.peek('/b/sm/old')).toEqual(new Uint8Array([1, 2, 3]));
      expect(p.store.getMinChosenInstanceId(0)).toBe(0);
      expect([...p.store.range(0, 0, 100)].map((r) => r.instanceId)).toEqual([
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
      ]);
    }
  }
  return outcomes;
}

describe('checkpoint install under crashes', () => {
  it('leaves the old state or the new one at every crash point', async () => {
    const outcomes = await crashAtEveryPoint(false);
    // Both outcomes happened: crashes before the install record and after it.
    expect(outcomes.old).toBeGreaterThan(5);
    expect(outcomes.new).toBeGreaterThan(5);
  });

  it('catches an install that does not fsync the staged files (planted bug)', async () => {
    await expect(crashAtEveryPoint(true)).rejects.toThrow();
  });
});
