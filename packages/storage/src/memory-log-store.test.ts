import { describe, expect, it } from 'vitest';
import { codeOf, describeLogStoreContract, record, text } from './log-store.contract';
import { MemoryLogStore } from './memory-log-store';

describeLogStoreContract('MemoryLogStore', async (options) => {
  const store = new MemoryLogStore(options);
  return {
    store,
    reopen: async () => {
      await store.close();
      store.reopen();
      return store;
    },
    cleanup: async () => {},
  };
});

describe('MemoryLogStore power loss', () => {
  it('refuses bad options with E_BAD_ARGUMENT', async () => {
    expect(await codeOf(() => new MemoryLogStore({ maxDeleteRecords: 0 }))).toBe('E_BAD_ARGUMENT');
    expect(() => new MemoryLogStore({ maxValueBytes: Number.NaN })).toThrow(
      'storage option maxValueBytes must be an integer in 1 … 4294967239, got NaN',
    );
    expect(() => new MemoryLogStore({ rangeChunkMaxRecords: 2.5 })).toThrow(
      /rangeChunkMaxRecords must be an integer in 1 … 9007199254740991, got 2\.5/,
    );
  });

  it('crash() keeps sync writes and everything before them, loses the rest', async () => {
    const store = new MemoryLogStore();
    await store.put(0, record(1), { sync: false });
    await store.setMeta(0, 'systemVariables', new Uint8Array([7]), { sync: false });
    await store.put(0, record(2), { sync: true }); // makes 1 and the meta durable too (WAL fsync)
    await store.put(0, record(3), { sync: false });
    await store.put(0, record(2, 'overwritten'), { sync: false });
    await store.putMany(0, [record(4), record(0)], { sync: false });
    await store.setMeta(0, 'masterVariables', new Uint8Array([1]), { sync: false });
    await store.setMeta(0, 'systemVariables', new Uint8Array([8]), { sync: false });
    expect(store.deleteBelow(0, 2, 10)).toBe(2);
    await store.close();
    store.crash();
    expect(text(store.get(0, 1))).toBe('value-1');
    expect(text(store.get(0, 2))).toBe('value-2');
    expect(store.get(0, 0)).toBeUndefined();
    expect(store.get(0, 3)).toBeUndefined();
    expect(store.get(0, 4)).toBeUndefined();
    expect(store.maxInstanceId(0)).toBe(2);
    expect([...store.range(0, 0, 10)].map((r) => r.instanceId)).toEqual([1, 2]);
    expect(store.getMeta(0, 'masterVariables')).toBeUndefined();
    expect([...store.getMeta(0, 'systemVariables')!]).toEqual([7]);
  });

  it('flush() makes everything durable; clearGroup and setMinChosenInstanceId are durable', async () => {
    const store = new MemoryLogStore();
    await store.put(0, record(1), { sync: false });
    store.flush();
    await store.put(1, record(1), { sync: false });
    await store.clearGroup(1);
    await store.put(0, record(2), { sync: false });
    await store.setMinChosenInstanceId(0, 2);
    await store.put(0, record(3), { sync: false });
    store.crash();
    expect([...store.range(0, 0, 10)].map((r) => r.instanceId)).toEqual([1, 2]);
    expect(store.get(1, 1)).toBeUndefined();
    expect(store.getMinChosenInstanceId(0)).toBe(2);
    expect(store.syncs).toBe(3);
  });

  it('settles promises in call order without timers', async () => {
    const store = new MemoryLogStore();
    const order: string[] = [];
    const calls = [
      store.put(0, record(1), { sync: false }).then(() => order.push('put 1')),
      store.put(0, record(-1), { sync: true }).catch(() => order.push('bad put')),
      store.setMeta(0, 'x', new Uint8Array(1), { sync: true }).then(() => order.push('meta')),
      store.putMany(0, [record(2)], { sync: true }).then(() => order.push('batch')),
    ];
    await Promise.all(calls);
    expect(order).toEqual(['put 1', 'bad put', 'meta', 'batch']);
  });
});

