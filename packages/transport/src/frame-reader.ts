// Reassembling frames from a byte stream (the receiving side of a connection): the length prefix
// is checked before anything is buffered, so a peer cannot make us hold more than one maximum
// frame; a long frame from an authenticated peer is assembled in place as its bytes arrive.
//
// Two ways to feed it. `push(data)` takes the buffers a socket's 'data' event hands out (TLS, or
// a runtime whose accepted sockets cannot be read into our own memory): a long frame's bytes are
// then copied once into the frame. `readBuffer()` / `read(n)` let the socket read straight into
// our memory (Node's `onread`): small frames land back to back in a slab, and the rest of a long
// frame lands in the frame's own buffer, so its bytes are never copied in user space (issue 22:
// that copy, with Node's buffer per read, was about a third of a learning node's busy samples in
// a 100 KiB catch-up). Every buffer handed out stays the frame's: the reader never writes to
// memory a frame it returned lies in (slabs only move forward, a finished frame's buffer is let
// go, or given back to the FramePool by whoever took the frame's message).
import { allocUnfilled, FIXED_BYTES, u32 } from './codec';
import { TransportError } from './errors';
import type { FramePool } from './frame-pool';
import { MAX_FRAME_BYTES, RECEIVE_READ_MIN_BYTES, RECEIVE_SLAB_BYTES } from './options';

/**
 * Splits a byte stream into frames. The length prefix is checked against maxFrameBytes before
 * anything is buffered: a peer cannot make us hold more than one maximum frame.
 */
