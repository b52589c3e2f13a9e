// The stored paxos record (PhxPaxos AcceptorStateData) in a fixed little-endian layout:
//
//   offset  size  field
//   0       1     format version (1)
//   1       1     flags (0; reserved)
//   2       2     reserved (0)
//   4       4     value length n
//   8       8     instanceId        (u64, must be a safe integer)
//   16      8     promiseId
//   24      8     promiseNodeId
//   32      8     acceptedId
//   40      8     acceptedNodeId
//   48      4     checksum          (the chain value, design.md §2)
//   52      n     value
//   52+n    4     CRC-32 of bytes [0, 52+n)
//
// The trailing CRC lets storage tell a torn or flipped record from a good one: every
// truncation and every single-bit flip is rejected (CRC-32 catches all single-bit errors).
import { crc32 } from './crc';
import { crc32Js } from './crc-js';
import { CodecError, type CodecErrorCode } from './errors';
import { allocBytes } from './alloc';
import { wasm, WASM_WINDOW_BYTES } from './wasm';

/** PhxPaxos AcceptorStateData: one per instance in storage. */
export interface AcceptorRecord {
  instanceId: number;
  promiseId: number;
  promiseNodeId: number;
  acceptedId: number;
  acceptedNodeId: number;
  value: Uint8Array;
  checksum: number;
}

export const RECORD_VERSION = 1;
export const RECORD_HEADER_BYTES = 52;
export const RECORD_TRAILER_BYTES = 4;
/** Bytes an encoded record takes beyond its value (header and trailer). */
export const ENCODED_RECORD_OVERHEAD_BYTES = RECORD_HEADER_BYTES + RECORD_TRAILER_BYTES;
/** Largest value the layout can hold (u32 length); storage enforces its own, smaller limit. */
export const RECORD_MAX_VALUE_BYTES = 0xffffffff - ENCODED_RECORD_OVERHEAD_BYTES;
/**
 * Records up to this size go through WASM; larger ones through DataView + zlib's CRC, which
 * overtakes the WASM CRC at about 400 B (see ZLIB_MIN_BYTES).
 */
export const WASM_RECORD_MAX_BYTES = 512;

const ID_FIELDS = [
  'instanceId',
  'promiseId',
  'promiseNodeId',
  'acceptedId',
  'acceptedNodeId',
] as const;
const WASM_ERRORS: Record<number, CodecErrorCode> = {
  [-1]: 'E_TRUNCATED',
  [-2]: 'E_BAD_CRC',
  [-3]: 'E_BAD_VERSION',
  [-4]: 'E_UNSAFE_INTEGER',
  [-5]: 'E_BAD_LENGTH',
  [-6]: 'E_BAD_RESERVED',
};

function checkRecord(r: AcceptorRecord): void {
  for (const field of ID_FIELDS) {
    const v = r[field];
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new CodecError(
        'E_UNSAFE_INTEGER',
        `record ${field} must be a safe non-negative integer, got ${String(v)}`,
      );
    }
  }
  if (!Number.isInteger(r.checksum) || r.checksum < 0 || r.checksum > 0xffffffff) {
    throw new CodecError('E_BAD_VALUE', `record checksum must be a u32, got ${String(r.checksum)}`);
  }
  if (!(r.value instanceof Uint8Array)) {
    throw new CodecError('E_BAD_VALUE', 'record value must be a Uint8Array');
  }
  if (r.value.length > RECORD_MAX_VALUE_BYTES) {
    throw new CodecError(
      'E_BAD_LENGTH',
      `record value of ${r.value.length} bytes exceeds the layout's limit`,
    );
  }
}

function putU64(view: DataView, offset: number, v: number): void {
  view.setUint32(offset, v >>> 0, true);
  view.setUint32(offset + 4, Math.floor(v / 0x1_0000_0000), true);
}

function getU64(view: DataView, offset: number, field: string): number {
  const hi = view.getUint32(offset + 4, true);
  if (hi > 0x1fffff)
    throw new CodecError('E_UNSAFE_INTEGER', `record ${field} is not a safe integer`);
  return hi * 0x1_0000_0000 + view.getUint32(offset, true);
}

