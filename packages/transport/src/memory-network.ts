// A network for the deterministic simulator: sans-IO, no timers, no wall clock, no Math.random.
// The simulator owns virtual time; it asks when the next delivery is due and delivers it. Every
// frame goes through the real codec, so the trace is bytes and a schema bug shows here too.
// Per-link faults (drop, delay, duplicate, reorder, bit flips on the wire), partitions and
// one-way cuts can change while running. A corrupted frame goes through the real decoder, which
// must reject it (the frame has a CRC): the drop is counted under the decoder's code.
import { crc32, optionsProblem, rangeProblem } from '@tspaxos/crc-wasm';
import { decodeFrame, encodeFrameBytes } from './codec';
import { TransportError } from './errors';
import {
  LINK_DELAY_RANGE,
  LINK_RATE_RANGE,
  MAX_FRAME_BYTES,
  MAX_FRAME_BYTES_CEILING,
  MIN_FRAME_BYTES,
} from './options';
import type { Message } from './messages';
import type { RandomSource } from '@tspaxos/core';
import { countDrop, type DropCounters, type Network } from './ports';

export interface LinkConfig {
  /** Probability a frame is lost. */
  dropRate?: number;
  /** Delivery delay, uniform in [min, max] ms. */
  delayMs?: [number, number];
  /** Probability a frame is delivered twice. */
  duplicateRate?: number;
  /** Probability a frame gets an extra random delay of up to 4× the max (so it overtakes). */
  reorderRate?: number;
  /** Probability a frame has one bit flipped on the wire. */
  corruptRate?: number;
}

export interface Delivery {
  atMs: number;
  from: number;
  to: number;
  group: number;
  message: Message;
  frame: Uint8Array;
}

interface InFlight {
  atMs: number;
  seq: number;
  from: number;
  to: number;
  frame: Uint8Array;
}

type Handler = (from: number, group: number, message: Message) => void;

/** Every rate a probability, every delay a pair min ≤ max of non-negative ms (E_BAD_ARGUMENT). */
function checkLink(link: LinkConfig): void {
  const { delayMs, ...rates } = link;
  const problem = optionsProblem('MemoryNetwork link', rates, {
    dropRate: LINK_RATE_RANGE,
    duplicateRate: LINK_RATE_RANGE,
    reorderRate: LINK_RATE_RANGE,
    corruptRate: LINK_RATE_RANGE,
  });
  if (problem !== undefined) throw new TransportError('E_BAD_ARGUMENT', problem);
  if (delayMs === undefined) return;
  const ok =
    Array.isArray(delayMs) &&
    delayMs.length === 2 &&
    rangeProblem(delayMs[0], LINK_DELAY_RANGE) === undefined &&
    rangeProblem(delayMs[1], LINK_DELAY_RANGE) === undefined &&
    delayMs[0] <= delayMs[1];
  if (!ok) {
    throw new TransportError(
      'E_BAD_ARGUMENT',
      `MemoryNetwork link option delayMs must be [min, max] with 0 ≤ min ≤ max ms, got ${JSON.stringify(delayMs)}`,
    );
  }
}

export class MemoryNetwork {
  readonly drops: DropCounters = {};
  private readonly rng: RandomSource;
  private readonly handlers = new Map<number, Handler>();
  private readonly links = new Map<string, LinkConfig>();
  private defaultLink: Required<LinkConfig> = {
    dropRate: 0,
    delayMs: [1, 1],
    duplicateRate: 0,
    reorderRate: 0,
    corruptRate: 0,
  };
  private partitionOf: Map<number, number> | undefined;
  /** Directed cuts "from>to" (one-way partitions). */
  private readonly oneWay = new Set<string>();
  /** Frames that had a bit flipped (each must show up as a decoder drop). */
  corrupted = 0;
  private inFlight: InFlight[] = [];
  private readonly lastAtMs = new Map<string, number>();
  private seq = 0;
  private nowMs = 0;
  private traceCrc = 0;
  private traceCount = 0;
  private readonly keepTrace: boolean;
  private readonly traceLines: string[] = [];

  private readonly maxFrameBytes: number;

  /** maxFrameBytes: as TcpNetwork's (default MAX_FRAME_BYTES); see frameBytesForValues(). */
  constructor(opts: { rng: RandomSource; keepTrace?: boolean; maxFrameBytes?: number }) {
    if (typeof opts?.rng?.next !== 'function')
      throw new TransportError('E_BAD_ARGUMENT', 'MemoryNetwork option rng must be a RandomSource');
    this.rng = opts.rng;
    this.maxFrameBytes = opts.maxFrameBytes ?? MAX_FRAME_BYTES;
    const frameProblem = rangeProblem(this.maxFrameBytes, {
      min: MIN_FRAME_BYTES,
      max: MAX_FRAME_BYTES_CEILING,
    });
    if (frameProblem !== undefined)
      throw new TransportError(
        'E_BAD_ARGUMENT',
        `MemoryNetwork option maxFrameBytes ${frameProblem}`,
      );
    this.keepTrace = opts.keepTrace ?? false;
  }

  /** The Network a node uses. */
  endpoint(nodeId: number): Network {
    return {
      send: (to, group, message) => this.send(nodeId, to, group, message),
      onMessage: (handler) => {
        this.handlers.set(nodeId, handler);
      },
      close: async () => {
        this.handlers.delete(nodeId);
      },
      maxFrameBytes: this.maxFrameBytes,
    };
  }

  setDefaultLink(link: LinkConfig): void {
    checkLink(link);
    this.defaultLink = { ...this.defaultLink, ...link };
  }

  setLink(from: number, to: number, link: LinkConfig): void {
    checkLink(link);
    this.links.set(`${from}>${to}`, link);
  }

