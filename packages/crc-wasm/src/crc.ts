// crc32(): serves each call with the fastest correct backend for its size class on this
// runtime. The thresholds come from `npm run bench` on the project's machines (BENCHMARKS.md):
// WASM slice-by-16 wins for small inputs because a zlib.crc32 call costs ~150 ns before the
// first byte, while zlib's folding CRC wins for large ones.
import { checkStride, crc32Js } from './crc-js';
import { wasm, WASM_WINDOW_BYTES, type WasmCore } from './wasm';

/** Inputs of at least this many bytes go to zlib.crc32 where it exists (Node >= 20.15). */
export const ZLIB_MIN_BYTES = 2048;

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

/** Gathers every stride-th byte, as PhxPaxos's sampled CRC reads them. */
function gather(data: Uint8Array, stride: number): Uint8Array {
  const out = new Uint8Array(Math.ceil(data.length / stride));
  for (let i = 0, j = 0; i < data.length; i += stride, j++) out[j] = data[i]!;
  return out;
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
    if (data.length / stride >= ZLIB_MIN_BYTES && zlibCrc32 !== null) {
      return zlibCrc32(gather(data, stride), prev >>> 0) >>> 0;
    }
    return crc32Wasm(data, prev, opts);
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
 * The checksum chain of DESIGN §2: cs(i) = crc32(value(i), cs(i-1)), except that an instance
 * after the first whose predecessor's checksum is unknown (0, e.g. after a checkpoint load)
 * restarts the chain at 0.
 */
export function chainChecksum(
  instanceId: number,
  lastChecksum: number,
  value: Uint8Array,
  opts?: { stride?: number },
): number {
  if (instanceId > 0 && lastChecksum === 0) return 0;
  return crc32(value, lastChecksum, opts);
}
