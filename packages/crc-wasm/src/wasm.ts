// Loads the embedded WebAssembly module synchronously and wraps its exports. The module's
// bytes are generated into src/generated/wasm.ts at build time (scripts/build-wasm.mjs), so no
// file-system path or top-level await is needed on Node or in browsers.
import { WASM_BASE64 } from './generated/wasm';
import { decodeBase64 } from './base64';

interface CrcExports {
  memory: WebAssembly.Memory;
  ioBase(): number;
  outBase(): number;
  crc32(ptr: number, len: number, prev: number): number;
  crc32Stride(ptr: number, len: number, prev: number, stride: number): number;
  encodeRecord(
    base: number,
    valueLength: number,
    instanceId: number,
    promiseId: number,
    promiseNodeId: number,
    acceptedId: number,
    acceptedNodeId: number,
    checksum: number,
  ): number;
  decodeRecord(base: number, length: number): number;
}

const PAGE_BYTES = 65536;
/** Largest input copied into WASM memory at once; longer inputs are fed window by window. */
export const WASM_WINDOW_BYTES = 1 << 20;

/** A loaded module plus cached views of its memory (refreshed when memory grows). */
export class WasmCore {
  readonly exports: CrcExports;
  readonly ioBase: number;
  bytes: Uint8Array;
  out: DataView;

  constructor(exports: CrcExports) {
    this.exports = exports;
    this.ioBase = exports.ioBase();
    this.bytes = new Uint8Array(exports.memory.buffer);
    this.out = new DataView(exports.memory.buffer, exports.outBase(), 64);
  }

  /** Makes [ioBase, ioBase + byteLength) addressable; memory only ever grows up to one window. */
  ensure(byteLength: number): void {
    const needed = this.ioBase + byteLength;
    const memory = this.exports.memory;
    if (memory.buffer.byteLength >= needed) return;
    memory.grow(Math.ceil((needed - memory.buffer.byteLength) / PAGE_BYTES));
    this.bytes = new Uint8Array(memory.buffer);
    this.out = new DataView(memory.buffer, this.exports.outBase(), 64);
  }
}

function load(): WasmCore | null {
  if (typeof WebAssembly !== 'object') return null;
  try {
    const module = new WebAssembly.Module(decodeBase64(WASM_BASE64));
    const instance = new WebAssembly.Instance(module, {
      env: {
        abort(): never {
          throw new Error('crc-wasm: WebAssembly abort');
        },
      },
    });
    const core = new WasmCore(instance.exports as unknown as CrcExports);
    core.ensure(WASM_WINDOW_BYTES);
    return core;
  } catch {
    return null;
  }
}

/** The module, or null where WebAssembly cannot be used (callers fall back to the JS twins). */
export const wasm: WasmCore | null = load();

/** True when the WebAssembly backend loaded (false: every call is served by the JS twins). */
export function isWasmLoaded(): boolean {
  return wasm !== null;
}
