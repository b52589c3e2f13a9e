import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PaxosError } from './errors';
import {
  BATCH_SM_ID,
  bytesEqual,
  hasIdentity,
  IDENTIFIED_SM_ID,
  IDENTITY_HEADER_BYTES,
  packBatch,
  packValue,
  unpackValue,
  valueIdentity,
  withoutIdentity,
} from './value';

describe('value packing', () => {
  it('round-trips single values and batches (property)', () => {
    const item = fc.record({
      smId: fc
        .integer({ min: 0, max: 0xffffffff })
        .filter((id) => id !== BATCH_SM_ID && id !== IDENTIFIED_SM_ID),
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

  it('writes every byte of a large packed value (its memory is not zeroed first) into a buffer of its own', () => {
    // Dirty memory for the allocator to hand back: large buffers filled and let go.
    for (let i = 0; i < 64; i++) Buffer.allocUnsafeSlow(200 * 1024).fill(0xa5);
    const identity = { nodeId: 7, incarnation: 9, sequence: 2 ** 40 + 3 };
    for (const bytes of [5, 4 * 1024, 100 * 1024]) {
      const user = new Uint8Array(bytes).map((_, i) => (i * 31) & 0xff);
      const single = packValue(42, user, identity);
      const expected = new Uint8Array(IDENTITY_HEADER_BYTES + 4 + bytes);
      const view = new DataView(expected.buffer);
      [IDENTIFIED_SM_ID, 7, 9, 3, 2 ** 8, 42].forEach((w, i) => view.setUint32(i * 4, w, true));
      expected.set(user, IDENTITY_HEADER_BYTES + 4);
      expect(bytesEqual(single, expected)).toBe(true);
      const batch = packBatch(
        [
          { smId: 5, value: user },
          { smId: 6, value: user.subarray(1) },
        ],
        identity,
      );
      expect(
        unpackValue(batch).map((v) => [
          v.smId,
          bytesEqual(v.value, v.smId === 5 ? user : user.subarray(1)),
        ]),
      ).toEqual([
        [5, true],
        [6, true],
      ]);
      // Its own memory: a small value a state machine keeps holds no shared pool slab.
      for (const packed of [single, batch]) {
        expect(packed.byteOffset).toBe(0);
        expect(packed.buffer.byteLength).toBe(packed.length);
      }
    }
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

  it('carries an identity the state machines never see; equal user bytes with other identities differ (property)', () => {
    const identity = fc.record({
      nodeId: fc.integer({ min: 0, max: 0xffffffff }),
      incarnation: fc.integer({ min: 0, max: 0xffffffff }),
      sequence: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    });
    const item = fc.record({
      smId: fc
        .integer({ min: 0, max: 0xffffffff })
        .filter((id) => id !== BATCH_SM_ID && id !== IDENTIFIED_SM_ID),
      value: fc.uint8Array({ maxLength: 64 }),
    });
    fc.assert(
      fc.property(
        identity,
        identity,
        item,
        fc.array(item, { maxLength: 8 }),
        (id, other, one, many) => {
          for (const [packed, plain] of [
            [packValue(one.smId, one.value, id), packValue(one.smId, one.value)],
            [packBatch(many, id), packBatch(many)],
          ] as const) {
            expect(packed.length).toBe(plain.length + IDENTITY_HEADER_BYTES);
            expect(valueIdentity(packed)).toEqual(id);
            expect(hasIdentity(packed, id)).toBe(true);
            const same =
              id.nodeId === other.nodeId &&
              id.incarnation === other.incarnation &&
              id.sequence === other.sequence;
            expect(hasIdentity(packed, other)).toBe(same);
            expect(hasIdentity(plain, id)).toBe(false);
            expect(valueIdentity(plain)).toBeUndefined();
            expect([...withoutIdentity(packed)]).toEqual([...plain]);
            const a = unpackValue(packed).map((v) => ({ smId: v.smId, value: [...v.value] }));
            const b = unpackValue(plain).map((v) => ({ smId: v.smId, value: [...v.value] }));
            expect(a).toEqual(b);
          }
        },
      ),
    );
  });

  it('rejects a truncated or doubled identity header with E_BAD_ARGUMENT', () => {
    const id = { nodeId: 2, incarnation: 7, sequence: 2 ** 40 + 3 };
    const good = packValue(10, new Uint8Array([1, 2]), id);
    for (let len = 4; len < IDENTITY_HEADER_BYTES + 4; len++)
      expect(() => unpackValue(good.subarray(0, len)), `prefix ${len}`).toThrow(PaxosError);
    const doubled = new Uint8Array(IDENTITY_HEADER_BYTES + good.length);
    doubled.set(good.subarray(0, IDENTITY_HEADER_BYTES));
    doubled.set(good, IDENTITY_HEADER_BYTES);
    expect(() => unpackValue(doubled)).toThrow(/two identity headers/);
  });
});
