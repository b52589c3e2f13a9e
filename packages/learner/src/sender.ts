// LearnerSender (seed: LearnerSender): streams learned values to peers that are behind. PhxPaxos
// runs one sender thread serving one peer at a time, polling a lock every 20 ms; here one object
// per group keeps one Progress per peer (progress.ts, after etcd raft's tracker) and is driven by
// prepare/confirm/ack messages, by the deadline it reports, and by pump() after each learned
// instance. It serves up to maxConcurrentLearners peers at once, each with its own window in
// instances and bytes, under one node-wide byte budget (budget.ts), in batches of consecutive
// instances read from the log with range(), and never more than one turn's worth of work
// (senderTurnMax*) before it yields to the node's own work.
import type { AcceptorRecord } from '@tspaxos/crc-wasm';
import type { SenderBudget } from './budget';
import { isExpectedReadFailure } from './errors';
import { type LearnerOptions, SENDER_CLOCK_CHECK_BYTES } from './options';
import { Progress, type ProgressPhase } from './progress';

export type SenderPhase = ProgressPhase;
export type SenderEndReason =
  'done' | 'ack-timeout' | 'prepare-timeout' | 'declined' | 'read-failed';

/** Bytes counted per record on top of its value (the batch table entry and framing). */
export const RECORD_OVERHEAD_BYTES = 32;

/** What the sender needs from its host; implemented by the Learner. */
export interface SenderPort {
  /** The first instance this node has not learned: the stream's end for now. */
  nowInstanceId(): number;
  /** The clock, read between batches to bound a turn's work (senderTurnMaxMs). */
  now(): number;
  /** Stored records from `from` up to `toExclusive`, ascending, read lazily. Throws on corruption. */
  readRange(from: number, toExclusive: number): Iterator<AcceptorRecord>;
  /** Chain checksum of a stored instance; 0 when unknown (compacted, or before a checkpoint). */
  readChecksum(instanceId: number): number;
  /** Sends one SendLearnValue batch (NeedAck) of consecutive records. */
  sendBatch(to: number, lastChecksum: number, records: readonly AcceptorRecord[]): void;
  /** Reports the end of a stream (for logs and counters). */
  ended(to: number, reason: SenderEndReason, nextInstanceId: number, error?: unknown): void;
}

export interface SenderCounters {
  prepared: number;
  /** A peer asked again while prepared or streaming: its stream restarted from its new begin. */
  reprepared: number;
  confirmed: number;
  /** Prepared streams released because the asker chose another peer. */
  declined: number;
  /** Asks refused because maxConcurrentLearners peers were being served. */
  busy: number;
  batchesSent: number;
  valuesSent: number;
  bytesSent: number;
  acks: number;
  /** Gap acks (NACKs) that rewound a stream. */
  nacks: number;
  ackTimeouts: number;
  prepareTimeouts: number;
  rateLimited: number;
  /** Times a stream waited for the node-wide byte budget. */
  budgetWaits: number;
  /** Turns that stopped at senderTurnMax* and continued on the next turn. */
  turnsYielded: number;
  /** Turns cut to senderBusyTurnMaxMs because the group was busy with its own Paxos work. */
  busyTurns: number;
  /**
   * Streams ended because a record could not be read (E_CORRUPT_RECORD, E_IO: errors.ts
   * EXPECTED_READ_FAILURES); the peer asks again and another peer serves it.
   */
  readFailures: number;
  /** Most peers streaming at the same time (status; the simulator's coverage). */
  maxConcurrentStreams: number;
  /** Streams confirmed while another peer of this group was streaming (two or more at once). */
  concurrentStreamsStarted: number;
}

/** One peer's stream, as status() shows it. */
export interface SenderPeerStatus {
  nodeId: number;
  phase: SenderPhase;
  beginInstanceId: number;
  nextInstanceId: number;
  ackedInstanceId: number;
  inflightInstances: number;
  inflightBytes: number;
  ackLeadInstances: number;
  ackLeadBytes: number;
  bytesPerSec: number;
  instancesPerSec: number;
}

