// The receiving side of a catch-up (seed: Learner::OnSendLearnValue, SendLearnValue_Ack):
// streamed values are learned strictly in order. The chain is checked across each batch before
// anything is stored; the batch is stored with one putMany (sync: false, as PhxPaxos's learner:
// the values are durable on a majority already) and queued, so the host executes the instances
// one by one (Learner.newInstance takes the next). Acks go once per batch, or every
// receiverAckLead instances or receiverAckLeadBytes bytes of one-value frames; a value ahead of
// us gets a gap ack (NACK) at once.
//
// One CRC pass per value, end to end: the transport's frame CRC is the check of a streamed
// value's bytes, and it records each large value's CRC; the chain here (chainChecksum) and the
// log's segment append combine that CRC instead of reading the value again.
import { type AcceptorRecord, chainChecksum } from '@tspaxos/crc-wasm';
import type { LogStore } from '@tspaxos/storage';
import {
  type LearnedValue,
  type LentFrame,
  type PaxosMsg,
  PaxosMsgFlag,
  PaxosMsgType,
  paxosMsg,
} from '@tspaxos/transport';
import { type Ballot, compareBallots } from '@tspaxos/core';
import type { LearnerOptions } from './options';
import { RECORD_OVERHEAD_BYTES } from './sender';
import type { LearnerState } from './state';

/** Planted bugs (tests only): the simulator must catch each (style.md 13). */
export interface LearnerFaults {
  /** Planted: learn a streamed value without checking or extending the checksum chain. */
  skipChainCheck?: boolean;
  /** Planted: release a batch's receive buffer once it is stored, before its values execute. */
  releaseLentFramesEarly?: boolean;
}

/** What the receiver needs from the learner and its host. */
export interface ReceiverPort {
  readonly nodeId: number;
  readonly group: number;
  readonly store: LogStore;
  /** The learner's current instance (the first not executed). */
  instanceId(): number;
  now(): number;
  send(to: number, msg: PaxosMsg): void;
  /** Checksum of the instance before the current one (0 when unknown). */
  lastChecksum(): number;
  /** My acceptor's promise for the current instance (kept when a learned record is written). */
  promiseBallot(): Ballot;
  event(name: string, fields: Record<string, unknown>): void;
  /** Values learned from a peer: count them toward the catch-up under way. */
  learned(instances: number, bytes: number): void;
  /** Nothing holds a learned value once it is stored and executed (LearnerPort.releaseLentFrames). */
  readonly releaseLentFrames: boolean;
}

/** The learner's counters the receiver moves (LearnerCounters has them all). */
export interface ReceiverCounters {
  valuesLearnedFromPeers: number;
  lagMessages: number;
  aheadMessages: number;
  acksSent: number;
  checksumMismatches: number;
  batchesLearned: number;
  nacksSent: number;
}

export class LearnerReceiver {
  private lastAckInstanceIdValue = 0;
  /** Value bytes of NeedAck frames received since the last ack (receiverAckLeadBytes). */
  private bytesSinceAck = 0;
  /** The peer whose NeedAck frame arrived last, and whether that frame must be acked. */
  private pendingAckTo = 0;
  private pendingAckForce = false;
  /** Learned from peers and persisted after the current instance, not executed yet. */
  private pending: AcceptorRecord[] = [];
  private pendingHead = 0;
  /**
   * The receive buffers learned batches lie in, each released once the learner moves past the
   * batch's last instance (its values are stored and executed: nothing holds them any more), in
   * instance order. Dropped unreleased with the learner (a checkpoint install, a stop).
   */
  private lent: { lastInstanceId: number; frame: LentFrame }[] = [];
  private lentHead = 0;
  /** When the last valid stream frame arrived (the AskforLearn and stall timers read it). */
  private lastStreamValueAtMsValue = Number.NEGATIVE_INFINITY;
  /** The now id we last sent a gap ack for: one NACK per gap, not one per frame behind it. */
  private nackedInstanceId = -1;
  private nackedAtMs = 0;

  constructor(
    private readonly port: ReceiverPort,
    private readonly options: LearnerOptions,
    private readonly state: LearnerState,
    private readonly counters: ReceiverCounters,
    private readonly faults: LearnerFaults = {},
  ) {}

  /** The now instance id we last acked. */
  get lastAckInstanceId(): number {
    return this.lastAckInstanceIdValue;
  }

  /** When the last valid stream frame arrived. */
  get lastStreamValueAtMs(): number {
    return this.lastStreamValueAtMsValue;
  }

