// What the sender knows about one peer it streams to (etcd raft's tracker/progress.go, for the
// seed's LearnerSender, which serves one peer at a time with one window):
//
//   idle ──prepare──► prepared ──confirm──► sending ──(done | ack timeout | read failed)──► idle
//    ▲                  │ ▲                    │
//    └─(prepare timeout │ └──(asks again: re-prepare from its new begin)───────┘
//       or declined)────┘
//
// Invariants (checked by assertInvariants in tests and after every transition in sending):
// - ackedInstanceId <= nextInstanceId: nothing is acked that was not sent;
// - nextInstanceId - ackedInstanceId <= ackLeadInstances + batchMaxInstances (a batch may start
//   inside the window and end past it only by less than one batch) — enforced by the sender;
// - inflightBytes is the sum of the bytes of the batches sent past ackedInstanceId, and is what
//   this peer holds of the node-wide SenderBudget.
import type { AcceptorRecord } from '@tspaxos/crc-wasm';
import { assert } from '@tspaxos/core';
import { RateWindow } from './rate';

export type ProgressPhase = 'idle' | 'prepared' | 'sending';

interface InflightBatch {
  /** The first instance after the batch: an ack at or past it frees the batch. */
  endInstanceId: number;
  bytes: number;
}

export class Progress {
  phase: ProgressPhase = 'idle';
  /** Where the current stream began: the asker's now instance id when it asked. */
  beginInstanceId = 0;
  /** The next instance to send. */
  nextInstanceId = 0;
  /** The peer's now instance id as of its last ack (or the begin). */
  ackedInstanceId = 0;
  /** This peer's window in instances; cut on its ack timeouts only (PhxPaxos CutAckLead). */
  ackLeadInstances: number;
  /** This peer's window in bytes; cut with ackLeadInstances. */
  ackLeadBytes: number;
  /** Most instances the next batch may hold: starts small, doubles per batch (slow start). */
  batchLimit = 1;
  /** Bytes of values sent past ackedInstanceId (held from the node's SenderBudget). */
  inflightBytes = 0;
  /** Chain checksum of the instance before nextInstanceId (the next batch's lastChecksum). */
  lastChecksum = 0;
  /** When the phase last changed (the prepare timeout runs from here). */
  phaseAtMs = 0;
  /** When the window last moved (an ack, or the first batch sent into an empty window). */
  lastAckAtMs = 0;
  /** Records read from the log and not sent yet (bounded by one batch plus one record). */
  readAhead: AcceptorRecord[] = [];
  /** The open read of the log from after readAhead, up to `readEnd`. */
  reader: Iterator<AcceptorRecord> | undefined;
  readEnd = 0;
  /** Bytes and instances sent, over the last few seconds (status: bytesPerSec). */
  readonly sentRate: RateWindow;
  private inflight: InflightBatch[] = [];

  constructor(
    readonly nodeId: number,
    readonly defaultLeadInstances: number,
    readonly defaultLeadBytes: number,
    rateWindowMs: number,
  ) {
    this.ackLeadInstances = defaultLeadInstances;
    this.ackLeadBytes = defaultLeadBytes;
    this.sentRate = new RateWindow(rateWindowMs);
  }

  get inflightInstances(): number {
    return this.nextInstanceId - this.ackedInstanceId;
  }

  get isActive(): boolean {
    return this.phase !== 'idle';
  }

  /** Reserves this peer's stream from `beginInstanceId`; returns the budget bytes it freed. */
  becomePrepared(beginInstanceId: number, nowMs: number): number {
    const freed = this.dropInflight();
    this.phase = 'prepared';
    this.beginInstanceId = beginInstanceId;
    this.nextInstanceId = beginInstanceId;
    this.ackedInstanceId = beginInstanceId;
    this.phaseAtMs = nowMs;
    this.lastAckAtMs = nowMs;
    return freed;
  }