export class LearnerSender {
  readonly counters: SenderCounters = {
    prepared: 0,
    reprepared: 0,
    confirmed: 0,
    declined: 0,
    busy: 0,
    batchesSent: 0,
    valuesSent: 0,
    bytesSent: 0,
    acks: 0,
    nacks: 0,
    ackTimeouts: 0,
    prepareTimeouts: 0,
    rateLimited: 0,
    budgetWaits: 0,
    turnsYielded: 0,
    busyTurns: 0,
    readFailures: 0,
    maxConcurrentStreams: 0,
    concurrentStreamsStarted: 0,
  };
  /** Every peer that asked; idle entries keep a cut window for the peer's next stream. */
  private readonly peers = new Map<number, Progress>();
  /** How long the last pump() ran, on the port's clock (the pause before the next turn). */
  lastTurnMs = 0;
  /** When the current turn must end: a batch being read stops growing then (bounded work). */
  private turnDeadlineMs = Number.POSITIVE_INFINITY;
  private tokens = 0;
  private tokensAtMs = 0;
  private waitingForBudget = false;

  constructor(
    private readonly options: LearnerOptions,
    private readonly port: SenderPort,
    private readonly budget: SenderBudget,
    /** Called when the budget frees bytes while a stream waits for them. */
    private readonly wake: () => void,
  ) {
    this.tokens = this.bucketCapacity();
  }

  /** The peer's progress (tests, status), if it ever asked. */
  progress(nodeId: number): Progress | undefined {
    return this.peers.get(nodeId);
  }

  get activeCount(): number {
    let n = 0;
    for (const p of this.peers.values()) if (p.isActive) n++;
    return n;
  }

  get isSending(): boolean {
    for (const p of this.peers.values()) if (p.phase === 'sending') return true;
    return false;
  }

  /**
   * Reserves a stream for `to` from `beginInstanceId` (seed: LearnerSender::Prepare). A peer that
   * is already prepared or streaming asked again (it restarted, or lost frames): its stream
   * starts over from its new begin at once. False when maxConcurrentLearners others are served.
   */
  prepare(beginInstanceId: number, to: number, nowMs: number): boolean {
    this.expire(nowMs);
    let p = this.peers.get(to);
    if (p?.isActive) {
      this.budget.release(p.becomePrepared(beginInstanceId, nowMs));
      this.counters.reprepared++;
      return true;
    }
    if (this.activeCount >= this.options.maxConcurrentLearners) {
      this.counters.busy++;
      return false;
    }
    if (p === undefined) {
      p = new Progress(
        to,
        this.options.senderAckLead,
        this.options.senderAckLeadBytes,
        this.options.rateWindowMs,
      );
      this.peers.set(to, p);
    }
    p.becomePrepared(beginInstanceId, nowMs);
    this.counters.prepared++;
    return true;
  }

  /** The asker chose us (seed: LearnerSender::Comfirm); starts its stream. */
  confirm(beginInstanceId: number, from: number, nowMs: number): boolean {
    this.expire(nowMs);
    const p = this.peers.get(from);
    if (p === undefined || p.phase !== 'prepared' || p.beginInstanceId !== beginInstanceId)
      return false;
    p.becomeSending(this.chainBefore(beginInstanceId), nowMs, this.options.firstBatchInstances);
    this.counters.confirmed++;
    const streaming = this.streamingCount();
    if (streaming >= 2) this.counters.concurrentStreamsStarted++;
    this.counters.maxConcurrentStreams = Math.max(this.counters.maxConcurrentStreams, streaming);
    return true;
  }

  /** The asker chose another peer: our prepared stream for it is released at once. */
  decline(beginInstanceId: number, from: number): boolean {
    const p = this.peers.get(from);
    if (p === undefined || p.phase !== 'prepared' || p.beginInstanceId !== beginInstanceId)
      return false;
    this.counters.declined++;
    this.end(p, 'declined');
    return true;
  }

