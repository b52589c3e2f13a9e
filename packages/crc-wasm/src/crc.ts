// crc32(): serves each call with the fastest correct backend for its size class on this
// runtime. The thresholds come from `npm run bench` on the project's machines (BENCHMARKS.md):
// WASM slice-by-16 wins for small inputs because a zlib.crc32 call costs ~150 ns before the
// first byte, while zlib's folding CRC wins for large ones.
import { checkStride, crc32Js } from './crc-js';
import { crc32Combine, knownCrc } from './combine';
import { wasm, WASM_WINDOW_BYTES, type WasmCore } from './wasm';

/**
 * Inputs of at least this many bytes go to zlib.crc32 where it exists (Node >= 20.15). Measured
 * crossover: at 256 B WASM (copy included) is 1.16x zlib, at 512 B zlib is 1.09x WASM.
 */
export const ZLIB_MIN_BYTES = 384;

/**
 * Sampled CRCs over at least this many input bytes run in WASM (stride 8: 6.2 GB/s of input at
 * 64 KiB vs 3.5 for the JS loop); below it the JS loop wins (100 B: 2.3 vs 1.0 GB/s).
 */
export const STRIDE_WASM_MIN_BYTES = 1024;

type ZlibCrc32 = (data: Uint8Array, value?: number) => number;

function findZlibCrc32(): ZlibCrc32 | null {
  // process.getBuiltinModule keeps this file loadable in browsers (no static node:zlib import).
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const zlib = proc?.getBuiltinModule?.('node:zlib') as { crc32?: ZlibCrc32 } | undefined;
  return typeof zlib?.crc32 === 'function' ? zlib.crc32 : null;
}

/** Node's built-in zlib.crc32, or null (browsers, Node < 20.15). */
export const zlibCrc32: ZlibCrc32 | null = findZlibCrc32();

function wasmUpdate(core: WasmCore, data: Uint8Array, prev: number): number {
  let crc = prev;
  for (let at = 0; at < data.length; at += WASM_WINDOW_BYTES) {
    const window = data.subarray(at, at + WASM_WINDOW_BYTES);
    core.bytes.set(window, core.ioBase);
    crc = core.exports.crc32(core.ioBase, window.length, crc);
  }
  return crc >>> 0;
}

/**
 * CRC-32 computed in WebAssembly (input copied into WASM memory, one window at a time).
 * Falls back to the JS twin where WebAssembly is unavailable.
 */
export function crc32Wasm(data: Uint8Array, prev = 0, opts?: { stride?: number }): number {
  const stride = checkStride(opts?.stride);
  const core = wasm;
  if (core === null) return crc32Js(data, prev, opts);
  if (stride === 1) return wasmUpdate(core, data, prev >>> 0);
  // Strided: feed whole multiples of the stride per window so sampling offsets line up.
  const windowBytes = WASM_WINDOW_BYTES - (WASM_WINDOW_BYTES % stride);
  let crc = prev >>> 0;
  for (let at = 0; at < data.length; at += windowBytes) {
    const window = data.subarray(at, at + windowBytes);
    core.bytes.set(window, core.ioBase);
    crc = core.exports.crc32Stride(core.ioBase, window.length, crc, stride) >>> 0;
  }
  return crc;
}

/**
 * Unsigned CRC-32 (IEEE, identical to zlib.crc32(data, prev)). With `stride: k` only the bytes
 * at offsets 0, k, 2k, ... are sampled (PhxPaxos's crc32(crc, buf, len, skiplen)).
 * Chaining holds: crc32(b, crc32(a)) === crc32(a ‖ b) for stride 1.
 */
export function crc32(data: Uint8Array, prev = 0, opts?: { stride?: number }): number {
  const stride = checkStride(opts?.stride);
  if (stride !== 1) {
    // Sampled CRC: a JS table loop over the few samples beats copying the input into WASM.
    if (data.length >= STRIDE_WASM_MIN_BYTES) return crc32Wasm(data, prev, opts);
    return crc32Js(data, prev, opts);
  }
  // An empty buffer without backing memory makes zlib.crc32 return 0 (BASELINES.md pitfall).
  if (data.length === 0) return prev >>> 0;
  if (data.length >= ZLIB_MIN_BYTES && zlibCrc32 !== null) return zlibCrc32(data, prev >>> 0) >>> 0;
  const core = wasm;
  if (core === null) return crc32Js(data, prev);
  if (data.length <= WASM_WINDOW_BYTES) {
    core.bytes.set(data, core.ioBase);
    return core.exports.crc32(core.ioBase, data.length, prev >>> 0) >>> 0;
  }
  return wasmUpdate(core, data, prev >>> 0);
}

/**
 * The checksum chain of design.md §2: cs(i) = crc32(value(i), cs(i-1)), except that an instance
 * after the first whose predecessor's checksum is unknown (0, e.g. after a checkpoint load)
 * restarts the chain at 0. A value whose CRC was recorded (rememberCrc: a received frame's
 * field, a value read from the log) is not read again: its CRC is combined with the chain.
 */
export function chainChecksum(
  instanceId: number,
  lastChecksum: number,
  value: Uint8Array,
  opts?: { stride?: number },
): number {
  if (instanceId > 0 && lastChecksum === 0) return 0;
  if (opts?.stride === undefined || opts.stride === 1) {
    const k = knownCrc(value);
    if (k !== undefined) return crc32Combine(lastChecksum, k, value.length);
  }
  return crc32(value, lastChecksum, opts);
}

/**
 * A view of the WASM I/O window, for callers that build data in place and for the benchmark
 * ("already in WASM memory"). Valid until the next call that grows WASM memory; null without WASM.
 */
export function wasmWindow(byteLength: number): Uint8Array | null {
  const core = wasm;
  if (core === null || byteLength > WASM_WINDOW_BYTES) return null;
  core.ensure(byteLength);
  return core.bytes.subarray(core.ioBase, core.ioBase + byteLength);
}

/** CRC-32 of the first `length` bytes of the WASM I/O window (see wasmWindow). */
export function crc32WasmWindow(length: number, prev = 0): number {
  const core = wasm;
  if (core === null || length > WASM_WINDOW_BYTES)
    throw new RangeError('crc32WasmWindow: no such window');
  return core.exports.crc32(core.ioBase, length, prev >>> 0) >>> 0;
}
