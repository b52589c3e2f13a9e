// The LogStore compliance suite (STYLE.md "Contracts"): every implementation runs it.
import type { AcceptorRecord } from '@tspaxos/crc-wasm';
import { describe, expect, it } from 'vitest';
import { StorageError } from './errors';
import type { LogStore } from './log-store';

export interface StoreHarness {
  store: LogStore;
  /** Closes and opens the same log again (the memory store returns itself). */
  reopen(): Promise<LogStore>;
  cleanup(): Promise<void>;
}

export function record(
  instanceId: number,
  text = `value-${instanceId}`,
  checksum = instanceId * 7,
): AcceptorRecord {
  return {
    instanceId,
    promiseId: instanceId + 1,
    promiseNodeId: 2,
    acceptedId: instanceId + 1,
    acceptedNodeId: 2,
    value: new TextEncoder().encode(text),
    checksum,
  };
}

const text = (r: AcceptorRecord | undefined) =>
  r === undefined ? undefined : new TextDecoder().decode(r.value);

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    if (typeof p === 'function') p();
    else await p;
  } catch (e) {
    expect(e).toBeInstanceOf(StorageError);
    return (e as StorageError).code;
  }
  return 'NO_ERROR';
}

export function describeLogStoreContract(name: string, make: () => Promise<StoreHarness>): void {
  describe(`LogStore contract: ${name}`, () => {
    const withStore = (fn: (h: StoreHarness) => Promise<void>) => async () => {
      const h = await make();
      try {
        await fn(h);
      } finally {
        await h.cleanup();
      }
    };

    it(
      'writes and reads records, sync and not, and overwrites in place',
      withStore(async ({ store }) => {
        await store.put(0, record(0), { sync: true });
        await store.put(0, record(1), { sync: false });
        expect(text(store.get(0, 0))).toBe('value-0');
        expect(store.get(0, 1)).toMatchObject({
          instanceId: 1,
          promiseId: 2,
          acceptedNodeId: 2,
          checksum: 7,
        });
        expect(store.get(0, 2)).toBeUndefined();
        await store.put(0, record(1, 'again'), { sync: true });
        expect(text(store.get(0, 1))).toBe('again');
      }),
    );

    it(
      'keeps groups apart, iterates ranges in order, and knows the max',
      withStore(async ({ store }) => {
        await store.putMany(
          1,
          [5, 3, 9, 4].map((i) => record(i)),
          { sync: true },
        );
        await store.put(2, record(100), { sync: false });
        expect([...store.range(1, 0, 100)].map((r) => r.instanceId)).toEqual([3, 4, 5, 9]);
        expect([...store.range(1, 4, 9)].map((r) => r.instanceId)).toEqual([4, 5]);
        expect([...store.range(1, 10, 20)]).toEqual([]);
        expect(store.maxInstanceId(1)).toBe(9);
        expect(store.maxInstanceId(2)).toBe(100);
        expect(store.maxInstanceId(3)).toBeUndefined();
        expect(store.get(2, 5)).toBeUndefined();
      }),
    );

    it(
      'deletes below an instance in bounded steps',
      withStore(async ({ store }) => {
        await store.putMany(
          0,
          Array.from({ length: 50 }, (_, i) => record(i)),
          { sync: true },
        );
        expect(store.deleteBelow(0, 30, 20)).toBe(20);
        expect(store.get(0, 19)).toBeUndefined();
        expect(store.get(0, 20)).toBeDefined();
        expect(store.deleteBelow(0, 30, 20)).toBe(10);
        expect(store.deleteBelow(0, 30, 20)).toBe(0);
        expect([...store.range(0, 0, 100)][0]!.instanceId).toBe(30);
        expect(store.maxInstanceId(0)).toBe(49);
      }),
    );

    it(
      'stores meta values and the min chosen instance id per group',
      withStore(async ({ store }) => {
        expect(store.getMinChosenInstanceId(0)).toBe(0);
        await store.setMinChosenInstanceId(0, 1234);
        await store.setMeta(0, 'systemVariables', new Uint8Array([1, 2, 3]), { sync: true });
        await store.setMeta(1, 'systemVariables', new Uint8Array([9]), { sync: false });
        expect(store.getMinChosenInstanceId(0)).toBe(1234);
        expect(store.getMinChosenInstanceId(1)).toBe(0);
        expect([...store.getMeta(0, 'systemVariables')!]).toEqual([1, 2, 3]);
        expect([...store.getMeta(1, 'systemVariables')!]).toEqual([9]);
        expect(store.getMeta(0, 'masterVariables')).toBeUndefined();
      }),
    );

    it(
      'clears one group and leaves the others',
      withStore(async ({ store }) => {
        await store.put(0, record(1), { sync: true });
        await store.put(1, record(1), { sync: true });
        await store.setMinChosenInstanceId(0, 1);
        await store.clearGroup(0);
        expect(store.get(0, 1)).toBeUndefined();
        expect(store.getMinChosenInstanceId(0)).toBe(0);
        expect(store.get(1, 1)).toBeDefined();
      }),
    );

    it(
      'keeps everything across a reopen',
      withStore(async (h) => {
        await h.store.putMany(0, [record(1), record(2)], { sync: true });
        await h.store.setMinChosenInstanceId(0, 1);
        const again = await h.reopen();
        expect(text(again.get(0, 2))).toBe('value-2');
        expect(again.getMinChosenInstanceId(0)).toBe(1);
        expect(again.maxInstanceId(0)).toBe(2);
      }),
    );

    it(
      'refuses bad input with StorageError and writes nothing',
      withStore(async ({ store }) => {
        const big = { ...record(1), value: new Uint8Array(10 * 1024 * 1024 + 1) };
        expect(await codeOf(store.put(0, big, { sync: true }))).toBe('E_VALUE_TOO_LARGE');
        expect(await codeOf(store.put(0, record(2 ** 53), { sync: true }))).toBe(
          'E_UNSAFE_INTEGER',
        );
        expect(await codeOf(store.put(0, record(-1), { sync: true }))).toBe('E_UNSAFE_INTEGER');
        expect(
          await codeOf(store.put(0, { ...record(3), promiseId: 2 ** 53 }, { sync: true })),
        ).toBe('E_UNSAFE_INTEGER');
        expect(await codeOf(store.put(-1, record(1), { sync: true }))).toBe('E_BAD_ARGUMENT');
        expect(await codeOf(store.put(0.5, record(1), { sync: true }))).toBe('E_BAD_ARGUMENT');
        expect(await codeOf(store.putMany(0, [record(5), record(-5)], { sync: true }))).toBe(
          'E_UNSAFE_INTEGER',
        );
        expect(await codeOf(() => store.get(0, 1.5))).toBe('E_UNSAFE_INTEGER');
        expect(await codeOf(store.setMinChosenInstanceId(0, Number.NaN))).toBe('E_UNSAFE_INTEGER');
        expect(store.maxInstanceId(0)).toBeUndefined(); // nothing was written, not even record 5
      }),
    );

    it(
      'refuses every call after close',
      withStore(async (h) => {
        await h.store.close();
        expect(await codeOf(h.store.put(0, record(1), { sync: true }))).toBe('E_CLOSED');
        expect(await codeOf(() => h.store.get(0, 1))).toBe('E_CLOSED');
      }),
    );
  });
}