  /**
   * The receiver reports its now instance id (seed: LearnerSender::Ack). With `gap` it got a
   * value ahead of it (a frame was lost): the stream rewinds to that id (a NACK).
   */
  ack(instanceId: number, from: number, gap: boolean, nowMs: number): void {
    const p = this.peers.get(from);
    if (p === undefined || p.phase !== 'sending') return;
    this.counters.acks++;
    if (instanceId > p.nextInstanceId) {
      // The receiver is past what we sent (it learned the tail elsewhere): go on from there.
      this.budget.release(p.rewind(instanceId, this.chainBefore(instanceId), nowMs));
    } else if (gap && instanceId < p.nextInstanceId) {
      this.counters.nacks++;
      this.budget.release(p.rewind(instanceId, this.chainBefore(instanceId), nowMs));
    } else {
      this.budget.release(p.acked(instanceId, nowMs));
    }
    if (p.ackedInstanceId >= this.port.nowInstanceId()) this.finish(p);
  }

  /**
   * Sends what the windows, the budget and the rate allow, one batch per streaming peer in turn,
   * until one turn's work is done (senderTurnMaxMs, or senderBusyTurnMaxMs when `busy`: the group
   * has Paxos work of its own). True when it stopped at the turn limit: call again on the next turn of the
   * event loop.
   */
  pump(nowMs: number, busy = false): boolean {
    const turnMaxMs = busy ? this.options.senderBusyTurnMaxMs : this.options.senderTurnMaxMs;
    if (busy) this.counters.busyTurns++;
    this.refillTokens(nowMs);
    let turnInstances = 0;
    let turnBytes = 0;
    const turnStartMs = this.port.now();
    this.turnDeadlineMs = turnStartMs + turnMaxMs;
    for (;;) {
      let progressed = false;
      for (const p of this.peers.values()) {
        if (p.phase !== 'sending') continue;
        const sent = this.sendBatch(p, nowMs, busy);
        if (sent === undefined) continue;
        progressed = true;
        turnInstances += sent.instances;
        turnBytes += sent.bytes;
        if (
          turnInstances >= this.options.senderTurnMaxInstances ||
          turnBytes >= this.options.senderTurnMaxBytes ||
          this.port.now() - turnStartMs >= turnMaxMs
        ) {
          this.counters.turnsYielded++;
          this.lastTurnMs = this.port.now() - turnStartMs;
          return true;
        }
      }
      if (!progressed) return false;
    }
  }

  /** Ends expired phases and sends what is due; call when deadline() passes. */
  tick(nowMs: number, busy = false): boolean {
    this.expire(nowMs);
    return this.pump(nowMs, busy);
  }

  /** When tick() next has something to do; undefined when only messages can move anything. */
  deadline(): number | undefined {
    let at = Number.POSITIVE_INFINITY;
    let sending = false;
    for (const p of this.peers.values()) {
      if (p.phase === 'prepared')
        at = Math.min(at, p.phaseAtMs + this.options.senderPrepareTimeoutMs);
      if (p.phase !== 'sending') continue;
      sending = true;
      if (p.inflightInstances > 0)
        at = Math.min(at, p.lastAckAtMs + this.options.senderAckTimeoutMs);
    }
    if (sending && this.tokens < 1) at = Math.min(at, this.tokensAtMs + this.msPerToken());
    return at === Number.POSITIVE_INFINITY ? undefined : at;
  }

  peerStatus(nowMs: number): SenderPeerStatus[] {
    const out: SenderPeerStatus[] = [];
    for (const p of this.peers.values()) {
      if (!p.isActive) continue;
      const rate = p.sentRate.rates(nowMs, p.phaseAtMs);
      out.push({
        nodeId: p.nodeId,
        phase: p.phase,
        beginInstanceId: p.beginInstanceId,
        nextInstanceId: p.nextInstanceId,
        ackedInstanceId: p.ackedInstanceId,
        inflightInstances: p.inflightInstances,
        inflightBytes: p.inflightBytes,
        ackLeadInstances: p.ackLeadInstances,
        ackLeadBytes: p.ackLeadBytes,
        bytesPerSec: rate.bytesPerSec,
        instancesPerSec: rate.instancesPerSec,
      });
    }
    return out;
  }

