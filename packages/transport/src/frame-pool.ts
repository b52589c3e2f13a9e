// Receive buffers lent to the node and reused once it gives them back (issue 22): a catch-up of
// 100 KiB values arrives as ~1 MiB batch frames, each read in place into a buffer of its own
// (frame-reader.ts). A fresh buffer per frame cost the learning node a fifth of its CPU per value
// (its page faults, and V8's major GCs marking the external memory), and reusing frame buffers
// took a quiet 100 KiB catch-up from ~290 to ~370 MB/s here (BENCHMARKS.md).
//
// Reuse is safe only when nothing still holds a view of the frame: the transport cannot know
// that, so a frame is reused only when whoever took its message calls `release()` (the paxos
// learner does, once every value of a batch is stored and executed by state machines that copy
// what they keep). A frame never released is simply garbage collected, as before.

/** A received frame whose buffer may be reused once its message is done with. */
export interface LentFrame {
  /**
   * Nothing holds a view of this frame's message any more (its values included): the buffer may
   * be reused for a later frame. At most once; a second call throws (a bug in the caller).
   */
  release(): void;
}

/** What the pool did (TcpCounters.receivePool). */
export interface FramePoolCounters {
  /** Long frames read into a buffer a released frame gave back. */
  reused: number;
  /** Long frames read into a fresh buffer. */
  allocated: number;
  /** Frames released (their buffer kept for reuse, or let go when the pool was full). */
  released: number;
  /** Buffer bytes kept for reuse now. */
  freeBytes: number;
}

/** Frames shorter than this are never pooled (they are read into the shared slab anyway). */
export const POOLED_FRAME_MIN_BYTES = 64 * 1024;
/**
 * Fresh buffers of batch-sized frames are rounded up to this, so a batch a little longer than the
 * last still fits; shorter frames (a 100 KiB Accept, whose value the log and acceptor may keep)
 * get exactly their length, as before the pool.
 */
const CAPACITY_STEP_BYTES = 64 * 1024;
/** Frames from this length on are rounded up (≤ 1/8 more memory). */
const ROUNDED_FRAME_MIN_BYTES = 8 * CAPACITY_STEP_BYTES;
/** A free buffer serves a frame only if it wastes at most this (plus an eighth of the frame). */
const MAX_SLACK_BYTES = 256 * 1024;
/** Default bound on the buffer bytes kept for reuse (ours: ~16 catch-up batches of 1 MiB). */
export const RECEIVE_POOL_BYTES = 16 * 1024 * 1024;

/** 0xA5 repeated: what a released frame is overwritten with when poisoning (tests). */
export const POISON_BYTE = 0xa5;

export class FramePool {
  readonly counters: FramePoolCounters = { reused: 0, allocated: 0, released: 0, freeBytes: 0 };
  private free: ArrayBuffer[] = [];
  /** The buffers this pool handed out: only these are lent (a slab or another buffer never is). */
  private readonly ours = new WeakSet<ArrayBuffer>();

  /**
   * `maxFreeBytes`: most buffer bytes kept for reuse (0: never reuse). `poison`: overwrite a
   * released frame with POISON_BYTE, so a holder that released too early reads garbage in tests.
   */
  constructor(
    private readonly maxFreeBytes = RECEIVE_POOL_BYTES,
    private readonly poison = false,
  ) {}

  /**
   * A buffer for a long frame of `n` bytes that the reader fills entirely: a free one that fits
   * without wasting much, or a fresh one; its view is exactly `n` bytes.
   */
  alloc(n: number): Uint8Array {
    if (n >= POOLED_FRAME_MIN_BYTES) {
      const limit = n + (n >> 3) + MAX_SLACK_BYTES;
      let best = -1;
      for (let i = 0; i < this.free.length; i++) {
        const size = this.free[i]!.byteLength;
        if (size >= n && size <= limit && (best < 0 || size < this.free[best]!.byteLength))
          best = i;
      }
      if (best >= 0) {
        const buffer = this.free[best]!;
        this.free[best] = this.free[this.free.length - 1]!;
        this.free.pop();
        this.counters.freeBytes -= buffer.byteLength;
        this.counters.reused++;
        return new Uint8Array(buffer, 0, n);
      }
    }
    const capacity =
      n >= ROUNDED_FRAME_MIN_BYTES ? Math.ceil(n / CAPACITY_STEP_BYTES) * CAPACITY_STEP_BYTES : n;
    // Unzeroed: the reader overwrites the n bytes it hands out, and nothing reads past them.
    const b = Buffer.allocUnsafeSlow(capacity);
    const buffer = b.buffer as ArrayBuffer;
    if (n >= POOLED_FRAME_MIN_BYTES) {
      this.ours.add(buffer);
      this.counters.allocated++;
    }
    return new Uint8Array(buffer, b.byteOffset, n);
  }

  /** The lease of a frame this pool allocated; undefined for any other frame (never reused). */
  lend(frame: Uint8Array): LentFrame | undefined {
    // Called for every frame received: a short one (most of them) is never ours.
    if (frame.length < POOLED_FRAME_MIN_BYTES) return undefined;
    const buffer = frame.buffer as ArrayBuffer;
    if (!this.ours.has(buffer)) return undefined;
    let released = false;
    return {
      release: () => {
        if (released) throw new Error('a lent frame was released twice');
        released = true;
        this.counters.released++;
        if (this.poison) new Uint8Array(buffer).fill(POISON_BYTE);
        if (this.counters.freeBytes + buffer.byteLength > this.maxFreeBytes) return;
        this.free.push(buffer);
        this.counters.freeBytes += buffer.byteLength;
      },
    };
  }
}
