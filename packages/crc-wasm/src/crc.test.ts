import { randomBytes } from 'node:crypto';
import { crc32 as zlibCrc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  chainChecksum,
  crc32,
  crc32Js,
  crc32Wasm,
  crc32WasmWindow,
  isWasmLoaded,
  wasmWindow,
  ZLIB_MIN_BYTES,
} from './index';

const ascii = (s: string) => new TextEncoder().encode(s);
const backends = { crc32, crc32Wasm, crc32Js } as const;

/** Straightforward reference for the sampled CRC: bit-by-bit over bytes 0, k, 2k, ... */
function referenceStride(data: Uint8Array, prev: number, stride: number): number {
  let crc = ~prev >>> 0;
  for (let i = 0; i < data.length; i += stride) {
    crc ^= data[i]!;
    for (let b = 0; b < 8; b++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return ~crc >>> 0;
}

describe('crc32', () => {
  it('loads the WebAssembly backend on Node', () => {
    expect(isWasmLoaded()).toBe(true);
  });

  it.each(Object.entries(backends))('%s gives the check value 0xCBF43926', (_name, fn) => {
    expect(fn(ascii('123456789'))).toBe(0xcbf43926);
  });

  it.each(Object.entries(backends))(
    '%s matches zlib.crc32 on random buffers 0 B … 1 MiB',
    (_name, fn) => {
      const sizes = [
        0,
        1,
        2,
        3,
        15,
        16,
        17,
        31,
        100,
        255,
        1000,
        1023,
        1024,
        ZLIB_MIN_BYTES - 1,
        ZLIB_MIN_BYTES,
        4096,
        65536,
        65537,
        (1 << 20) - 1,
        1 << 20,
        (1 << 20) + 17,
      ];
      for (const size of sizes) {
        const data = randomBytes(size);
        const prev = size % 3 === 0 ? 0 : (size * 2654435761) >>> 0;
        expect(fn(data, prev), `size ${size}`).toBe(zlibCrc32(data, prev));
      }
    },
  );

  it('matches zlib.crc32 for arbitrary buffers and seeds (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 5000 }), fc.nat({ max: 0xffffffff }), (data, prev) => {
        const want = data.length === 0 ? prev : zlibCrc32(data, prev);
        return (
          crc32(data, prev) === want &&
          crc32Wasm(data, prev) === want &&
          crc32Js(data, prev) === want
        );
      }),
      { numRuns: 300 },
    );
  });

  it('chains: crc32(b, crc32(a)) === crc32(a ‖ b)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 4000 }),
        fc.uint8Array({ maxLength: 4000 }),
        (a, b) => {
          const whole = new Uint8Array(a.length + b.length);
          whole.set(a);
          whole.set(b, a.length);
          for (const fn of Object.values(backends)) {
            if (fn(b, fn(a)) !== fn(whole)) return false;
          }
          return true;
        },
      ),
      { numRuns: 200 },
    );
  });

  it('returns prev for an empty buffer without backing memory (zlib pitfall)', () => {
    expect(crc32(new Uint8Array(0), 1234)).toBe(1234);
    expect(crc32(randomBytes(0), 0xdeadbeef)).toBe(0xdeadbeef);
  });

  it('samples every stride-th byte exactly as the reference', () => {
    for (const stride of [1, 2, 3, 7, 8, 9, 16, 1000]) {
      for (const size of [0, 1, 7, 8, 9, 100, 4097, 20_000, 70_000]) {
        const data = randomBytes(size);
        const want = referenceStride(data, 77, stride);
        for (const [name, fn] of Object.entries(backends)) {
          expect(fn(data, 77, { stride }), `${name} stride ${stride} size ${size}`).toBe(want);
        }
      }
    }
  });

  it('strided CRC over large inputs crosses WASM windows correctly', () => {
    const data = randomBytes((1 << 20) * 2 + 13);
    for (const stride of [7, 8]) {
      const want = referenceStride(data, 0, stride);
      expect(crc32Wasm(data, 0, { stride })).toBe(want);
      expect(crc32(data, 0, { stride })).toBe(want);
    }
  });

  it('rejects a stride that is not a positive integer', () => {
    for (const stride of [0, -1, 1.5, Number.NaN]) {
      expect(() => crc32(ascii('abc'), 0, { stride })).toThrow(RangeError);
    }
  });
});

describe('chainChecksum', () => {
  it('restarts the chain at 0 when the previous checksum is unknown', () => {
    expect(chainChecksum(5, 0, ascii('value'))).toBe(0);
  });

  it('starts from 0 at instance 0 and chains otherwise', () => {
    const v = ascii('value');
    expect(chainChecksum(0, 0, v)).toBe(zlibCrc32(v, 0));
    expect(chainChecksum(9, 42, v)).toBe(zlibCrc32(v, 42));
  });
});

describe('wasmWindow', () => {
  it('computes the CRC of bytes placed directly in WASM memory', () => {
    const data = randomBytes(3000);
    const window = wasmWindow(data.length);
    expect(window).not.toBeNull();
    window!.set(data);
    expect(crc32WasmWindow(data.length, 5)).toBe(zlibCrc32(data, 5));
  });
});