function encodeWith(r: AcceptorRecord, crc: (d: Uint8Array) => number): Uint8Array {
  checkRecord(r);
  const n = r.value.length;
  const out = allocBytes(ENCODED_RECORD_OVERHEAD_BYTES + n);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint8(0, RECORD_VERSION);
  view.setUint32(4, n, true);
  putU64(view, 8, r.instanceId);
  putU64(view, 16, r.promiseId);
  putU64(view, 24, r.promiseNodeId);
  putU64(view, 32, r.acceptedId);
  putU64(view, 40, r.acceptedNodeId);
  view.setUint32(48, r.checksum, true);
  out.set(r.value, RECORD_HEADER_BYTES);
  view.setUint32(RECORD_HEADER_BYTES + n, crc(out.subarray(0, RECORD_HEADER_BYTES + n)), true);
  return out;
}

function decodeWith(b: Uint8Array, crc: (d: Uint8Array) => number): AcceptorRecord {
  if (!(b instanceof Uint8Array))
    throw new CodecError('E_BAD_VALUE', 'record bytes must be a Uint8Array');
  if (b.length < 1) throw new CodecError('E_TRUNCATED', 'record is empty');
  if (b[0] !== RECORD_VERSION) {
    throw new CodecError('E_BAD_VERSION', `record format version ${b[0]} is not ${RECORD_VERSION}`);
  }
  if (b.length < ENCODED_RECORD_OVERHEAD_BYTES) {
    throw new CodecError('E_TRUNCATED', `record of ${b.length} bytes is shorter than its header`);
  }
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = view.getUint32(4, true);
  const expected = ENCODED_RECORD_OVERHEAD_BYTES + n;
  if (b.length < expected)
    throw new CodecError('E_TRUNCATED', `record of ${b.length} bytes, header says ${expected}`);
  if (b.length > expected)
    throw new CodecError('E_BAD_LENGTH', `record of ${b.length} bytes, header says ${expected}`);
  const body = RECORD_HEADER_BYTES + n;
  if (crc(b.subarray(0, body)) !== view.getUint32(body, true)) {
    throw new CodecError('E_BAD_CRC', 'record CRC does not match its bytes');
  }
  if (b[1] !== 0 || view.getUint16(2, true) !== 0) {
    throw new CodecError('E_BAD_RESERVED', 'record reserved bytes are not zero');
  }
  return {
    instanceId: getU64(view, 8, 'instanceId'),
    promiseId: getU64(view, 16, 'promiseId'),
    promiseNodeId: getU64(view, 24, 'promiseNodeId'),
    acceptedId: getU64(view, 32, 'acceptedId'),
    acceptedNodeId: getU64(view, 40, 'acceptedNodeId'),
    value: b.subarray(RECORD_HEADER_BYTES, body),
    checksum: view.getUint32(48, true),
  };
}

/** JS twin of the record encoder: DataView plus the JS CRC. The reference for the WASM. */
export function encodeRecordJs(r: AcceptorRecord): Uint8Array {
  return encodeWith(r, (d) => crc32Js(d));
}

/** JS twin of the record decoder. The returned value is a view into `b` (no copy). */
export function decodeRecordJs(b: Uint8Array): AcceptorRecord {
  return decodeWith(b, (d) => crc32Js(d));
}

/** Encodes in WebAssembly: the value is copied into WASM memory, header and CRC written there. */
export function encodeRecordWasm(r: AcceptorRecord): Uint8Array {
  const core = wasm;
  if (core === null) return encodeRecordJs(r);
  const value = r.value;
  // Ids are range-checked inside WASM (toSafe); only what WASM cannot see is checked here.
  if (
    !(value instanceof Uint8Array) ||
    r.checksum >>> 0 !== r.checksum ||
    value.length > RECORD_MAX_VALUE_BYTES
  ) {
    checkRecord(r); // throws the precise error
  }
  const n = value.length;
  core.ensure(ENCODED_RECORD_OVERHEAD_BYTES + n);
  const base = core.ioBase;
  core.bytes.set(value, base + RECORD_HEADER_BYTES);
  const length = core.exports.encodeRecord(
    base,
    n,
    r.instanceId,
    r.promiseId,
    r.promiseNodeId,
    r.acceptedId,
    r.acceptedNodeId,
    r.checksum,
  );
  if (length < 0) {
    checkRecord(r); // names the offending field
    throw new CodecError(WASM_ERRORS[length] ?? 'E_BAD_VALUE', 'record cannot be encoded');
  }
  const out = allocBytes(length);
  out.set(core.bytes.subarray(base, base + length));
  return out;
}

