// The hot paths of tspaxos in AssemblyScript: CRC-32 (IEEE, reflected, as zlib) by
// slice-by-16, PhxPaxos's sampled CRC, and the fixed-layout paxos record codec.
//
// Memory map (all static, no allocator: built with --runtime stub):
//   TABLES  16 x 256 u32 slice-by-16 tables (16 KiB), filled at start-up
//   GATHER  scratch for the bytes a strided CRC samples
//   OUT     decoded record fields (5 x f64, 2 x u32)
//   IO      from __heap_base on: the caller's input / output window; the JS side grows
//           memory when a window larger than the current memory is needed.

const POLY: u32 = 0xedb88320;
const TABLES: usize = memory.data(16 * 256 * 4, 16);
const GATHER_BYTES: i32 = 4096;
const GATHER: usize = memory.data(GATHER_BYTES, 16);
const OUT: usize = memory.data(64, 16);

// Record layout (little-endian); see src/record.ts for the JS twin and the prose.
const RECORD_VERSION: u8 = 1;
const OFF_VERSION: usize = 0;
const OFF_FLAGS: usize = 1;
const OFF_RESERVED: usize = 2;
const OFF_VALUE_LENGTH: usize = 4;
const OFF_INSTANCE_ID: usize = 8;
const OFF_PROMISE_ID: usize = 16;
const OFF_PROMISE_NODE_ID: usize = 24;
const OFF_ACCEPTED_ID: usize = 32;
const OFF_ACCEPTED_NODE_ID: usize = 40;
const OFF_CHECKSUM: usize = 48;
const HEADER_BYTES: usize = 52;
const TRAILER_BYTES: usize = 4;
const MAX_SAFE: u64 = 9007199254740991;

// Error codes returned to JS (mapped to CodecError codes there).
const ERR_TRUNCATED: i32 = -1;
const ERR_BAD_CRC: i32 = -2;
const ERR_BAD_VERSION: i32 = -3;
const ERR_UNSAFE_INTEGER: i32 = -4;
const ERR_BAD_LENGTH: i32 = -5;
const ERR_BAD_RESERVED: i32 = -6;

function fillTables(): void {
  for (let i: u32 = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    store<u32>(TABLES + (<usize>i << 2), c);
  }
  for (let t: usize = 1; t < 16; t++) {
    for (let i: usize = 0; i < 256; i++) {
      const prev = load<u32>(TABLES + (((t - 1) * 256 + i) << 2));
      const next = (prev >>> 8) ^ load<u32>(TABLES + ((<usize>(prev & 0xff)) << 2));
      store<u32>(TABLES + ((t * 256 + i) << 2), next);
    }
  }
}
fillTables();

// @ts-ignore: decorator
@inline
function tab(t: usize, index: u32): u32 {
  return load<u32>(TABLES + ((t << 8) + <usize>index << 2));
}

/** Raw (pre/post-inverted) CRC state update over [ptr, ptr+len). */
function update(crc: u32, ptr: usize, len: usize): u32 {
  while (len >= 16) {
    const one = load<u32>(ptr) ^ crc;
    const two = load<u32>(ptr, 4);
    const three = load<u32>(ptr, 8);
    const four = load<u32>(ptr, 12);
    crc =
      tab(15, one & 0xff) ^
      tab(14, (one >>> 8) & 0xff) ^
      tab(13, (one >>> 16) & 0xff) ^
      tab(12, one >>> 24) ^
      tab(11, two & 0xff) ^
      tab(10, (two >>> 8) & 0xff) ^
      tab(9, (two >>> 16) & 0xff) ^
      tab(8, two >>> 24) ^
      tab(7, three & 0xff) ^
      tab(6, (three >>> 8) & 0xff) ^
      tab(5, (three >>> 16) & 0xff) ^
      tab(4, three >>> 24) ^
      tab(3, four & 0xff) ^
      tab(2, (four >>> 8) & 0xff) ^
      tab(1, (four >>> 16) & 0xff) ^
      tab(0, four >>> 24);
    ptr += 16;
    len -= 16;
  }
  while (len > 0) {
    crc = (crc >>> 8) ^ tab(0, (crc ^ <u32>load<u8>(ptr)) & 0xff);
    ptr++;
    len--;
  }
  return crc;
}

/** First address callers may use as their I/O window. */
export function ioBase(): usize {
  return (__heap_base + 15) & ~(<usize>15);
}

/** Address of the decoded-record output area. */
export function outBase(): usize {
  return OUT;
}

/** CRC-32 of [ptr, ptr+len), continuing from `prev` (0 to start). */
export function crc32(ptr: usize, len: usize, prev: u32): u32 {
  return ~update(~prev, ptr, len);
}

