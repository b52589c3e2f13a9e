// Small byte arrays from a shared slab. `new Uint8Array(156)` costs ~600 ns on Node 20 (a fresh
// ArrayBuffer each time) while a subarray of a slab costs ~35 ns: the same trade Node's
// Buffer.allocUnsafe pool makes. A live small array keeps its slab (SLAB_BYTES) reachable.

/** Arrays up to this size are carved from the slab; larger ones get their own buffer. */
export const SLAB_MAX_ALLOC_BYTES = 2048;
const SLAB_BYTES = 16 * 1024;

let slab = new Uint8Array(SLAB_BYTES);
let used = 0;

/** A zero-filled byte array of `length` bytes (pooled when small). */
export function allocBytes(length: number): Uint8Array {
  if (length > SLAB_MAX_ALLOC_BYTES) return new Uint8Array(length);
  if (used + length > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    used = 0;
  }
  const out = slab.subarray(used, used + length);
  used += (length + 7) & ~7; // keep 8-byte alignment for DataView-friendly offsets
  return out;
}