  clearLinks(): void {
    this.links.clear();
  }

  /** Splits the nodes into sides; frames between sides are dropped. Nodes not named are isolated. */
  partition(sides: number[][]): void {
    this.partitionOf = new Map();
    sides.forEach((side, i) => side.forEach((id) => this.partitionOf!.set(id, i)));
  }

  /** Drops every frame from `from` to `to` (not the other way) until heal(). */
  cutOneWay(from: number, to: number): void {
    this.oneWay.add(`${from}>${to}`);
  }

  /** Ends partitions and one-way cuts. */
  heal(): void {
    this.partitionOf = undefined;
    this.oneWay.clear();
  }

  /** When the next frame is due, or undefined when none is in flight. */
  nextDeliveryAt(): number | undefined {
    return this.inFlight[0]?.atMs;
  }

  get inFlightCount(): number {
    return this.inFlight.length;
  }

  /** Delivers the next due frame (if any is due at nowMs) to its node's handler. */
  deliverNext(nowMs: number): Delivery | undefined {
    this.nowMs = Math.max(this.nowMs, nowMs);
    const next = this.inFlight[0];
    if (next === undefined || next.atMs > this.nowMs) return undefined;
    this.inFlight.shift();
    if (this.cut(next.from, next.to)) {
      countDrop(this.drops, 'partition');
      return undefined;
    }
    const decoded = decodeFrame(next.frame, this.maxFrameBytes);
    if (!decoded.ok) {
      countDrop(this.drops, decoded.error.code);
      return undefined;
    }
    const handler = this.handlers.get(next.to);
    if (handler === undefined) {
      countDrop(this.drops, 'no-handler');
      return undefined;
    }
    this.traceCrc = crc32(next.frame, crc32(new Uint8Array([next.from, next.to]), this.traceCrc));
    this.traceCount++;
    if (this.keepTrace)
      this.traceLines.push(`${next.atMs} ${next.from}>${next.to} ${hex(next.frame)}`);
    const { group, message } = decoded.value;
    handler(next.from, group, message);
    return { atMs: next.atMs, from: next.from, to: next.to, group, message, frame: next.frame };
  }

  /** Delivers every frame due at nowMs; returns how many. */
  deliverDue(nowMs: number): number {
    let n = 0;
    while (this.inFlight[0] !== undefined && this.inFlight[0].atMs <= Math.max(this.nowMs, nowMs)) {
      if (this.deliverNext(nowMs) !== undefined) n++;
    }
    return n;
  }

  /** A digest of every delivered frame and its link, in order: equal digests, equal traces. */
  traceDigest(): { frames: number; crc: number } {
    return { frames: this.traceCount, crc: this.traceCrc };
  }

  /** Every delivered frame as "time from>to hex" (only with keepTrace). */
  trace(): readonly string[] {
    return this.traceLines;
  }

  private cut(from: number, to: number): boolean {
    if (this.oneWay.size > 0 && this.oneWay.has(`${from}>${to}`)) return true;
    const p = this.partitionOf;
    if (p === undefined) return false;
    return p.get(from) !== p.get(to) || !p.has(from);
  }

  private send(from: number, to: number, group: number, message: Message): void {
    let frame: Uint8Array;
    try {
      frame = encodeFrameBytes(group, message, this.maxFrameBytes);
    } catch (error) {
      // Too large to frame: a counted drop, as TcpNetwork does; any other error is a bug.
      if (!(error instanceof TransportError && error.code === 'E_FRAME_TOO_LARGE')) throw error;
      countDrop(this.drops, 'E_FRAME_TOO_LARGE');
      return;
    }
    if (this.cut(from, to)) {
      countDrop(this.drops, 'partition');
      return;
    }
    const link = { ...this.defaultLink, ...this.links.get(`${from}>${to}`) };
    if (link.dropRate > 0 && this.rng.next() < link.dropRate) {
      countDrop(this.drops, 'link-drop');
      return;
    }
    const copies = link.duplicateRate > 0 && this.rng.next() < link.duplicateRate ? 2 : 1;
    const key = `${from}>${to}`;
    for (let i = 0; i < copies; i++) {
      const [min, max] = link.delayMs;
      let atMs = this.nowMs + min + this.rng.int(Math.max(1, max - min + 1));
      if (link.reorderRate > 0 && this.rng.next() < link.reorderRate) {
        atMs += this.rng.int(4 * max + 1); // may overtake and be overtaken
      } else {
        // Like a TCP connection, a link keeps its order unless told to reorder.
        atMs = Math.max(atMs, this.lastAtMs.get(key) ?? 0);
        this.lastAtMs.set(key, atMs);
      }
      let bytes = frame;
      if (link.corruptRate > 0 && this.rng.next() < link.corruptRate) {
        bytes = frame.slice();
        const bit = this.rng.int(bytes.length * 8);
        bytes[bit >> 3]! ^= 1 << (bit & 7);
        this.corrupted++;
      }
      this.insert({ atMs, seq: this.seq++, from, to, frame: bytes });
    }
  }

  /** Keeps inFlight sorted by (atMs, seq). */
  private insert(entry: InFlight): void {
    const list = this.inFlight;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const m = list[mid]!;
      if (m.atMs < entry.atMs || (m.atMs === entry.atMs && m.seq < entry.seq)) lo = mid + 1;
      else hi = mid;
    }
    list.splice(lo, 0, entry);
  }

  /** The simulator tells the network the time before nodes send (sends are timed from it). */
  setTime(nowMs: number): void {
    this.nowMs = Math.max(this.nowMs, nowMs);
  }
}

function hex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}