  /**
   * The learner moved to the next instance (its state was reset): a value already learned for it
   * (the rest of a batch) becomes the current learned value at once.
   */
  learnNextPending(): void {
    if (this.lentHead < this.lent.length) this.releaseExecuted();
    if (this.pendingHead >= this.pending.length) return;
    const next = this.pending[this.pendingHead]!;
    this.pending[this.pendingHead] = undefined as never;
    this.pendingHead++;
    if (this.pendingHead === this.pending.length) {
      this.pending = [];
      this.pendingHead = 0;
    }
    this.state.learnWithoutWrite(
      { proposalId: next.acceptedId, nodeId: next.acceptedNodeId },
      next.value,
      next.checksum,
    );
  }

  /** Releases the buffers of the batches whose every value is executed (before the current one). */
  private releaseExecuted(): void {
    const now = this.port.instanceId();
    while (this.lentHead < this.lent.length && this.lent[this.lentHead]!.lastInstanceId < now) {
      const { frame } = this.lent[this.lentHead]!;
      this.lent[this.lentHead] = undefined as never;
      this.lentHead++;
      frame.release();
    }
    if (this.lentHead === this.lent.length) {
      this.lent = [];
      this.lentHead = 0;
    }
  }

  /** The first instance not yet learned here (learned = persisted, maybe not executed yet). */
  learnedEnd(): number {
    if (!this.state.isLearned) return this.port.instanceId();
    return this.port.instanceId() + 1 + (this.pending.length - this.pendingHead);
  }

  /** The chain checksum of instance learnedEnd() - 1, as far as we know it (0: unknown). */
  private checksumBeforeLearnedEnd(): number {
    if (!this.state.isLearned) return this.port.lastChecksum();
    if (this.pending.length > this.pendingHead)
      return this.pending[this.pending.length - 1]!.checksum;
    return this.state.newChecksum;
  }

  /**
   * Values streamed by a peer (seed: Learner::OnSendLearnValue), one or a batch; learned strictly
   * in order. The chain is checked across the batch before anything is stored.
   */
  async receive(msg: PaxosMsg, lent?: LentFrame): Promise<void> {
    // Only when nothing else can hold a learned value once it is executed (releaseLentFrames).
    const frame = this.port.releaseLentFrames ? lent : undefined;
    let held = false;
    const needAck = msg.flag === PaxosMsgFlag.SendLearnValueNeedAck;
    const entries: readonly LearnedValue[] =
      msg.batch.length > 0
        ? msg.batch
        : [
            {
              proposalId: msg.proposalId,
              proposalNodeId: msg.proposalNodeId,
              checksum: 0, // the seed's form does not carry it
              value: msg.value,
            },
          ];
    const end = this.learnedEnd();
    const first = msg.instanceId;
    if (first > end) {
      this.counters.aheadMessages++;
      if (needAck) this.sendGapAck(msg.nodeId, end);
      frame?.release();
      return;
    }
    const skip = end - first;
    if (skip >= entries.length) {
      this.counters.lagMessages++;
    } else {
      // Planted bug (tests only): learn without checking or extending the chain.
      const mine = this.faults.skipChainCheck ? 0 : this.checksumBeforeLearnedEnd();
      const theirs = skip === 0 ? msg.lastChecksum : entries[skip - 1]!.checksum;
      if (theirs !== 0 && mine !== 0 && theirs !== mine) {
        // The peer's log diverged from ours before these instances: never learn its values as
        // good, nor ack the stream. (Instance stops the group before this; other hosts rely
        // on this check.)
        this.counters.checksumMismatches++;
        frame?.release();
        return;
      }
      if (
        !(await this.learnEntries(
          end,
          entries,
          skip,
          this.faults.skipChainCheck ? 0 : mine !== 0 ? mine : theirs,
        ))
      ) {
        frame?.release(); // nothing of it was learned
        return;
      }
      this.counters.batchesLearned++;
      if (frame !== undefined) {
        held = true;
        // Planted bug (tests only): reused while its values wait to be executed.
        if (this.faults.releaseLentFramesEarly) frame.release();
        else this.lent.push({ lastInstanceId: end + entries.length - skip - 1, frame });
      }
    }
    if (needAck) {
      this.lastStreamValueAtMsValue = this.port.now();
      this.pendingAckTo = msg.nodeId;
      // Every frame counts, learned or not: the sender holds all of them in its window.
      for (const e of entries) this.bytesSinceAck += e.value.length + RECORD_OVERHEAD_BYTES;
      // A batch is acked once; one-value frames every receiverAckLead or receiverAckLeadBytes,
      // or at the sender's end.
      this.pendingAckForce ||=
        msg.batch.length > 1 || (msg.batch.length === 1 && first + 1 >= msg.nowInstanceId);
    }
    if (!held) frame?.release(); // nothing of it was learned (behind us)
  }

