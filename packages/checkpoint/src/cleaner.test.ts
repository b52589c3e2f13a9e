import { MemoryLogStore } from '@tspaxos/storage';
import { describe, expect, it } from 'vitest';
import { Cleaner } from './cleaner';
import { resolveCheckpointOptions } from './options';
import { Replayer } from './replayer';

const record = (instanceId: number) => ({
  instanceId,
  promiseId: 1,
  promiseNodeId: 1,
  acceptedId: 1,
  acceptedNodeId: 1,
  value: new Uint8Array([instanceId & 0xff]),
  checksum: 0,
});

async function storeWith(n: number): Promise<MemoryLogStore> {
  const store = new MemoryLogStore();
  for (let i = 0; i < n; i++) await store.put(0, record(i), { sync: false });
  store.flush();
  return store;
}

describe('Cleaner', () => {
  it('deletes below min(checkpoint + 1, now) − keep in bounded steps, min chosen durable first', async () => {
    const store = await storeWith(100);
    const machines = [
      { smId: 4, getCheckpointInstanceId: () => 80 },
      { smId: 5, getCheckpointInstanceId: () => 59 },
    ];
    const cleaner = new Cleaner(
      { group: 0, store, machines, nowInstanceId: () => 100 },
      resolveCheckpointOptions({ cleanerStepRecords: 7 }),
    );
    expect(await cleaner.plan(10)).toBe(50); // min(59 + 1, 100) − 10
    expect(store.getMinChosenInstanceId(0)).toBe(50);
    store.crash(); // the min chosen id is durable before any record goes
    expect(store.getMinChosenInstanceId(0)).toBe(50);
    const steps: number[] = [];
    for (let n = cleaner.step(); n > 0; n = cleaner.step()) steps.push(n);
    expect(steps.every((n) => n <= 7)).toBe(true);
    expect(steps.reduce((a, b) => a + b, 0)).toBe(50);
    expect([...store.range(0, 0, 100)][0]!.instanceId).toBe(50);
    // Never below what it already holds, never past a machine's checkpoint.
    expect(await cleaner.plan(100)).toBe(50);
    expect(await cleaner.plan(0)).toBe(60);
  });

  it('after a crash mid-delete, the records that came back are deleted again', async () => {
    const store = await storeWith(40);
    const cleaner = new Cleaner(
      {
        group: 0,
        store,
        machines: [{ smId: 4, getCheckpointInstanceId: () => 39 }],
        nowInstanceId: () => 40,
      },
      resolveCheckpointOptions({ cleanerStepRecords: 5 }),
    );
    await cleaner.plan(0);
    cleaner.step();
    cleaner.step();
    store.crash(); // deleteBelow is not durable: the 10 records are back
    expect(store.get(0, 0)).toBeDefined();
    let total = 0;
    for (let n = cleaner.step(); n > 0; n = cleaner.step()) total += n;
    expect(total).toBe(39);
    expect(store.maxInstanceId(0)).toBe(39); // the highest record (the acceptor's promise) stays
    expect(store.getMinChosenInstanceId(0)).toBe(39);
  });

  it('does nothing while paused, or when a machine has no checkpoint', async () => {
    const store = await storeWith(20);
    const noHook = new Cleaner(
      { group: 0, store, machines: [{ smId: 4 }], nowInstanceId: () => 20 },
      resolveCheckpointOptions(),
    );
    expect(await noHook.plan(0)).toBe(0);
    const cleaner = new Cleaner(
      {
        group: 0,
        store,
        machines: [{ smId: 4, getCheckpointInstanceId: () => 9 }],
        nowInstanceId: () => 20,
      },
      resolveCheckpointOptions(),
    );
    await cleaner.plan(0);
    cleaner.pause();
    expect(cleaner.step()).toBe(0);
    cleaner.resume();
    expect(cleaner.step()).toBe(10);
    await expect(cleaner.plan(-1)).rejects.toThrow(RangeError);
  });
});

describe('Replayer', () => {
  it('plays chosen values from the checkpoint on, in bounded steps, not while paused', async () => {
    const store = await storeWith(30);
    let cp = 4;
    const played: number[] = [];
    const replayer = new Replayer(
      {
        group: 0,
        store,
        machines: [
          { smId: 4, getCheckpointInstanceId: () => cp, executeForCheckpoint: () => true },
        ],
        nowInstanceId: () => 30,
        apply: (id) => {
          played.push(id);
          cp = id;
          return id !== 12 || played.filter((x) => x === 12).length > 1;
        },
      },
      resolveCheckpointOptions({ replayerStepInstances: 4 }),
    );
    expect(replayer.step()).toBe(4);
    expect(played).toEqual([5, 6, 7, 8]);
    replayer.pause();
    expect(replayer.step()).toBe(0);
    replayer.resume();
    for (let i = 0; i < 20 && replayer.nextInstanceId! < 30; i++) replayer.step();
    expect(replayer.counters.failed).toBe(1);
    expect(played.filter((x) => x === 12)).toHaveLength(2);
    expect(replayer.nextInstanceId).toBe(30);
  });
});
