// The LogStore compliance suite (style.md "Contracts"): every implementation runs it, from its
// own test file. Not exported from the package (it imports vitest, which must stay out of the
// bundle).
// One idea, kept in one file though it passes 600 lines (issue 21): the LogStore contract, one
// `it` per promise of the port, read as a list.
import type { AcceptorRecord } from '@tspaxos/crc-wasm';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StorageError } from './errors';
import type { LogStore } from './log-store';
import { DEFAULT_STORAGE_OPTIONS, type StorageOptions } from './options';

export interface StoreHarness {
  store: LogStore;
  /** Closes and opens the same log again, as a process restart does (nothing is lost). */
  reopen(): Promise<LogStore>;
  cleanup(): Promise<void>;
}

export type StoreFactory = (options?: Partial<StorageOptions>) => Promise<StoreHarness>;

export function record(
  instanceId: number,
  text = `value-${instanceId}`,
  checksum = (instanceId * 7) % 2 ** 32,
): AcceptorRecord {
  return {
    instanceId,
    promiseId: (instanceId % 1000) + 1,
    promiseNodeId: 2,
    acceptedId: (instanceId % 1000) + 1,
    acceptedNodeId: 2,
    value: new TextEncoder().encode(text),
    checksum,
  };
}

export const text = (r: AcceptorRecord | undefined): string | undefined =>
  r === undefined ? undefined : new TextDecoder().decode(r.value);

/** A record with its value as base64: quick to compare when values are large. */
const view = (r: AcceptorRecord | undefined) =>
  r === undefined ? undefined : { ...r, value: Buffer.from(r.value).toString('base64') };

const ids = (it: Iterable<AcceptorRecord>) => [...it].map((r) => r.instanceId);

/** The StorageError code a call fails with, or 'NO_ERROR'. */
export async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    if (typeof p === 'function') p();
    else await p;
  } catch (e) {
    expect(e).toBeInstanceOf(StorageError);
    return (e as StorageError).code;
  }
  return 'NO_ERROR';
}

