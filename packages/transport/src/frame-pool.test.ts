import { describe, expect, it } from 'vitest';
import { FramePool, POISON_BYTE, POOLED_FRAME_MIN_BYTES } from './frame-pool';

const KiB = 1024;

describe('FramePool', () => {
  it('reuses a released buffer for the next frame of about its length, fresh ones otherwise', () => {
    const pool = new FramePool();
    const a = pool.alloc(1000 * KiB);
    expect(a.length).toBe(1000 * KiB);
    pool.lend(a)!.release();
    // A slightly longer batch still fits (capacity is rounded up).
    const b = pool.alloc(1010 * KiB);
    expect(b.buffer).toBe(a.buffer);
    expect(b.length).toBe(1010 * KiB);
    // Taken: the next frame gets a fresh buffer.
    const c = pool.alloc(1000 * KiB);
    expect(c.buffer).not.toBe(a.buffer);
    expect(pool.counters).toEqual({ reused: 1, allocated: 2, released: 1, freeBytes: 0 });
  });

  it('gives a frame shorter than a batch a buffer of exactly its length (it may be kept long)', () => {
    const pool = new FramePool();
    expect(pool.alloc(100 * KiB + 17).buffer.byteLength).toBe(100 * KiB + 17);
    expect(pool.alloc(1000 * KiB + 17).buffer.byteLength).toBe(1024 * KiB);
  });

  it('never hands a large free buffer to a much shorter frame, nor a short one to a longer frame', () => {
    const pool = new FramePool();
    const big = pool.alloc(4096 * KiB);
    pool.lend(big)!.release();
    expect(pool.alloc(100 * KiB).buffer).not.toBe(big.buffer); // would pin 4 MiB for 100 KiB
    expect(pool.alloc(8192 * KiB).buffer).not.toBe(big.buffer); // does not fit
    expect(pool.alloc(4000 * KiB).buffer).toBe(big.buffer);
  });

  it('lends only the long frames it allocated: short frames and other buffers are never reused', () => {
    const pool = new FramePool();
    const short = pool.alloc(POOLED_FRAME_MIN_BYTES - 1);
    expect(pool.lend(short)).toBeUndefined();
    expect(pool.lend(new Uint8Array(POOLED_FRAME_MIN_BYTES * 2))).toBeUndefined();
    expect(pool.counters.allocated).toBe(0);
  });

  it('a second release of one lease throws; the buffer is kept once', () => {
    const pool = new FramePool();
    const a = pool.alloc(200 * KiB);
    const lease = pool.lend(a)!;
    lease.release();
    expect(() => lease.release()).toThrow(/released twice/);
    expect(pool.counters.released).toBe(1);
    expect(pool.counters.freeBytes).toBe(a.buffer.byteLength);
  });

  it('keeps at most maxFreeBytes of released buffers; the rest go to the garbage collector', () => {
    const pool = new FramePool(2 * 1024 * KiB);
    const frames = [1, 2, 3].map(() => pool.alloc(1000 * KiB));
    for (const f of frames) pool.lend(f)!.release();
    expect(pool.counters.released).toBe(3);
    expect(pool.counters.freeBytes).toBe(2 * frames[0]!.buffer.byteLength);
    const none = new FramePool(0);
    const f = none.alloc(1000 * KiB);
    none.lend(f)!.release();
    expect(none.counters.freeBytes).toBe(0);
    expect(none.alloc(1000 * KiB).buffer).not.toBe(f.buffer);
  });

  it('poisons a released frame when asked, so a holder that released too early reads garbage', () => {
    const pool = new FramePool(undefined, true);
    const a = pool.alloc(100 * KiB).fill(7);
    const view = a.subarray(10, 20);
    pool.lend(a)!.release();
    expect([...view]).toEqual(new Array(10).fill(POISON_BYTE));
  });
});
