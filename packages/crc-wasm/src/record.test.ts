import { TspaxosError } from '@tspaxos/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AcceptorRecord,
  CodecError,
  decodeRecord,
  decodeRecordJs,
  decodeRecordWasm,
  encodeRecord,
  encodeRecordJs,
  encodeRecordWasm,
  encodeRecordsInWindow,
  ENCODED_RECORD_OVERHEAD_BYTES,
} from './index';

const safeId = fc.oneof(fc.nat({ max: 1000 }), fc.maxSafeNat());
const recordArb: fc.Arbitrary<AcceptorRecord> = fc.record({
  instanceId: safeId,
  promiseId: safeId,
  promiseNodeId: safeId,
  acceptedId: safeId,
  acceptedNodeId: safeId,
  value: fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    fc.uint8Array({ minLength: 900, maxLength: 3000 }),
  ),
  checksum: fc.nat({ max: 0xffffffff }),
});

const sample: AcceptorRecord = {
  instanceId: 12345,
  promiseId: 7,
  promiseNodeId: 2,
  acceptedId: 7,
  acceptedNodeId: 2,
  value: new TextEncoder().encode('the chosen value of instance 12345'),
  checksum: 0xdeadbeef,
};

const decoders = { decodeRecord, decodeRecordJs, decodeRecordWasm } as const;

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CodecError);
    expect(e).toBeInstanceOf(TspaxosError);
    return (e as CodecError).code;
  }
  return 'NO_ERROR';
}

describe('record codec', () => {
  it('round-trips, and WASM and JS produce identical bytes (property)', () => {
    assertBounded(
      fc.property(recordArb, (r) => {
        const js = encodeRecordJs(r);
        const wasm = encodeRecordWasm(r);
        const auto = encodeRecord(r);
        expect(wasm).toEqual(js);
        expect(auto).toEqual(js);
        expect(js.length).toBe(ENCODED_RECORD_OVERHEAD_BYTES + r.value.length);
        for (const decode of Object.values(decoders)) {
          const back = decode(js);
          expect({ ...back, value: Array.from(back.value) }).toEqual({
            ...r,
            value: Array.from(r.value),
          });
        }
      }),
      { numRuns: 300, minRuns: 60, timeLimitMs: 20_000 },
    );
  });

  it('returns the value as a view of the input (no copy)', () => {
    const bytes = encodeRecord(sample);
    expect(decodeRecordJs(bytes).value.buffer).toBe(bytes.buffer);
    expect(decodeRecordWasm(bytes).value.buffer).toBe(bytes.buffer);
  });

  it.each(Object.entries(decoders))('%s rejects every truncation', (_name, decode) => {
    const bytes = encodeRecord(sample);
    for (let len = 0; len < bytes.length; len++) {
      const code = codeOf(() => decode(bytes.slice(0, len)));
      expect(['E_TRUNCATED', 'E_BAD_VERSION'], `prefix ${len}`).toContain(code);
    }
  });

  it.each(Object.entries(decoders))('%s rejects every single-bit flip', (_name, decode) => {
    const bytes = encodeRecord(sample);
    for (let bit = 0; bit < bytes.length * 8; bit++) {
      const flipped = bytes.slice();
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      expect(
        codeOf(() => decode(flipped)),
        `bit ${bit}`,
      ).not.toBe('NO_ERROR');
    }
  });

  it('rejects trailing bytes, an unknown version, and non-zero reserved bytes', () => {
    const bytes = encodeRecord(sample);
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    for (const decode of Object.values(decoders)) {
      expect(codeOf(() => decode(longer))).toBe('E_BAD_LENGTH');
      const v2 = bytes.slice();
      v2[0] = 2;
      expect(codeOf(() => decode(v2))).toBe('E_BAD_VERSION');
    }
    // A record with reserved bits set and a CRC that matches them (a writer from the future).
    const reserved = encodeRecordJs(sample);
    reserved[1] = 1;
    const body = reserved.subarray(0, reserved.length - 4);
    const fixed = encodeRecordJs({ ...sample }); // same length
    fixed.set(body);
    const view = new DataView(fixed.buffer, fixed.byteOffset, fixed.byteLength);
    view.setUint32(fixed.length - 4, crcOf(body), true);
    for (const decode of Object.values(decoders))
      expect(codeOf(() => decode(fixed))).toBe('E_BAD_RESERVED');
  });

  it('rejects ids above 2^53 - 1 in stored bytes', () => {
    const bytes = encodeRecordJs(sample);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    view.setUint32(8 + 4, 0x200000, true); // instanceId high word: 2^53
    view.setUint32(bytes.length - 4, crcOf(bytes.subarray(0, bytes.length - 4)), true);
    for (const decode of Object.values(decoders))
      expect(codeOf(() => decode(bytes))).toBe('E_UNSAFE_INTEGER');
  });

  it('refuses to encode unsafe or negative ids and bad checksums, for every encoder', () => {
    const bad: Array<[Partial<AcceptorRecord>, string]> = [
      [{ instanceId: 2 ** 53 }, 'E_UNSAFE_INTEGER'],
      [{ promiseId: -1 }, 'E_UNSAFE_INTEGER'],
      [{ acceptedNodeId: 1.5 }, 'E_UNSAFE_INTEGER'],
      [{ promiseNodeId: Number.NaN }, 'E_UNSAFE_INTEGER'],
      [{ checksum: 2 ** 32 }, 'E_BAD_VALUE'],
      [{ value: 'text' as unknown as Uint8Array }, 'E_BAD_VALUE'],
    ];
    for (const [patch, code] of bad) {
      for (const encode of [encodeRecord, encodeRecordJs, encodeRecordWasm]) {
        expect(codeOf(() => encode({ ...sample, ...patch }))).toBe(code);
      }
    }
  });

  it('rejects input that is not bytes', () => {
    for (const decode of Object.values(decoders)) {
      expect(codeOf(() => decode('nope' as unknown as Uint8Array))).toBe('E_BAD_VALUE');
    }
  });
});