export function describeLogStoreContract(name: string, make: StoreFactory): void {
  describe(`LogStore contract: ${name}`, () => {
    const withStore =
      (fn: (h: StoreHarness) => Promise<void>, options?: Partial<StorageOptions>) => async () => {
        const h = await make(options);
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
        expect(store.get(0, 1)).toEqual(record(1));
        expect(store.get(0, 2)).toBeUndefined();
        await store.put(0, record(1, 'again'), { sync: true });
        expect(text(store.get(0, 1))).toBe('again');
        await store.put(0, { ...record(2), value: new Uint8Array(0) }, { sync: false });
        expect(store.get(0, 2)!.value.length).toBe(0);
      }),
    );

    it(
      'keeps groups apart, iterates ranges in ascending order, and knows the max',
      withStore(async ({ store }) => {
        await store.putMany(
          1,
          [5, 3, 9, 4].map((i) => record(i)),
          { sync: true },
        );
        await store.put(2, record(100), { sync: false });
        expect(ids(store.range(1, 0, 100))).toEqual([3, 4, 5, 9]);
        expect(ids(store.range(1, 4, 9))).toEqual([4, 5]);
        expect(ids(store.range(1, 4, 4))).toEqual([]);
        expect(ids(store.range(1, 9, 4))).toEqual([]);
        expect(ids(store.range(1, 10, 20))).toEqual([]);
        expect(ids(store.range(7, 0, 20))).toEqual([]);
        expect(store.maxInstanceId(1)).toBe(9);
        expect(store.maxInstanceId(2)).toBe(100);
        expect(store.maxInstanceId(3)).toBeUndefined();
        expect(store.get(2, 5)).toBeUndefined();
        expect(store.get(1, 100)).toBeUndefined();
      }),
    );

    it(
      'round-trips instance ids up to 2^53 − 1 and orders them numerically',
      withStore(async ({ store }) => {
        const big = [Number.MAX_SAFE_INTEGER, 2 ** 32, 2 ** 32 - 1, 2 ** 31, 10, 0];
        await store.putMany(
          0,
          big.map((i) => record(i)),
          { sync: false },
        );
        expect(ids(store.range(0, 0, Number.MAX_SAFE_INTEGER))).toEqual(
          [...big].sort((a, b) => a - b).slice(0, -1),
        );
        expect(store.maxInstanceId(0)).toBe(Number.MAX_SAFE_INTEGER);
        expect(store.get(0, Number.MAX_SAFE_INTEGER)).toEqual(record(Number.MAX_SAFE_INTEGER));
      }),
    );

    it(
      'reads long ranges in bounded chunks, and lets the caller write while it iterates',
      withStore(
        async ({ store }) => {
          const n = 1000;
          await store.putMany(
            0,
            Array.from({ length: n }, (_, i) => record(2 * i, `v${i}`.repeat(1 + (i % 50)))),
            { sync: false },
          );
          expect(ids(store.range(0, 0, 2 * n))).toEqual(Array.from({ length: n }, (_, i) => 2 * i));
          // Writing and deleting while a range is open must work and the iterator must stay
          // strictly ascending, each record at most once.
          const seen: number[] = [];
          for (const r of store.range(0, 0, 2 * n)) {
            seen.push(r.instanceId);
            if (r.instanceId % 100 === 0) {
              await store.put(0, record(r.instanceId + 1), { sync: true });
              if (r.instanceId > 0) await store.put(0, record(r.instanceId - 1), { sync: false });
            }
            if (r.instanceId === 500) expect(store.deleteBelow(0, 400, 1000)).toBeGreaterThan(0);
          }
          for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
          expect(seen).toContain(2 * n - 2);
          expect(seen.filter((id) => id % 2 === 0).length).toBe(n);
        },
        { rangeChunkBytes: 2048, rangeChunkMaxRecords: 64 },
      ),
    );

    it(
      'deletes below an instance in bounded steps',
      withStore(
        async ({ store }) => {
          await store.putMany(
            0,
            Array.from({ length: 50 }, (_, i) => record(i)),
            { sync: true },
          );
          expect(store.deleteBelow(0, 30, 0)).toBe(0);
          expect(store.deleteBelow(0, 30, 20)).toBe(20);
          expect(store.get(0, 19)).toBeUndefined();
          expect(store.get(0, 20)).toBeDefined();
          expect(store.deleteBelow(0, 30, 20)).toBe(10);
          expect(store.deleteBelow(0, 30, 20)).toBe(0);
          expect(ids(store.range(0, 0, 100))[0]).toBe(30);
          // Capped by options.maxDeleteRecords (25 here) whatever the caller asks.
          expect(store.deleteBelow(0, 100, 1_000_000)).toBe(20);
          expect(store.maxInstanceId(0)).toBeUndefined();
          expect(store.deleteBelow(9, 100, 10)).toBe(0);
          expect(await codeOf(() => store.deleteBelow(0, 10, -1))).toBe('E_BAD_ARGUMENT');
          expect(await codeOf(() => store.deleteBelow(0, -1, 10))).toBe('E_UNSAFE_INTEGER');
        },
        { maxDeleteRecords: 25 },
      ),
    );

    it(
      'bounds a delete step by bytes too, and always deletes at least one record',
      withStore(
        async ({ store }) => {
          const sized = (id: number, bytes: number) => ({
            ...record(id),
            value: new Uint8Array(bytes),
          });
          // Stored sizes are 56 bytes of record overhead plus the value.
          await store.putMany(
            0,
            [sized(1, 144), sized(2, 144), sized(3, 144), sized(4, 2000), sized(5, 10)],
            {
              sync: false,
            },
          );
          expect(store.deleteBelow(0, 100, 100)).toBe(2); // 2 × 200 fit in 500, 3 do not
          expect(store.deleteBelow(0, 100, 100)).toBe(1); // record 3, then 4 would overflow
          expect(store.deleteBelow(0, 100, 100)).toBe(1); // record 4 alone is over: still deleted
          expect(store.deleteBelow(0, 100, 100)).toBe(1);
          expect(store.maxInstanceId(0)).toBeUndefined();
        },
        { maxDeleteBytes: 500 },
      ),
    );

    it(
      'stores meta values and the min chosen instance id per group, as copies',
      withStore(async ({ store }) => {
        expect(store.getMinChosenInstanceId(0)).toBe(0);
        await store.setMinChosenInstanceId(0, 1234);
        await store.setMinChosenInstanceId(0, Number.MAX_SAFE_INTEGER);
        const mine = new Uint8Array([1, 2, 3]);
        await store.setMeta(0, 'systemVariables', mine, { sync: true });
        await store.setMeta(1, 'systemVariables', new Uint8Array([9]), { sync: false });
        await store.setMeta(1, 'some other key', new Uint8Array(0), { sync: false });
        mine[0] = 99; // the store kept its own copy
        expect(store.getMinChosenInstanceId(0)).toBe(Number.MAX_SAFE_INTEGER);
        expect(store.getMinChosenInstanceId(1)).toBe(0);
        const got = store.getMeta(0, 'systemVariables')!;
        expect([...got]).toEqual([1, 2, 3]);
        got[1] = 77; // and hands out copies
        expect([...store.getMeta(0, 'systemVariables')!]).toEqual([1, 2, 3]);
        expect([...store.getMeta(1, 'systemVariables')!]).toEqual([9]);
        expect(store.getMeta(1, 'some other key')!.length).toBe(0);
        expect(store.getMeta(0, 'masterVariables')).toBeUndefined();
        await store.setMeta(0, 'systemVariables', new Uint8Array([4]), { sync: false });
        expect([...store.getMeta(0, 'systemVariables')!]).toEqual([4]);
        expect(
          await codeOf(store.setMeta(0, 'minChosenInstanceId', new Uint8Array(1), { sync: true })),
        ).toBe('E_BAD_ARGUMENT');
        expect(await codeOf(store.setMeta(0, '', new Uint8Array(1), { sync: true }))).toBe(
          'E_BAD_ARGUMENT',
        );
      }),
    );

    it(
      'clears one group, records and meta, and leaves the others',
      withStore(async ({ store }) => {
        await store.put(0, record(1), { sync: true });
        await store.put(1, record(1), { sync: true });
        await store.setMinChosenInstanceId(0, 1);
        await store.setMeta(0, 'masterVariables', new Uint8Array([1]), { sync: false });
        await store.setMeta(1, 'masterVariables', new Uint8Array([2]), { sync: false });
        await store.clearGroup(0);
        await store.clearGroup(5); // never written: nothing to do
        expect(store.get(0, 1)).toBeUndefined();
        expect(store.maxInstanceId(0)).toBeUndefined();
        expect(store.getMinChosenInstanceId(0)).toBe(0);
        expect(store.getMeta(0, 'masterVariables')).toBeUndefined();
        expect(store.get(1, 1)).toBeDefined();
        expect([...store.getMeta(1, 'masterVariables')!]).toEqual([2]);
        await store.put(0, record(7), { sync: true }); // the group is usable again
        expect(store.maxInstanceId(0)).toBe(7);
      }),
    );

    it(
      'stores values on both sides of the out-of-line threshold alike, and overwrites across it',
      withStore(async (h) => {
        const t = DEFAULT_STORAGE_OPTIONS.outOfLineValueBytes;
        const sized = (id: number, bytes: number) => ({
          ...record(id),
          value: new Uint8Array(bytes).map((_, k) => (id * 13 + k) & 0xff),
        });
        const sizes = [0, 1, 100, t - 1, t, t + 1, 100 * 1024, 3, 64 * 1024, t + 7];
        const written = sizes.map((n, i) => sized(i, n));
        await h.store.putMany(0, written.slice(0, 6), { sync: true });
        await h.store.putMany(0, written.slice(6), { sync: false });
        await h.store.put(0, sized(20, 200 * 1024), { sync: true });
        await h.store.put(0, sized(21, 5), { sync: false });
        expect([...h.store.range(0, 0, 100)].map(view)).toEqual(
          [...written, sized(20, 200 * 1024), sized(21, 5)].map(view),
        );
        for (const r of written) expect(view(h.store.get(0, r.instanceId))).toEqual(view(r));
        // Overwrites: large over small, small over large, large over large.
        await h.store.put(0, sized(2, t + 100), { sync: true });
        await h.store.put(0, sized(6, 10), { sync: false });
        await h.store.putMany(0, [sized(8, 70 * 1024), sized(9, 1)], { sync: true });
        const again = await h.reopen();
        expect(view(again.get(0, 2))).toEqual(view(sized(2, t + 100)));
        expect(view(again.get(0, 6))).toEqual(view(sized(6, 10)));
        expect(view(again.get(0, 8))).toEqual(view(sized(8, 70 * 1024)));
        expect(view(again.get(0, 9))).toEqual(view(sized(9, 1)));
        expect(view(again.get(0, 20))).toEqual(view(sized(20, 200 * 1024)));
        expect(again.maxInstanceId(0)).toBe(21);
        // A bad record deep in a batch of large values writes none of them.
        const bad = [sized(30, t * 2), sized(31, t * 3), { ...sized(32, t * 2), promiseId: -1 }];
        expect(await codeOf(again.putMany(0, bad, { sync: true }))).toBe('E_UNSAFE_INTEGER');
        expect(again.get(0, 30)).toBeUndefined();
        await again.putMany(0, [sized(30, t * 2), sized(31, t * 3)], { sync: false });
        expect(view(again.get(0, 31))).toEqual(view(sized(31, t * 3)));
        expect([...again.range(0, 29, 40)].map((r) => r.instanceId)).toEqual([30, 31]);
      }),
    );

    it(
      'compacts large values with deleteBelow, in bounded steps, leaving the rest readable',
      withStore(
        async (h) => {
          const t = DEFAULT_STORAGE_OPTIONS.outOfLineValueBytes;
          const big = (id: number) => ({
            ...record(id),
            value: new Uint8Array(t + 1000).fill(id & 0xff),
          });
          for (let i = 0; i < 60; i += 10)
            await h.store.putMany(
              0,
              Array.from({ length: 10 }, (_, k) => big(i + k)),
              { sync: i % 20 === 0 },
            );
          await h.store.setMinChosenInstanceId(0, 45);
          let steps = 0;
          let deleted = 0;
          for (let n; (n = h.store.deleteBelow(0, 45, 1000)) > 0; steps++) deleted += n;
          expect(deleted).toBe(45);
          expect(steps).toBeGreaterThanOrEqual(3); // maxDeleteBytes is ~4 values here
          expect(h.store.get(0, 44)).toBeUndefined();
          const again = await h.reopen();
          expect([...again.range(0, 0, 100)].map(view)).toEqual(
            Array.from({ length: 15 }, (_, k) => view(big(45 + k))),
          );
          await again.put(0, big(60), { sync: true });
          expect(view(again.get(0, 60))).toEqual(view(big(60)));
        },
        { maxDeleteBytes: 4 * 20 * 1024 },
      ),
    );

    it(
      'resets a group: every record gone, the min chosen id set, other meta and groups kept, durably',
      withStore(async (h) => {
        const t = DEFAULT_STORAGE_OPTIONS.outOfLineValueBytes;
        const large = { ...record(3), value: new Uint8Array(t + 1).fill(3) };
        await h.store.putMany(0, [record(1), record(2), large], { sync: false });
        await h.store.put(1, large, { sync: true });
        await h.store.setMinChosenInstanceId(0, 1);
        await h.store.setMeta(0, 'systemVariables', new Uint8Array([7]), { sync: false });
        await h.store.resetGroup(0, { minChosenInstanceId: 500 });
        expect(h.store.maxInstanceId(0)).toBeUndefined();
        expect(h.store.get(0, 3)).toBeUndefined();
        expect(h.store.getMinChosenInstanceId(0)).toBe(500);
        expect([...h.store.getMeta(0, 'systemVariables')!]).toEqual([7]);
        expect(view(h.store.get(1, 3))).toEqual(view(large));
        await h.store.resetGroup(4, { minChosenInstanceId: 9 }); // never written
        expect(h.store.getMinChosenInstanceId(4)).toBe(9);
        await h.store.put(0, { ...large, instanceId: 500 }, { sync: false });
        const again = await h.reopen();
        expect([...again.range(0, 0, 1000)].map((r) => r.instanceId)).toEqual([500]);
        expect(view(again.get(0, 500))).toEqual(view({ ...large, instanceId: 500 }));
        expect(again.getMinChosenInstanceId(0)).toBe(500);
        expect(view(again.get(1, 3))).toEqual(view(large));
        expect(await codeOf(again.resetGroup(0, { minChosenInstanceId: -1 }))).toBe(
          'E_UNSAFE_INTEGER',
        );
        expect(await codeOf(again.resetGroup(-1, { minChosenInstanceId: 1 }))).toBe(
          'E_BAD_ARGUMENT',
        );
        expect(again.getMinChosenInstanceId(0)).toBe(500);
      }),
    );

    it(
      'keeps everything across a reopen, sync:false writes included',
      withStore(async (h) => {
        await h.store.putMany(0, [record(1), record(2)], { sync: true });
        await h.store.put(0, record(3), { sync: false });
        await h.store.setMinChosenInstanceId(0, 1);
        await h.store.setMeta(0, 'checkpointInstanceId', new Uint8Array([5]), { sync: false });
        const again = await h.reopen();
        expect(text(again.get(0, 2))).toBe('value-2');
        expect(again.get(0, 3)).toEqual(record(3));
        expect(again.getMinChosenInstanceId(0)).toBe(1);
        expect([...again.getMeta(0, 'checkpointInstanceId')!]).toEqual([5]);
        expect(again.maxInstanceId(0)).toBe(2 + 1);
      }),
    );

    it(
      'resolves sync writes in the order they were made',
      withStore(async ({ store }) => {
        const order: number[] = [];
        await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            store.put(0, record(i), { sync: true }).then(() => order.push(i)),
          ),
        );
        expect(order).toEqual(Array.from({ length: 20 }, (_, i) => i));
      }),
    );

    it(
      'refuses bad input with StorageError and writes nothing',
      withStore(
        async ({ store }) => {
          const big = { ...record(1), value: new Uint8Array(1001) };
          expect(await codeOf(store.put(0, big, { sync: true }))).toBe('E_VALUE_TOO_LARGE');
          await store.put(0, { ...record(1), value: new Uint8Array(1000) }, { sync: false });
          expect(await codeOf(store.put(0, record(2 ** 53), { sync: true }))).toBe(
            'E_UNSAFE_INTEGER',
          );
          expect(await codeOf(store.put(0, record(-1), { sync: true }))).toBe('E_UNSAFE_INTEGER');
          expect(await codeOf(store.put(0, record(1.5), { sync: true }))).toBe('E_UNSAFE_INTEGER');
          for (const field of ['promiseId', 'promiseNodeId', 'acceptedId', 'acceptedNodeId']) {
            expect(
              await codeOf(store.put(0, { ...record(3), [field]: 2 ** 53 }, { sync: true })),
            ).toBe('E_UNSAFE_INTEGER');
            expect(await codeOf(store.put(0, { ...record(3), [field]: -2 }, { sync: true }))).toBe(
              'E_UNSAFE_INTEGER',
            );
          }
          expect(await codeOf(store.put(0, { ...record(3), checksum: -1 }, { sync: true }))).toBe(
            'E_BAD_ARGUMENT',
          );
          const notBytes = { ...record(3), value: 'text' as unknown as Uint8Array };
          expect(await codeOf(store.put(0, notBytes, { sync: true }))).toBe('E_BAD_ARGUMENT');
          expect(await codeOf(store.put(-1, record(3), { sync: true }))).toBe('E_BAD_ARGUMENT');
          expect(await codeOf(store.put(0.5, record(3), { sync: true }))).toBe('E_BAD_ARGUMENT');
          expect(await codeOf(store.put(1e9, record(3), { sync: true }))).toBe('E_BAD_ARGUMENT');
          // A batch with one bad record, deep inside (past several multi-row statements),
          // writes nothing at all.
          const batch = Array.from({ length: 150 }, (_, i) => record(10 + i));
          batch[120] = record(-5);
          expect(await codeOf(store.putMany(0, batch, { sync: true }))).toBe('E_UNSAFE_INTEGER');
          // A field only the encoder checks (a promise id past 2^53), inside a multi-row statement.
          batch[120] = { ...record(130), promiseId: 2 ** 53 };
          expect(await codeOf(store.putMany(0, batch, { sync: true }))).toBe('E_UNSAFE_INTEGER');
          expect(store.get(0, 10)).toBeUndefined();
          batch[120] = big;
          expect(await codeOf(store.putMany(0, batch, { sync: false }))).toBe('E_VALUE_TOO_LARGE');
          expect(
            await codeOf(store.putMany(0, 'x' as unknown as AcceptorRecord[], { sync: false })),
          ).toBe('E_BAD_ARGUMENT');
          expect(await codeOf(() => store.get(0, 1.5))).toBe('E_UNSAFE_INTEGER');
          expect(await codeOf(() => store.get(0, Number.NaN))).toBe('E_UNSAFE_INTEGER');
          expect(await codeOf(() => store.range(0, -1, 5))).toBe('E_UNSAFE_INTEGER');
          expect(await codeOf(() => store.range(0, 0, Infinity))).toBe('E_UNSAFE_INTEGER');
          expect(await codeOf(store.setMinChosenInstanceId(0, Number.NaN))).toBe(
            'E_UNSAFE_INTEGER',
          );
          expect(await codeOf(store.setMinChosenInstanceId(0, 2 ** 53))).toBe('E_UNSAFE_INTEGER');
          expect(
            await codeOf(store.setMeta(0, 'masterVariables', new Uint8Array(1001), { sync: true })),
          ).toBe('E_VALUE_TOO_LARGE');
          // Nothing was written: only the one good record of 1000 bytes is there.
          expect(ids(store.range(0, 0, 1000))).toEqual([1]);
          expect(store.getMinChosenInstanceId(0)).toBe(0);
          expect(store.getMeta(0, 'masterVariables')).toBeUndefined();
        },
        { maxValueBytes: 1000 },
      ),
    );

    it(
      'refuses every call after close',
      withStore(async (h) => {
        await h.store.put(0, record(1), { sync: true });
        const pending = h.store.put(0, record(2), { sync: true });
        await h.store.close();
        await pending; // a write made before close() still completes
        await h.store.close(); // twice is fine
        expect(await codeOf(h.store.put(0, record(1), { sync: true }))).toBe('E_CLOSED');
        expect(await codeOf(h.store.putMany(0, [record(1)], { sync: false }))).toBe('E_CLOSED');
        expect(await codeOf(() => h.store.get(0, 1))).toBe('E_CLOSED');
        expect(await codeOf(() => h.store.range(0, 0, 9))).toBe('E_CLOSED');
        expect(await codeOf(() => h.store.maxInstanceId(0))).toBe('E_CLOSED');
        expect(await codeOf(() => h.store.getMeta(0, 'systemVariables'))).toBe('E_CLOSED');
        expect(await codeOf(() => h.store.deleteBelow(0, 9, 9))).toBe('E_CLOSED');
        expect(await codeOf(h.store.setMinChosenInstanceId(0, 1))).toBe('E_CLOSED');
        expect(await codeOf(h.store.clearGroup(0))).toBe('E_CLOSED');
        expect(await codeOf(h.store.resetGroup(0, { minChosenInstanceId: 1 }))).toBe('E_CLOSED');
        const again = await h.reopen();
        expect(ids(again.range(0, 0, 9))).toEqual([1, 2]);
      }),
    );

    it('behaves as a plain map under random sequences of operations (model test)', async () => {
      type Op =
        | { op: 'put'; group: number; id: number; len: number; sync: boolean }
        | { op: 'putMany'; group: number; from: number; n: number; step: number }
        | { op: 'deleteBelow'; group: number; id: number; max: number }
        | { op: 'meta'; group: number; key: string; len: number }
        | { op: 'minChosen'; group: number; id: number }
        | { op: 'clear'; group: number }
        | { op: 'reset'; group: number; id: number }
        | { op: 'reopen' };
      const group = fc.integer({ min: 0, max: 2 });
      const id = fc.integer({ min: 0, max: 60 });
      const opArb: fc.Arbitrary<Op> = fc.oneof(
        {
          weight: 5,
          arbitrary: fc.record({
            op: fc.constant('put' as const),
            group,
            id,
            len: fc.integer({ min: 0, max: 300 }),
            sync: fc.boolean(),
          }),
        },
        {
          weight: 2,
          arbitrary: fc.record({
            op: fc.constant('putMany' as const),
            group,
            from: id,
            n: fc.integer({ min: 0, max: 80 }),
            step: fc.integer({ min: 1, max: 3 }),
          }),
        },
        {
          weight: 2,
          arbitrary: fc.record({
            op: fc.constant('deleteBelow' as const),
            group,
            id,
            max: fc.integer({ min: 0, max: 30 }),
          }),
        },
        {
          weight: 1,
          arbitrary: fc.record({
            op: fc.constant('meta' as const),
            group,
            key: fc.constantFrom('systemVariables', 'masterVariables', 'x'),
            len: fc.integer({ min: 0, max: 40 }),
          }),
        },
        { weight: 1, arbitrary: fc.record({ op: fc.constant('minChosen' as const), group, id }) },
        { weight: 1, arbitrary: fc.record({ op: fc.constant('clear' as const), group }) },
        { weight: 1, arbitrary: fc.record({ op: fc.constant('reset' as const), group, id }) },
        { weight: 1, arbitrary: fc.constant({ op: 'reopen' as const }) },
      );
      await fc.assert(
        fc.asyncProperty(fc.array(opArb, { maxLength: 30 }), async (ops) => {
          const h = await make({ maxDeleteRecords: 20 });
          let store = h.store;
          const records = new Map<string, AcceptorRecord>();
          const meta = new Map<string, number[]>();
          const minChosen = new Map<number, number>();
          const key = (g: number, i: number) => `${g}:${i}`;
          const fill = (seed: number, len: number) =>
            new Uint8Array(len).map((_, k) => (seed * 31 + k) & 0xff);
          try {
            for (const [step, o] of ops.entries()) {
              if (o.op === 'put') {
                const r = { ...record(o.id), value: fill(step, o.len) };
                await store.put(o.group, r, { sync: o.sync });
                records.set(key(o.group, o.id), r);
              } else if (o.op === 'putMany') {
                const batch = Array.from({ length: o.n }, (_, k) => ({
                  ...record(o.from + k * o.step),
                  value: fill(step + k, k % 7),
                }));
                await store.putMany(o.group, batch, { sync: step % 2 === 0 });
                for (const r of batch) records.set(key(o.group, r.instanceId), r);
              } else if (o.op === 'deleteBelow') {
                const doomed = [...records.keys()]
                  .filter((k) => k.startsWith(`${o.group}:`))
                  .map((k) => Number(k.split(':')[1]))
                  .filter((i) => i < o.id)
                  .sort((a, b) => a - b)
                  .slice(0, Math.min(o.max, 20));
                expect(store.deleteBelow(o.group, o.id, o.max)).toBe(doomed.length);
                for (const i of doomed) records.delete(key(o.group, i));
              } else if (o.op === 'meta') {
                const v = fill(step, o.len);
                await store.setMeta(o.group, o.key, v, { sync: false });
                meta.set(`${o.group}:${o.key}`, [...v]);
              } else if (o.op === 'minChosen') {
                await store.setMinChosenInstanceId(o.group, o.id);
                minChosen.set(o.group, o.id);
              } else if (o.op === 'clear') {
                await store.clearGroup(o.group);
                for (const k of [...records.keys()])
                  if (k.startsWith(`${o.group}:`)) records.delete(k);
                for (const k of [...meta.keys()]) if (k.startsWith(`${o.group}:`)) meta.delete(k);
                minChosen.delete(o.group);
              } else if (o.op === 'reset') {
                await store.resetGroup(o.group, { minChosenInstanceId: o.id });
                for (const k of [...records.keys()])
                  if (k.startsWith(`${o.group}:`)) records.delete(k);
                minChosen.set(o.group, o.id);
              } else {
                store = await h.reopen();
              }
            }
            for (const g of [0, 1, 2]) {
              const expected = [...records.entries()]
                .filter(([k]) => k.startsWith(`${g}:`))
                .map(([, r]) => r)
                .sort((a, b) => a.instanceId - b.instanceId);
              expect([...store.range(g, 0, 1000)]).toEqual(expected);
              expect(store.maxInstanceId(g)).toBe(expected.at(-1)?.instanceId);
              for (const r of expected) expect(store.get(g, r.instanceId)).toEqual(r);
              expect(store.getMinChosenInstanceId(g)).toBe(minChosen.get(g) ?? 0);
              for (const k of ['systemVariables', 'masterVariables', 'x']) {
                const v = store.getMeta(g, k);
                expect(v === undefined ? undefined : [...v]).toEqual(meta.get(`${g}:${k}`));
              }
            }
          } finally {
            await h.cleanup();
          }
        }),
        { numRuns: 40, seed: 20261124 },
      );
    });
  });
}