  becomeSending(lastChecksum: number, nowMs: number, firstBatchInstances: number): void {
    assert(this.phase === 'prepared', `confirm of a ${this.phase} progress`);
    this.phase = 'sending';
    this.batchLimit = firstBatchInstances;
    this.lastChecksum = lastChecksum;
    this.phaseAtMs = nowMs;
    this.lastAckAtMs = nowMs;
  }

  /** Ends the stream; returns the budget bytes it freed. */
  becomeIdle(): number {
    const freed = this.dropInflight();
    this.phase = 'idle';
    return freed;
  }

  /** A batch of `count` instances and `bytes` bytes left for the peer. */
  sent(count: number, bytes: number, lastChecksum: number, nowMs: number): void {
    assert(this.phase === 'sending' && count > 0, 'sent outside sending');
    if (this.inflight.length === 0) this.lastAckAtMs = nowMs; // the ack timeout runs from now
    this.nextInstanceId += count;
    this.batchLimit = Math.min(this.batchLimit * 2, 1 << 30);
    this.inflight.push({ endInstanceId: this.nextInstanceId, bytes });
    this.inflightBytes += bytes;
    this.lastChecksum = lastChecksum;
    this.sentRate.add(nowMs, count, bytes);
  }

  /**
   * The peer's now instance id moved to `instanceId` (<= nextInstanceId): frees the batches it
   * covers; returns the bytes freed.
   */
  acked(instanceId: number, nowMs: number): number {
    assert(instanceId <= this.nextInstanceId, 'ack past what was sent');
    if (instanceId <= this.ackedInstanceId) return 0;
    this.ackedInstanceId = instanceId;
    this.lastAckAtMs = nowMs;
    let freed = 0;
    while (this.inflight.length > 0 && this.inflight[0]!.endInstanceId <= instanceId) {
      freed += this.inflight.shift()!.bytes;
    }
    this.inflightBytes -= freed;
    return freed;
  }

  /**
   * Sends again from `instanceId`: the peer reported a gap (a NACK), or it is ahead of what we
   * sent. Every batch in flight is given up; returns the bytes freed.
   */
  rewind(instanceId: number, lastChecksum: number, nowMs: number): number {
    const freed = this.dropInflight();
    this.nextInstanceId = instanceId;
    this.ackedInstanceId = instanceId;
    this.lastChecksum = lastChecksum;
    this.lastAckAtMs = nowMs;
    return freed;
  }

  /**
   * PhxPaxos CutAckLead shrinks the window by the receiver's ack lead (4 of 21) while more than
   * twice that remains; with windows of thousands that would not cut at all, so this halves the
   * window, down to `minInstances` and one batch of bytes.
   */
  cutLead(minInstances: number, minBytes: number): void {
    this.ackLeadInstances = Math.max(minInstances, Math.floor(this.ackLeadInstances / 2));
    this.ackLeadBytes = Math.max(minBytes, Math.floor(this.ackLeadBytes / 2));
  }

  /** After a stream that ran to its end, the window is whole again (PhxPaxos resets it too). */
  resetLead(): void {
    this.ackLeadInstances = this.defaultLeadInstances;
    this.ackLeadBytes = this.defaultLeadBytes;
  }

  /** Throws on a broken invariant (tests call it after every step). */
  assertInvariants(): void {
    if (this.phase !== 'sending') return;
    assert(this.ackedInstanceId <= this.nextInstanceId, 'acked past next');
    let bytes = 0;
    let end = this.ackedInstanceId;
    for (const b of this.inflight) {
      assert(b.endInstanceId > end, 'in-flight batches out of order');
      end = b.endInstanceId;
      bytes += b.bytes;
    }
    assert(end === this.nextInstanceId || this.inflight.length === 0, 'in-flight end != next');
    assert(bytes === this.inflightBytes, 'inflightBytes is not the sum of the batches');
  }

  private dropInflight(): number {
    const freed = this.inflightBytes;
    this.inflight = [];
    this.inflightBytes = 0;
    this.readAhead = [];
    this.reader = undefined;
    this.readEnd = 0;
    return freed;
  }
}
