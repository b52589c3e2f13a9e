// LearnerSender (seed: LearnerSender) as an explicit per-peer progress object, in the manner of
// etcd raft's tracker/progress.go: PhxPaxos runs it as a thread that polls a lock every 20 ms;
// here it is driven by prepare/confirm/ack messages and by the deadline it reports.
//
//   idle ──prepare──► prepared ──confirm──► sending ──(done | caught up | ack timeout)──► idle
//                        └──(prepare timeout: never confirmed)──► idle
//
// Invariants: in `sending`, ackInstanceId <= nextInstanceId (an ack beyond it ends the stream:
// the receiver learned those instances elsewhere) and at most ackLead + 1 instances are sent
// past the last ack.
import type { AcceptorRecord } from '@tspaxos/crc-wasm';
import type { LearnerOptions } from './options';

export type SenderPhase = 'idle' | 'prepared' | 'sending';
export type SenderEndReason =
  'done' | 'caught-up' | 'ack-timeout' | 'prepare-timeout' | 'read-failed';

/** What the sender needs from its host; implemented by the Learner. */
export interface SenderPort {
  /** The first instance this node has not learned: the stream's end. */
  nowInstanceId(): number;
  /** The stored record of a learned instance; undefined if it is gone (compacted). Throws on corruption. */
  readRecord(instanceId: number): AcceptorRecord | undefined;
  /** Sends one learned value (SendLearnValue with NeedAck). */
  sendValue(to: number, record: AcceptorRecord, lastChecksum: number): void;
  /** Reports the end of a stream (for logs and counters). */
  ended(to: number, reason: SenderEndReason, nextInstanceId: number, error?: unknown): void;
}

export interface SenderCounters {
  prepared: number;
  confirmed: number;
  valuesSent: number;
  acks: number;
  ackTimeouts: number;
  prepareTimeouts: number;
  rateLimited: number;
}

export class LearnerSender {
  phase: SenderPhase = 'idle';
  /** The peer being served (0 when idle). */
  toNodeId = 0;
  /** Where the stream started: the asker's now instance id. */
  beginInstanceId = 0;
  /** Next instance to send. */
  nextInstanceId = 0;
  /** The receiver's now instance id as of its last ack. */
  ackInstanceId = 0;
  /** Current window; shrinks on ack timeout (PhxPaxos CutAckLead), reset after a full stream. */
  ackLead: number;
  readonly counters: SenderCounters = {
    prepared: 0,
    confirmed: 0,
    valuesSent: 0,
    acks: 0,
    ackTimeouts: 0,
    prepareTimeouts: 0,
    rateLimited: 0,
  };

  private phaseAtMs = 0;
  private lastAckAtMs = 0;
  private lastChecksum = 0;
  private tokens = 0;
  private tokensAtMs = 0;

  constructor(
    private readonly options: LearnerOptions,
    private readonly port: SenderPort,
  ) {
    this.ackLead = options.senderAckLead;
  }

  /** Reserves the sender for `to` (seed: LearnerSender::Prepare). False when it is busy. */
  prepare(beginInstanceId: number, to: number, nowMs: number): boolean {
    this.expire(nowMs);
    if (this.phase !== 'idle') return false;
    this.phase = 'prepared';
    this.toNodeId = to;
    this.beginInstanceId = beginInstanceId;
    this.nextInstanceId = beginInstanceId;
    this.ackInstanceId = beginInstanceId;
    this.phaseAtMs = nowMs;
    this.lastAckAtMs = nowMs;
    this.counters.prepared++;
    return true;
  }

  /** The asker chose us (seed: LearnerSender::Comfirm); starts the stream. */
  confirm(beginInstanceId: number, from: number, nowMs: number): boolean {
    this.expire(nowMs);
    if (
      this.phase !== 'prepared' ||
      this.beginInstanceId !== beginInstanceId ||
      this.toNodeId !== from
    ) {
      return false;
    }
    this.phase = 'sending';
    this.phaseAtMs = nowMs;
    this.lastAckAtMs = nowMs;
    this.lastChecksum = this.previousChecksum(beginInstanceId);
    this.tokens = this.bucketCapacity();
    this.tokensAtMs = nowMs;
    this.counters.confirmed++;
    this.pump(nowMs);
    return true;
  }