  /**
   * Checks each entry's checksum against the chain, stores entries[skip…] (instance `end` on)
   * with one putMany, and queues them for execution. False (counted) when the chain breaks.
   */
  private async learnEntries(
    end: number,
    entries: readonly LearnedValue[],
    skip: number,
    chainBefore: number,
  ): Promise<boolean> {
    const count = entries.length - skip;
    // The stored records are also what waits for execution (this.pending): one object per
    // value, not three (the catch-up receiver's profile is a quarter garbage collection).
    const records: AcceptorRecord[] = new Array<AcceptorRecord>(count);
    let checksum = chainBefore;
    let bytes = 0;
    for (let i = 0; i < count; i++) {
      const e = entries[skip + i]!;
      const instanceId = end + i;
      checksum = chainChecksum(instanceId, checksum, e.value);
      if (
        !this.faults.skipChainCheck &&
        e.checksum !== 0 &&
        checksum !== 0 &&
        e.checksum !== checksum
      ) {
        this.counters.checksumMismatches++;
        this.port.event('batch-checksum-mismatch', {
          instanceId,
          ours: checksum,
          theirs: e.checksum,
        });
        return false;
      }
      let promiseId = e.proposalId;
      let promiseNodeId = e.proposalNodeId;
      if (instanceId === this.port.instanceId()) {
        // The current instance's record keeps the acceptor's promise when it is higher: the
        // promise must never go down on disk (PhxPaxos writes the chosen ballot as the promise).
        const promise = this.port.promiseBallot();
        const ballot = { proposalId: e.proposalId, nodeId: e.proposalNodeId };
        if (compareBallots(promise, ballot) > 0) {
          promiseId = promise.proposalId;
          promiseNodeId = promise.nodeId;
        }
      }
      records[i] = {
        instanceId,
        promiseId,
        promiseNodeId,
        acceptedId: e.proposalId,
        acceptedNodeId: e.proposalNodeId,
        value: e.value,
        checksum,
      };
      bytes += e.value.length + RECORD_OVERHEAD_BYTES;
    }
    // Not synced, as PhxPaxos's LearnValue: the values are durable on a majority already.
    await this.port.store.putMany(this.port.group, records, { sync: false });
    let from = 0;
    if (!this.state.isLearned) {
      const head = records[0]!;
      this.state.learnWithoutWrite(
        { proposalId: head.acceptedId, nodeId: head.acceptedNodeId },
        head.value,
        head.checksum,
      );
      from = 1;
    }
    for (let i = from; i < count; i++) this.pending.push(records[i]!);
    this.counters.valuesLearnedFromPeers += count;
    this.port.learned(count, bytes);
    return true;
  }

  /** A value ahead of us: a frame of the stream was lost. Ack our id at once (a NACK). */
  private sendGapAck(to: number, learnedEnd: number): void {
    const now = this.port.now();
    if (
      this.nackedInstanceId === learnedEnd &&
      now - this.nackedAtMs < this.options.learnerStallMs
    ) {
      return; // already told: the frames still in flight behind the gap say nothing new
    }
    this.nackedInstanceId = learnedEnd;
    this.nackedAtMs = now;
    this.counters.nacksSent++;
    this.port.send(
      to,
      paxosMsg({
        msgType: PaxosMsgType.SendLearnValueAck,
        instanceId: learnedEnd,
        nodeId: this.port.nodeId,
        flag: PaxosMsgFlag.AckGap,
      }),
    );
  }

  /**
   * Sends SendLearnValue_Ack when due. The learner calls it after it has executed what was
   * learned, so the ack reports the new now instance id (seed: Learner::SendLearnValue_Ack).
   */
  flushAck(): void {
    const to = this.pendingAckTo;
    if (to === 0) return;
    const force = this.pendingAckForce;
    this.pendingAckTo = 0;
    this.pendingAckForce = false;
    if (
      !force &&
      this.port.instanceId() < this.lastAckInstanceIdValue + this.options.receiverAckLead &&
      this.bytesSinceAck < this.options.receiverAckLeadBytes
    ) {
      return;
    }
    this.lastAckInstanceIdValue = this.port.instanceId();
    this.bytesSinceAck = 0;
    this.counters.acksSent++;
    this.port.send(
      to,
      paxosMsg({
        msgType: PaxosMsgType.SendLearnValueAck,
        instanceId: this.port.instanceId(),
        nodeId: this.port.nodeId,
      }),
    );
  }
}