export class FrameReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  /**
   * A frame longer than what has arrived of it, assembled as its bytes arrive: each socket read
   * is copied once, while it is still in the CPU cache, and its buffer is let go at once
   * (issue 10 profile: copying a 1 MiB batch frame out of 16 buffered reads at its end was 5 %
   * of a learning node's CPU, plus the garbage of the reads held meanwhile).
   */
  private partial: { frame: Uint8Array; filled: number } | undefined;
  /** Whether a long frame may be allocated whole before its bytes arrive (see trustPeer). */
  private inPlace = false;
  /** Where socket reads land (readBuffer), and how much of it they filled. */
  private slab: Uint8Array | undefined;
  private slabFilled = 0;
  /** The frame held is known to fit in the rest of the slab: keep reading into the slab. */
  private waitingInSlab = false;
  /** Bytes of that frame, length prefix included (while waitingInSlab). */
  private waitingFrameBytes = 0;
  /** Bytes copied out of the slab or held reads into frames (the in-place path's tests read it). */
  copiedBytes = 0;
  /** The last frame was read in place: read the next one's length prefix alone (readBuffer). */
  private lengthFirst = false;

  /** `pool`: where long frames read in place get their buffers (reused once released). */
  constructor(
    private readonly maxFrameBytes = MAX_FRAME_BYTES,
    private readonly pool?: FramePool,
  ) {}

  /**
   * The peer is authenticated (its hello passed): from now on a frame longer than what arrived
   * of it is assembled in place, its buffer allocated from its length prefix. Before that, bytes
   * are held only as they arrive, so a stranger's 4-byte length prefix cannot make us allocate a
   * maximum frame.
   */
  trustPeer(): void {
    this.inPlace = true;
  }

  /** Bytes held for frames not yet complete (for the memory bound's tests and status). */
  get heldBytes(): number {
    return (this.partial?.frame.length ?? 0) + this.buffered;
  }

  /**
   * Where the next socket read should land (Node's `onread.buffer`): the rest of the frame being
   * read in place, or the free part of the slab. Call read(n) once the read wrote n bytes there,
   * before asking again.
   */
  readBuffer(): Uint8Array {
    const partial = this.partial;
    if (partial !== undefined) return partial.frame.subarray(partial.filled);
    let slab = this.slab;
    if (
      slab === undefined ||
      (slab.length - this.slabFilled < RECEIVE_READ_MIN_BYTES && !this.waitingInSlab)
    ) {
      // The old slab stays with the frames cut from it (and any bytes still held, copied out
      // when their frame completes); it is never written again.
      slab = allocUnfilled(RECEIVE_SLAB_BYTES);
      this.slab = slab;
      this.slabFilled = 0;
    }
    // After a frame read in place the next one is likely long too: read its length prefix alone,
    // so that its body lands in its own buffer, not in the slab to be copied out. A short frame
    // there (a ProposerSendSuccess between two 100 KiB Accepts, written with the next one) is read
    // to its end and the next length prefix only, for the same reason (issue 22: reading on to
    // the slab's end copied up to 60 KiB of each next Accept out of the slab).
    let end = slab.length;
    if (this.lengthFirst)
      end =
        this.buffered < 4
          ? this.slabFilled + 4 - this.buffered
          : this.waitingInSlab
            ? Math.min(slab.length, this.slabFilled + this.waitingFrameBytes - this.buffered + 4)
            : slab.length;
    return slab.subarray(this.slabFilled, end);
  }

  /**
   * A socket read wrote `n` bytes at the start of the last readBuffer(); returns the whole frames
   * now available and, if the stream turned bad, the error (as push).
   */
  read(n: number): { frames: Uint8Array[]; error?: TransportError } {
    const partial = this.partial;
    if (partial !== undefined) {
      partial.filled += n;
      if (partial.filled < partial.frame.length) return { frames: [] };
      this.partial = undefined;
      this.lengthFirst = true;
      return { frames: [partial.frame] };
    }
    const slab = this.slab!;
    const bytes = slab.subarray(this.slabFilled, this.slabFilled + n);
    this.slabFilled += n;
    return this.push(bytes);
  }

  /**
   * Feeds bytes; returns the whole frames now available (views, each with its length prefix)
   * and, if the stream turned bad after them, the error: the caller closes the connection.
   */
  push(data: Uint8Array): { frames: Uint8Array[]; error?: TransportError } {
    // A plain Uint8Array view of a socket's Buffer: the frames and fields cut from it are then
    // plain views too, and the receive path runs ~15 % faster than with Buffer.subarray.
    let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const frames: Uint8Array[] = [];
    const partial = this.partial;
    if (partial !== undefined) {
      const k = Math.min(bytes.length, partial.frame.length - partial.filled);
      partial.frame.set(bytes.subarray(0, k), partial.filled);
      partial.filled += k;
      if (partial.filled < partial.frame.length) return { frames };
      this.partial = undefined;
      frames.push(partial.frame);
      bytes = bytes.subarray(k);
      if (bytes.length === 0) return { frames };
    }
    this.append(bytes);
    this.waitingInSlab = false;
    for (;;) {
      if (this.buffered < 4) break;
      const length = this.peekLength();
      if (length + 4 > this.maxFrameBytes || length < FIXED_BYTES + 4) {
        this.chunks = [];
        this.buffered = 0;
        const code = length < FIXED_BYTES + 4 ? 'E_TRUNCATED' : 'E_FRAME_TOO_LARGE';
        return {
          frames,
          error: new TransportError(code, `frame length ${length + 4} is out of range`),
        };
      }
      if (this.buffered < length + 4) {
        if (this.fitsInSlab(length + 4)) {
          this.waitingInSlab = true;
          this.waitingFrameBytes = length + 4;
          break;
        }
        if (!this.inPlace) break;
        // Checked against maxFrameBytes above: a peer cannot make us hold more than one frame.
        const frame =
          this.pool !== undefined ? this.pool.alloc(length + 4) : allocUnfilled(length + 4);
        const filled = this.buffered;
        this.copyOut(filled, true, frame);
        this.partial = { frame, filled };
        break;
      }
      frames.push(this.take(length + 4));
      this.lengthFirst = false;
    }
    return { frames };
  }

  /** Holds bytes; a read that continues the last one in the same slab extends its view. */
  private append(bytes: Uint8Array): void {
    this.buffered += bytes.length;
    const last = this.chunks[this.chunks.length - 1];
    if (
      last !== undefined &&
      last.buffer === bytes.buffer &&
      last.byteOffset + last.length === bytes.byteOffset
    ) {
      this.chunks[this.chunks.length - 1] = new Uint8Array(
        last.buffer,
        last.byteOffset,
        last.length + bytes.length,
      );
      return;
    }
    this.chunks.push(bytes);
  }

  /** The bytes held are one view into the slab, and a frame of `frameBytes` from them fits it. */
  private fitsInSlab(frameBytes: number): boolean {
    const slab = this.slab;
    if (slab === undefined || this.chunks.length !== 1) return false;
    const held = this.chunks[0]!;
    return (
      held.buffer === slab.buffer && held.byteOffset - slab.byteOffset + frameBytes <= slab.length
    );
  }

  private peekLength(): number {
    const first = this.chunks[0]!;
    return u32(first.length >= 4 ? first : this.copyOut(4, false), 0);
  }

  private take(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length >= n) {
      // The common case: the frame lies in one received chunk: a view, no copy.
      const frame = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return frame;
    }
    return this.copyOut(n, true);
  }

  private copyOut(n: number, consume: boolean, out: Uint8Array = allocUnfilled(n)): Uint8Array {
    let at = 0;
    let i = 0;
    while (at < n) {
      const c = this.chunks[i]!;
      const k = Math.min(c.length, n - at);
      out.set(c.subarray(0, k), at);
      at += k;
      if (consume) {
        if (k === c.length) {
          this.chunks.shift();
        } else {
          this.chunks[0] = c.subarray(k);
        }
      } else {
        i++;
      }
    }
    if (consume) this.buffered -= n;
    this.copiedBytes += n;
    return out;
  }
}
