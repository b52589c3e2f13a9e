import { crc32 as zlibCrc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  chainChecksum,
  crc32,
  crc32Combine,
  KNOWN_CRC_MIN_BYTES,
  knownCrc,
  rememberCrc,
} from './index';

describe('crc32Combine', () => {
  it('equals the CRC of the concatenation, for any split and any start', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 3000 }),
        fc.uint8Array({ maxLength: 3000 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (a, b, prev) => {
          const whole = new Uint8Array(a.length + b.length);
          whole.set(a);
          whole.set(b, a.length);
          expect(crc32Combine(crc32(a, prev), crc32(b), b.length)).toBe(zlibCrc32(whole, prev));
          expect(crc32Combine(prev, crc32(b), b.length)).toBe(zlibCrc32(b, prev));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('handles large lengths and a zero length', () => {
    const b = new Uint8Array(1_000_003).map((_, i) => (i * 31 + 7) & 0xff);
    expect(crc32Combine(0x12345678, crc32(b), b.length)).toBe(zlibCrc32(b, 0x12345678));
    expect(crc32Combine(0xdeadbeef, 0, 0)).toBe(0xdeadbeef);
  });

  it('refuses a length that is not a non-negative integer', () => {
    expect(() => crc32Combine(0, 0, -1)).toThrow(RangeError);
    expect(() => crc32Combine(0, 0, 1.5)).toThrow(RangeError);
  });
});

describe('rememberCrc / knownCrc', () => {
  it('records large arrays only, per array object', () => {
    const big = new Uint8Array(KNOWN_CRC_MIN_BYTES).fill(3);
    const small = new Uint8Array(KNOWN_CRC_MIN_BYTES - 1).fill(3);
    rememberCrc(big, crc32(big));
    rememberCrc(small, crc32(small));
    expect(knownCrc(big)).toBe(crc32(big));
    expect(knownCrc(small)).toBeUndefined();
    // Another view of the same memory is another array: not recorded.
    expect(knownCrc(big.subarray(0))).toBeUndefined();
  });

  it('chainChecksum uses a recorded CRC instead of reading the bytes', () => {
    const v = new Uint8Array(KNOWN_CRC_MIN_BYTES * 2).map((_, i) => i & 0xff);
    const copy = v.slice();
    const honest = chainChecksum(7, 0xabcdef, v);
    expect(honest).toBe(zlibCrc32(v, 0xabcdef));
    rememberCrc(v, crc32(v));
    expect(chainChecksum(7, 0xabcdef, v)).toBe(honest);
    // Planted: a wrong recorded CRC shows in the chain, so the recorded value is what is used.
    rememberCrc(copy, crc32(v) ^ 1);
    expect(chainChecksum(7, 0xabcdef, copy)).not.toBe(honest);
    // The chain restart rule holds either way.
    expect(chainChecksum(7, 0, v)).toBe(0);
    // A strided chain never uses the full CRC.
    expect(chainChecksum(7, 5, v, { stride: 4 })).toBe(crc32(v, 5, { stride: 4 }));
  });
});
