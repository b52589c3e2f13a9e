import type { LentFrame } from './frame-pool';
import type { Message } from './messages';

/**
 * Receives a message; `from` is the authenticated sender (the connection's), not a field of the
 * body. `lent`: the message lies in a receive buffer the network would reuse once released
 * (frame-pool.ts); a handler that never releases it leaves the buffer to the garbage collector.
 */
export type MessageHandler = (
  from: number,
  group: number,
  message: Message,
  lent?: LentFrame,
) => void;

/** The port the consensus cores send and receive through (style.md 1). */
export interface Network {
  /** Best effort: queued, or dropped and counted; never throws for a down or unknown peer. */
  send(to: number, group: number, message: Message): void;
  /** One handler (MessageHandler). */
  onMessage(handler: MessageHandler): void;
  close(): Promise<void>;
  /**
   * False when this node knows it cannot reach the peer now (the last connection to it failed
   * or was cut and none has opened since); true otherwise, including before anything was sent.
   * A peer that holds a connection open without reading (SIGSTOP, a black hole) stays true.
   * Optional: a network without it counts every peer reachable.
   */
  reachable?(to: number): boolean;
  /**
   * Largest frame this network sends (default MAX_FRAME_BYTES): a node checks at construction
   * that its largest value, packed and framed, fits (maxPaxosValueBytes).
   */
  readonly maxFrameBytes?: number;
}

/** Counts of everything dropped or rejected, by reason (for metrics). */
export type DropCounters = Record<string, number>;

export function countDrop(counters: DropCounters, reason: string, n = 1): void {
  counters[reason] = (counters[reason] ?? 0) + n;
}
