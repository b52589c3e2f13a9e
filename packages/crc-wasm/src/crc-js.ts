// JS twin of the WASM CRC: the reference the WASM is tested against and the fallback where
// WebAssembly is unavailable. Deliberately the textbook byte-at-a-time table loop.

const POLY = 0xedb88320;

/** The reflected CRC-32 (IEEE 802.3) table, as zlib's. */
export const CRC_TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    table[i] = c >>> 0;
  }
  return table;
})();

/** CRC-32 of `data` continuing from `prev`, sampling every `stride`-th byte (1: every byte). */
export function crc32Js(data: Uint8Array, prev = 0, opts?: { stride?: number }): number {
  const stride = checkStride(opts?.stride);
  const table = CRC_TABLE;
  let crc = ~prev;
  for (let i = 0; i < data.length; i += stride) {
    crc = (crc >>> 8) ^ table[(crc ^ data[i]!) & 0xff]!;
  }
  return ~crc >>> 0;
}

/** Validates a stride option; shared by every backend. */
export function checkStride(stride: number | undefined): number {
  if (stride === undefined) return 1;
  if (!Number.isInteger(stride) || stride < 1 || stride > 0x7fffffff) {
    throw new RangeError(`crc32: stride must be a positive integer, got ${String(stride)}`);
  }
  return stride;
}