  /** The receiver reports its now instance id (seed: LearnerSender::Ack). */
  ack(ackInstanceId: number, from: number, nowMs: number): void {
    if (this.phase !== 'sending' || from !== this.toNodeId) return;
    if (ackInstanceId <= this.ackInstanceId) return;
    this.counters.acks++;
    this.ackInstanceId = ackInstanceId;
    this.lastAckAtMs = nowMs;
    this.pump(nowMs);
  }

  /** Sends as much as the window and the rate allow. */
  pump(nowMs: number): void {
    while (this.phase === 'sending') {
      if (this.nextInstanceId >= this.port.nowInstanceId()) {
        this.ackLead = this.options.senderAckLead;
        this.end('done');
        return;
      }
      if (this.nextInstanceId < this.ackInstanceId) {
        // The receiver is past what we would send next: it learned elsewhere (seed: CheckAck).
        this.ackLead = this.options.senderAckLead;
        this.end('caught-up');
        return;
      }
      if (this.nextInstanceId > this.ackInstanceId + this.ackLead) {
        if (nowMs - this.lastAckAtMs >= this.options.senderAckTimeoutMs) {
          this.counters.ackTimeouts++;
          this.cutAckLead();
          this.end('ack-timeout');
        }
        return; // wait for an ack (or the deadline)
      }
      if (!this.takeToken(nowMs)) {
        this.counters.rateLimited++;
        return;
      }
      let record: AcceptorRecord | undefined;
      try {
        record = this.port.readRecord(this.nextInstanceId);
      } catch (error) {
        this.end('read-failed', error);
        return;
      }
      if (record === undefined) {
        this.end('read-failed');
        return;
      }
      this.port.sendValue(this.toNodeId, record, this.lastChecksum);
      this.counters.valuesSent++;
      this.lastChecksum = record.checksum;
      this.nextInstanceId++;
      this.phaseAtMs = nowMs;
    }
  }

  /** Ends expired phases; call when deadline() passes. */
  tick(nowMs: number): void {
    this.expire(nowMs);
    this.pump(nowMs);
  }

  /** When tick() next has something to do, or undefined when idle or waiting only on acks. */
  deadline(): number | undefined {
    if (this.phase === 'prepared') return this.phaseAtMs + this.options.senderPrepareTimeoutMs;
    if (this.phase !== 'sending') return undefined;
    const ackDeadline = this.lastAckAtMs + this.options.senderAckTimeoutMs;
    if (this.nextInstanceId > this.ackInstanceId + this.ackLead) return ackDeadline;
    if (this.tokens < 1) return Math.min(ackDeadline, this.tokensAtMs + this.msPerToken());
    return ackDeadline;
  }

  private expire(nowMs: number): void {
    if (
      this.phase === 'prepared' &&
      nowMs - this.phaseAtMs >= this.options.senderPrepareTimeoutMs
    ) {
      this.counters.prepareTimeouts++;
      this.end('prepare-timeout');
    }
  }

  /** PhxPaxos CutAckLead: shrink by the receiver's ack lead while more than twice that remains. */
  private cutAckLead(): void {
    const receiverLead = this.options.receiverAckLead;
    if (this.ackLead - receiverLead > receiverLead) this.ackLead -= receiverLead;
  }

  /**
   * The chain value before the first instance sent, so the receiver can check the very first
   * value too (PhxPaxos sends 0 there, which skips the check).
   */
  private previousChecksum(beginInstanceId: number): number {
    if (beginInstanceId === 0) return 0;
    try {
      return this.port.readRecord(beginInstanceId - 1)?.checksum ?? 0;
    } catch {
      return 0;
    }
  }

  private bucketCapacity(): number {
    return Math.max(1, Math.ceil(this.options.sendRateInstancesPerSec / 100)); // 10 ms of sending
  }

  private msPerToken(): number {
    return 1000 / this.options.sendRateInstancesPerSec;
  }

  private takeToken(nowMs: number): boolean {
    const elapsed = nowMs - this.tokensAtMs;
    if (elapsed > 0) {
      this.tokens = Math.min(this.bucketCapacity(), this.tokens + elapsed / this.msPerToken());
      this.tokensAtMs = nowMs;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private end(reason: SenderEndReason, error?: unknown): void {
    const to = this.toNodeId;
    const next = this.nextInstanceId;
    this.phase = 'idle';
    this.toNodeId = 0;
    this.port.ended(to, reason, next, error);
  }
}