  /** Ends every stream (the group stops); frees their budget. */
  stop(): void {
    for (const p of this.peers.values()) if (p.isActive) this.budget.release(p.becomeIdle());
  }

  // ---- one batch ---------------------------------------------------------------------------

  /**
   * Sends one batch to `p` (at most senderBusyBatchMaxInstances while the group is `busy`);
   * undefined when nothing could be sent now.
   */
  private sendBatch(
    p: Progress,
    nowMs: number,
    busy: boolean,
  ): { instances: number; bytes: number } | undefined {
    const nowInstanceId = this.port.nowInstanceId();
    if (p.nextInstanceId >= nowInstanceId) {
      if (p.ackedInstanceId >= nowInstanceId) this.finish(p);
      return undefined; // everything sent: wait for the acks, or for new instances
    }
    const o = this.options;
    const count = Math.min(
      o.batchMaxInstances,
      busy ? o.senderBusyBatchMaxInstances : o.batchMaxInstances,
      p.batchLimit,
      p.ackLeadInstances - p.inflightInstances,
      nowInstanceId - p.nextInstanceId,
      Math.floor(this.tokens),
    );
    if (count <= 0) {
      if (this.tokens < 1) this.counters.rateLimited++;
      return undefined;
    }
    const leadBytes = p.ackLeadBytes - p.inflightBytes;
    // The receiver acks for sure only once receiverAckLeadBytes or receiverAckLead instances are
    // unacked; below that, waiting for the byte window would wait for the stall timer.
    const ackDue =
      p.inflightBytes >= o.receiverAckLeadBytes || p.inflightInstances >= o.receiverAckLead;
    if (leadBytes <= 0 && ackDue) return undefined; // the byte window is full: wait for acks
    const byteLimit = Math.min(o.batchMaxBytes, leadBytes, this.budget.availableBytes);
    const records: AcceptorRecord[] = [];
    let bytes = 0;
    try {
      this.fillReadAhead(p, count, byteLimit, nowInstanceId);
    } catch (error) {
      // A damaged record or a failed disk read ends this peer's stream, counted and reported
      // with the error; anything else (a closed store, a TypeError) is a bug and goes up.
      if (!isExpectedReadFailure(error)) throw error;
      this.counters.readFailures++;
      this.end(p, 'read-failed', error);
      return undefined;
    }
    for (const record of p.readAhead) {
      if (records.length === count) break;
      const size = record.value.length + RECORD_OVERHEAD_BYTES;
      if (records.length > 0 && bytes + size > byteLimit) break;
      if (records.length === 0 && size > leadBytes && p.inflightBytes > 0 && ackDue) {
        return undefined;
      }
      records.push(record);
      bytes += size;
    }
    if (records.length === 0 || records[0]!.instanceId !== p.nextInstanceId) {
      // The log no longer holds what this peer needs (compacted meanwhile): it will ask again
      // and be told our min chosen id.
      this.end(p, 'read-failed');
      return undefined;
    }
    for (let i = 1; i < records.length; i++) {
      if (records[i]!.instanceId !== p.nextInstanceId + i) {
        records.length = i; // a hole: send up to it; the next batch ends the stream there
        break;
      }
    }
    bytes = 0;
    for (const r of records) bytes += r.value.length + RECORD_OVERHEAD_BYTES;
    if (!this.budget.tryTake(bytes)) {
      this.counters.budgetWaits++;
      if (!this.waitingForBudget) {
        this.waitingForBudget = true;
        this.budget.waitForRelease(this.onBudgetRelease);
      }
      return undefined;
    }
    p.readAhead.splice(0, records.length);
    this.tokens -= records.length;
    this.port.sendBatch(p.nodeId, p.lastChecksum, records);
    p.sent(records.length, bytes, records[records.length - 1]!.checksum, nowMs);
    this.counters.batchesSent++;
    this.counters.valuesSent += records.length;
    this.counters.bytesSent += bytes;
    return { instances: records.length, bytes };
  }