describe('MemoryLogStore corruption', () => {
  it('reads a damaged record as E_CORRUPT_RECORD with group and instance, others still read', async () => {
    const store = new MemoryLogStore();
    await store.putMany(3, [record(1), record(2), record(3)], { sync: true });
    for (const offset of [0, 9, 20, 48, 54, 60]) {
      store.corrupt(3, 2, offset);
      expect(() => store.get(3, 2)).toThrow(
        expect.objectContaining({ code: 'E_CORRUPT_RECORD', group: 3, instanceId: 2 }),
      );
      expect(() => [...store.range(3, 0, 10)]).toThrow(
        expect.objectContaining({ code: 'E_CORRUPT_RECORD', instanceId: 2 }),
      );
      store.corrupt(3, 2, offset); // flips it back
      expect(store.get(3, 2)).toEqual(record(2));
    }
    store.corrupt(3, 2, 60);
    expect(store.get(3, 1)).toEqual(record(1));
    expect(store.get(3, 3)).toEqual(record(3));
  });

  it('reads a damaged meta value as E_CORRUPT_META', async () => {
    const store = new MemoryLogStore();
    await store.setMeta(0, 'masterVariables', new Uint8Array([1, 2, 3]), { sync: true });
    await store.setMinChosenInstanceId(0, 77);
    store.corruptMeta(0, 'masterVariables', 1);
    expect(await codeOf(() => store.getMeta(0, 'masterVariables'))).toBe('E_CORRUPT_META');
    store.corruptMeta(0, 'minChosenInstanceId', 4, 0x80); // the CRC trailer
    expect(await codeOf(() => store.getMinChosenInstanceId(0))).toBe('E_CORRUPT_META');
  });
});

describe('MemoryLogStore with a durability port (the simulator’s crash model)', () => {
  /** A hand-driven port: fsyncs complete when the test says. */
  function manualPort(delays: number[] = [], fails: boolean[] = []) {
    const due: Array<{ atMs: number; fn: () => void }> = [];
    let now = 0;
    const port = {
      schedule: (delayMs: number, fn: () => void) => due.push({ atMs: now + delayMs, fn }),
      fsyncDelayMs: () => delays.shift() ?? 1,
      fsyncFails: () => fails.shift() ?? false,
    };
    const advance = async (ms: number) => {
      now += ms;
      for (;;) {
        const i = due.findIndex((d) => d.atMs <= now);
        if (i < 0) break;
        due.splice(i, 1)[0]!.fn();
        await Promise.resolve();
      }
      await new Promise((r) => setImmediate(r));
    };
    return { port, advance, pending: () => due.length };
  }

  it('a sync write is durable only when its promise resolves; a crash before loses it', async () => {
    const { port, advance } = manualPort([5, 5]);
    const store = new MemoryLogStore({}, port);
    let resolved = 0;
    void store.put(0, record(1), { sync: true }).then(() => resolved++);
    await advance(4);
    expect(resolved).toBe(0);
    expect(text(store.get(0, 1))).toBe('value-1'); // visible at once, not durable
    store.crash();
    expect(store.get(0, 1)).toBeUndefined();
    await advance(10);
    expect(resolved).toBe(0); // the crashed process never hears back

    const done = store.put(0, record(2), { sync: true });
    await advance(5);
    await done;
    store.crash();
    expect(text(store.get(0, 2))).toBe('value-2');
    expect(store.syncs).toBe(1);
  });

  it('one fsync at a time covers every write before it; promises settle in call order', async () => {
    const { port, advance } = manualPort([10, 1]);
    const store = new MemoryLogStore({}, port);
    const order: number[] = [];
    const a = store.put(0, record(1), { sync: true }).then(() => order.push(1));
    const b = store.put(0, record(2), { sync: true }).then(() => order.push(2)); // waits for fsync 1
    await store.put(0, record(3), { sync: false });
    await advance(10);
    await a;
    expect(order).toEqual([1]);
    store.crash(); // 2 and 3 were written after fsync 1 began: lost
    expect(text(store.get(0, 1))).toBe('value-1');
    expect(store.get(0, 2)).toBeUndefined();
    expect(store.get(0, 3)).toBeUndefined();
    void b;
  });

  it('a failed fsync rejects its writes with E_IO and the store refuses every later write', async () => {
    const { port, advance } = manualPort([1], [true]);
    const store = new MemoryLogStore({}, port);
    const first = store.put(0, record(1), { sync: true });
    const caught = first.then(
      () => 'resolved',
      (e: { code: string }) => e.code,
    );
    await advance(1);
    expect(await caught).toBe('E_IO');
    expect(store.fsyncFailures).toBe(1);
    expect(await codeOf(store.put(0, record(2), { sync: false }))).toBe('E_IO');
    expect(await codeOf(store.setMeta(0, 'k', new Uint8Array(1), { sync: true }))).toBe('E_IO');
    expect(store.failedWith?.code).toBe('E_IO');
    store.crash();
    store.repair();
    expect(store.get(0, 1)).toBeUndefined(); // never durable
    await store.put(0, record(2), { sync: false });
    expect(text(store.get(0, 2))).toBe('value-2');
  });
});