/**
 * CRC-32 of the bytes at ptr, ptr+stride, ptr+2*stride, ... below ptr+len: PhxPaxos's
 * sampled checksum. Gathering the samples and running slice-by-16 over them is 3-5x faster
 * than feeding one byte per step.
 */
export function crc32Stride(ptr: usize, len: usize, prev: u32, stride: usize): u32 {
  let crc = ~prev;
  let at: usize = 0;
  while (at < len) {
    let n: usize = 0;
    while (n < <usize>GATHER_BYTES && at < len) {
      store<u8>(GATHER + n, load<u8>(ptr + at));
      n++;
      at += stride;
    }
    crc = update(crc, GATHER, n);
  }
  return ~crc;
}

function toSafe(x: f64): u64 {
  // The JS side has already checked Number.isSafeInteger; this keeps WASM honest on its own.
  if (!(x >= 0) || x > <f64>MAX_SAFE || x != Math.floor(x)) return u64.MAX_VALUE;
  return <u64>x;
}

/**
 * Encodes a record in place: the caller has written the value at base+HEADER_BYTES.
 * Writes header and trailing CRC; returns the record's length, or an error code.
 */
export function encodeRecord(
  base: usize,
  valueLength: u32,
  instanceId: f64,
  promiseId: f64,
  promiseNodeId: f64,
  acceptedId: f64,
  acceptedNodeId: f64,
  checksum: u32,
): i32 {
  const a = toSafe(instanceId);
  const b = toSafe(promiseId);
  const c = toSafe(promiseNodeId);
  const d = toSafe(acceptedId);
  const e = toSafe(acceptedNodeId);
  if ((a | b | c | d | e) == u64.MAX_VALUE) return ERR_UNSAFE_INTEGER;
  store<u8>(base + OFF_VERSION, RECORD_VERSION);
  store<u8>(base + OFF_FLAGS, 0);
  store<u16>(base + OFF_RESERVED, 0);
  store<u32>(base + OFF_VALUE_LENGTH, valueLength);
  store<u64>(base + OFF_INSTANCE_ID, a);
  store<u64>(base + OFF_PROMISE_ID, b);
  store<u64>(base + OFF_PROMISE_NODE_ID, c);
  store<u64>(base + OFF_ACCEPTED_ID, d);
  store<u64>(base + OFF_ACCEPTED_NODE_ID, e);
  store<u32>(base + OFF_CHECKSUM, checksum);
  const body = HEADER_BYTES + <usize>valueLength;
  store<u32>(base + body, crc32(base, body, 0));
  return <i32>(body + TRAILER_BYTES);
}

/**
 * Validates and decodes the record of `length` bytes at `base`. On success writes the five ids
 * as f64 and checksum, value length as u32 into OUT and returns 0; otherwise an error code.
 */
export function decodeRecord(base: usize, length: usize): i32 {
  if (length < 1) return ERR_TRUNCATED;
  if (load<u8>(base + OFF_VERSION) != RECORD_VERSION) return ERR_BAD_VERSION;
  if (length < HEADER_BYTES + TRAILER_BYTES) return ERR_TRUNCATED;
  const valueLength = <usize>load<u32>(base + OFF_VALUE_LENGTH);
  const expected = HEADER_BYTES + valueLength + TRAILER_BYTES;
  if (length < expected) return ERR_TRUNCATED;
  if (length > expected) return ERR_BAD_LENGTH;
  const body = HEADER_BYTES + valueLength;
  if (crc32(base, body, 0) != load<u32>(base + body)) return ERR_BAD_CRC;
  if (load<u8>(base + OFF_FLAGS) != 0 || load<u16>(base + OFF_RESERVED) != 0) return ERR_BAD_RESERVED;
  const a = load<u64>(base + OFF_INSTANCE_ID);
  const b = load<u64>(base + OFF_PROMISE_ID);
  const c = load<u64>(base + OFF_PROMISE_NODE_ID);
  const d = load<u64>(base + OFF_ACCEPTED_ID);
  const e = load<u64>(base + OFF_ACCEPTED_NODE_ID);
  if (a > MAX_SAFE || b > MAX_SAFE || c > MAX_SAFE || d > MAX_SAFE || e > MAX_SAFE) {
    return ERR_UNSAFE_INTEGER;
  }
  store<f64>(OUT, <f64>a);
  store<f64>(OUT, <f64>b, 8);
  store<f64>(OUT, <f64>c, 16);
  store<f64>(OUT, <f64>d, 24);
  store<f64>(OUT, <f64>e, 32);
  store<u32>(OUT, load<u32>(base + OFF_CHECKSUM), 40);
  store<u32>(OUT, <u32>valueLength, 44);
  return 0;
}