  private readonly onBudgetRelease = (): void => {
    this.waitingForBudget = false;
    this.wake();
  };

  /**
   * Reads ahead until `count` records or `byteLimit` bytes (plus one record) are buffered, with
   * one range() read kept open across batches (it reads the log in bounded chunks).
   */
  private fillReadAhead(p: Progress, count: number, byteLimit: number, nowId: number): void {
    let bytes = 0;
    for (const r of p.readAhead) bytes += r.value.length + RECORD_OVERHEAD_BYTES;
    let uncheckedBytes = 0;
    while (p.readAhead.length < count && (p.readAhead.length === 0 || bytes <= byteLimit)) {
      const after = p.nextInstanceId + p.readAhead.length;
      if (after >= nowId) return;
      if (p.reader === undefined || after >= p.readEnd) {
        p.reader = this.port.readRange(after, nowId);
        p.readEnd = nowId;
      }
      const next = p.reader.next();
      if (next.done === true) {
        p.reader = undefined;
        return; // a hole or compacted: sendBatch sees the ids
      }
      p.readAhead.push(next.value);
      const size = next.value.value.length + RECORD_OVERHEAD_BYTES;
      bytes += size;
      uncheckedBytes += size;
      // On a slow or loaded machine even one full batch can take tens of ms to read: the batch
      // is cut where the turn's time runs out, so the node's own messages wait at most a turn.
      // The clock is read every 64 records, or every SENDER_CLOCK_CHECK_BYTES of large values.
      if ((p.readAhead.length & 63) === 0 || uncheckedBytes >= SENDER_CLOCK_CHECK_BYTES) {
        uncheckedBytes = 0;
        if (this.port.now() >= this.turnDeadlineMs) return;
      }
    }
  }

  // ---- ends and timeouts --------------------------------------------------------------------

  private expire(nowMs: number): void {
    for (const p of this.peers.values()) {
      if (p.phase === 'prepared' && nowMs - p.phaseAtMs >= this.options.senderPrepareTimeoutMs) {
        this.counters.prepareTimeouts++;
        this.end(p, 'prepare-timeout');
      } else if (
        p.phase === 'sending' &&
        p.inflightInstances > 0 &&
        nowMs - p.lastAckAtMs >= this.options.senderAckTimeoutMs
      ) {
        // Only this peer's window shrinks: the others keep theirs.
        this.counters.ackTimeouts++;
        p.cutLead(2 * this.options.receiverAckLead, this.options.batchMaxBytes);
        this.end(p, 'ack-timeout');
      }
    }
  }

  /** The peer has everything we had: the stream ran to its end. */
  private finish(p: Progress): void {
    p.resetLead();
    this.end(p, 'done');
  }

  private end(p: Progress, reason: SenderEndReason, error?: unknown): void {
    const next = p.nextInstanceId;
    this.budget.release(p.becomeIdle());
    this.port.ended(p.nodeId, reason, next, error);
  }

  private streamingCount(): number {
    let n = 0;
    for (const p of this.peers.values()) if (p.phase === 'sending') n++;
    return n;
  }

  /**
   * The chain value before `instanceId`, so the receiver can check the very first value too
   * (PhxPaxos sends 0 there, which skips the check).
   */
  private chainBefore(instanceId: number): number {
    return instanceId === 0 ? 0 : this.port.readChecksum(instanceId - 1);
  }

  // ---- rate limit (PhxPaxos: SendLearnValue's qps limit) --------------------------------------

  private bucketCapacity(): number {
    // 10 ms of sending, and at least one full batch.
    return Math.max(
      this.options.batchMaxInstances,
      Math.ceil(this.options.sendRateInstancesPerSec / 100),
    );
  }

  private msPerToken(): number {
    return 1000 / this.options.sendRateInstancesPerSec;
  }

  private refillTokens(nowMs: number): void {
    const elapsed = nowMs - this.tokensAtMs;
    if (elapsed > 0) {
      this.tokens = Math.min(this.bucketCapacity(), this.tokens + elapsed / this.msPerToken());
      this.tokensAtMs = nowMs;
    }
  }
}