function crcOf(d: Uint8Array): number {
  let crc = ~0;
  for (const byte of d) {
    crc ^= byte;
    for (let b = 0; b < 8; b++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return ~crc >>> 0;
}

/**
 * Runs a property for up to `numRuns` runs or `timeLimitMs`, whichever ends first, and fails
 * on a counterexample or on fewer than `minRuns` runs: a loaded CI machine (2 shared cores)
 * shortens the search instead of timing the test out, and the floor keeps it a search.
 */
function assertBounded<T>(
  property: fc.IProperty<T>,
  { numRuns, minRuns, timeLimitMs }: { numRuns: number; minRuns: number; timeLimitMs: number },
): void {
  const details = fc.check(property, {
    numRuns,
    interruptAfterTimeLimit: timeLimitMs,
    markInterruptAsFailure: false,
  });
  if (details.failed)
    fc.assert(property, {
      seed: details.seed,
      path: details.counterexamplePath ?? undefined,
      numRuns,
    });
  expect(details.failed).toBe(false);
  expect(details.numRuns).toBeGreaterThanOrEqual(minRuns);
}

describe('encodeRecordsInWindow', () => {
  it('encodes runs of records in place, byte for byte what encodeRecord gives', () => {
    assertBounded(
      fc.property(
        fc.array(recordArb, { minLength: 1, maxLength: 40 }),
        fc.nat(5),
        (records, skip) => {
          const from = Math.min(skip, records.length - 1);
          const count = records.length - from;
          const out: Uint8Array[] = [];
          expect(encodeRecordsInWindow(records, from, count, out)).toBe(true);
          // Copied before the next call into the package, as the views require.
          const copies = out.map((v) => v.slice());
          expect(copies).toEqual(records.slice(from).map((r) => encodeRecordJs(r)));
          expect(copies.map((c) => decodeRecord(c))).toEqual(
            records.slice(from).map((r) => ({ ...r, value: new Uint8Array(r.value) })),
          );
        },
      ),
      { numRuns: 200, minRuns: 40, timeLimitMs: 20_000 },
    );
  });

  it('declines (false) what it cannot encode in one window, and encodeRecord names the error', () => {
    const ok = { ...sample };
    const out: Uint8Array[] = [];
    const cases: Array<[AcceptorRecord, string]> = [
      [{ ...sample, promiseId: 2 ** 53 }, 'E_UNSAFE_INTEGER'],
      [{ ...sample, instanceId: -1 }, 'E_UNSAFE_INTEGER'],
      [{ ...sample, checksum: 2 ** 32 }, 'E_BAD_VALUE'],
      [{ ...sample, value: 'text' as unknown as Uint8Array }, 'E_BAD_VALUE'],
    ];
    for (const [bad, code] of cases) {
      expect(encodeRecordsInWindow([ok, bad, ok], 0, 3, out)).toBe(false);
      expect(() => encodeRecord(bad)).toThrow(expect.objectContaining({ code }));
    }
    // Larger than one WASM window (1 MiB) in total: declined, though each record is fine.
    const big = { ...sample, value: new Uint8Array(600 * 1024) };
    expect(encodeRecordsInWindow([big, big], 0, 2, out)).toBe(false);
    expect(encodeRecordsInWindow([big], 0, 1, out)).toBe(true);
    expect(out[0]!.length).toBe(600 * 1024 + ENCODED_RECORD_OVERHEAD_BYTES);
  });
});
