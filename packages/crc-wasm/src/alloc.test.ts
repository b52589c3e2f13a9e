import { describe, expect, it } from 'vitest';
import { allocBytes, SLAB_MAX_ALLOC_BYTES } from './alloc';

describe('allocBytes', () => {
  it('hands out disjoint zeroed arrays, large ones on their own buffer', () => {
    const arrays = Array.from({ length: 500 }, (_, i) => allocBytes(1 + (i % 300)));
    arrays.forEach((a, i) => a.fill(i & 0xff));
    arrays.forEach((a, i) => expect(a.every((b) => b === (i & 0xff))).toBe(true));
    const big = allocBytes(SLAB_MAX_ALLOC_BYTES + 1);
    expect(big.byteOffset).toBe(0);
    expect(big.buffer.byteLength).toBe(SLAB_MAX_ALLOC_BYTES + 1);
    expect(allocBytes(64).every((b) => b === 0)).toBe(true);
  });
});