/**
 * Encodes `count` records from `records[from]` one after another in WASM memory and puts a view
 * of each in `out[0…count)`: no bytes are allocated or copied out. The views are valid only until
 * the next call into this package (any of them may reuse that memory): for a writer that hands
 * the bytes at once to a consumer that copies them (an SQLite insert). False, with `out`
 * unspecified, when WASM is absent, the records do not all fit in one window, or one of them
 * cannot be encoded: encode them one by one with encodeRecord then (which throws the precise
 * error).
 */
export function encodeRecordsInWindow(
  records: readonly AcceptorRecord[],
  from: number,
  count: number,
  out: Uint8Array[],
): boolean {
  const core = wasm;
  if (core === null) return false;
  let total = 0;
  for (let i = 0; i < count; i++) {
    const value = records[from + i]?.value;
    if (!(value instanceof Uint8Array)) return false;
    total += ENCODED_RECORD_OVERHEAD_BYTES + value.length;
  }
  if (total > WASM_WINDOW_BYTES) return false;
  core.ensure(total); // before any view is taken: growing memory detaches the old ones
  const bytes = core.bytes;
  let at = core.ioBase;
  for (let i = 0; i < count; i++) {
    const r = records[from + i]!;
    const n = r.value.length;
    if (r.checksum >>> 0 !== r.checksum) return false;
    bytes.set(r.value, at + RECORD_HEADER_BYTES);
    const length = core.exports.encodeRecord(
      at,
      n,
      r.instanceId,
      r.promiseId,
      r.promiseNodeId,
      r.acceptedId,
      r.acceptedNodeId,
      r.checksum,
    );
    if (length < 0) return false;
    out[i] = bytes.subarray(at, at + length);
    at += length;
  }
  return true;
}

/** Decodes in WebAssembly. The returned value is a view into `b` (no copy). */
export function decodeRecordWasm(b: Uint8Array): AcceptorRecord {
  const core = wasm;
  if (core === null) return decodeRecordJs(b);
  if (!(b instanceof Uint8Array))
    throw new CodecError('E_BAD_VALUE', 'record bytes must be a Uint8Array');
  core.ensure(b.length);
  core.bytes.set(b, core.ioBase);
  const rc = core.exports.decodeRecord(core.ioBase, b.length);
  if (rc !== 0) {
    const code = WASM_ERRORS[rc] ?? 'E_BAD_VALUE';
    throw new CodecError(code, `record rejected (${code}, ${b.length} bytes)`);
  }
  const out = core.out;
  const n = out.getUint32(44, true);
  return {
    instanceId: out.getFloat64(0, true),
    promiseId: out.getFloat64(8, true),
    promiseNodeId: out.getFloat64(16, true),
    acceptedId: out.getFloat64(24, true),
    acceptedNodeId: out.getFloat64(32, true),
    value: b.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + n),
    checksum: out.getUint32(40, true),
  };
}

const crcFast = (d: Uint8Array): number => crc32(d);

/** Encodes a record with the fastest backend for its size (see WASM_RECORD_MAX_BYTES). */
export function encodeRecord(r: AcceptorRecord): Uint8Array {
  if (wasm !== null && r.value?.length + ENCODED_RECORD_OVERHEAD_BYTES <= WASM_RECORD_MAX_BYTES)
    return encodeRecordWasm(r);
  return encodeWith(r, crcFast);
}

/**
 * Decodes and validates a record. Bad bytes throw CodecError with a stable code; the returned
 * value is a view into `b`.
 */
export function decodeRecord(b: Uint8Array): AcceptorRecord {
  if (wasm !== null && b?.length <= WASM_RECORD_MAX_BYTES) return decodeRecordWasm(b);
  return decodeWith(b, crcFast);
}
