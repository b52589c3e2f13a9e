// The Learner (seed: Learner, Instance::ReceiveMsgForLearner). It learns the current instance's
// value in steady state from ProposerSendSuccess, and when this node is behind it catches up:
//
//   asker                                   peer that is ahead
//   AskforLearn(my now id) ───────────────► OnAskforLearn: sender.prepare()
//                          ◄─────────────── SendNowInstanceID(asker id, peer now id, min chosen)
//   ComfirmAskforLearn ───────────────────► sender.confirm(): stream starts
//                          ◄─────────────── SendLearnValue × n (NeedAck, each with lastChecksum)
//   SendLearnValue_Ack every 4 ───────────► sender.ack(): window moves
//
// Sans-IO: everything outside comes through LearnerHost; no clock, timer or socket of its own.
import type { AcceptorRecord } from '@tspaxos/crc-wasm';
import type { LogStore } from '@tspaxos/storage';
import { type PaxosMsg, PaxosMsgFlag, PaxosMsgType, paxosMsg } from '@tspaxos/transport';
import { type Ballot, ballotEquals, isNullBallot } from './ballot';
import { DEFAULT_LEARNER_OPTIONS, type LearnerOptions } from './options';
import {
  LearnerSender,
  type SenderCounters,
  type SenderEndReason,
  type SenderPhase,
} from './sender';
import { LearnerState } from './state';

/** What the learner needs from the instance that hosts it. */
export interface LearnerHost {
  readonly nodeId: number;
  readonly group: number;
  readonly store: LogStore;
  now(): number;
  /** Uniform in [0, 1): jitter for the AskforLearn timer. */
  random(): number;
  /** Runs fn after delayMs, serialized with message handling; returns a cancel function. */
  schedule(delayMs: number, fn: () => void): () => void;
  send(to: number, msg: PaxosMsg): void;
  /** Nodes to ask: every voting member but me (a follower asks them too). */
  peers(): readonly number[];
  /** Non-voting nodes that follow me (they get every value I learn). */
  followers(): readonly number[];
  addFollower(nodeId: number): void;
  /** The voting node I follow, when I am a follower. */
  followToNodeId(): number | undefined;
  /** Checksum of the instance before my current one (0 when unknown). */
  lastChecksum(): number;
  minChosenInstanceId(): number;
  /** My acceptor's state for the current instance. */
  acceptedState(): { ballot: Ballot; value: Uint8Array; checksum: number };
  /** My acceptor's promise for the current instance (kept when a learned record is written). */
  promiseBallot(): Ballot;
  /** Encoded system variables to hand to a far-behind asker, if any. */
  systemVariables(): Uint8Array | undefined;
  /** Applies a peer's system variables; true when they changed mine. */
  applySystemVariables(bytes: Uint8Array): boolean;
  /** Encoded master variables to hand to a far-behind asker, if any (PhxPaxos GetMasterSM). */
  masterVariables?(): Uint8Array | undefined;
  /** Applies a peer's master variables; true when they were newer (PhxPaxos UpdateByCheckpoint). */
  applyMasterVariables?(bytes: Uint8Array): boolean;
  /** A peer has deleted the log I need: only a checkpoint can teach me. */
  needCheckpoint(from: number, peerMinChosenInstanceId: number): void;
  event(name: string, fields: Record<string, unknown>): void;
}

export interface LearnerCounters {
  askforLearnSent: number;
  askforLearnReceived: number;
  valuesLearnedFromPeers: number;
  valuesLearnedFromProposer: number;
  lagMessages: number;
  aheadMessages: number;
  acksSent: number;
  senderBusy: number;
  /** Streamed values refused because their lastChecksum breaks our chain (DESIGN §2). */
  checksumMismatches: number;
}

export interface LearnerStatus {
  instanceId: number;
  highestSeenInstanceId: number;
  highestSeenFromNodeId: number;
  isLearning: boolean;
  lastAckInstanceId: number;
  counters: LearnerCounters;
  sender: {
    phase: SenderPhase;
    toNodeId: number;
    beginInstanceId: number;
    nextInstanceId: number;
    ackInstanceId: number;
    ackLead: number;
    counters: SenderCounters;
  };
}

export class Learner {
  readonly options: LearnerOptions;
  /** The first instance this node has not learned (PhxPaxos Base::m_llInstanceID). */
  instanceId = 0;
  readonly state: LearnerState;
  readonly sender: LearnerSender;
  readonly counters: LearnerCounters = {
    askforLearnSent: 0,
    askforLearnReceived: 0,
    valuesLearnedFromPeers: 0,
    valuesLearnedFromProposer: 0,
    lagMessages: 0,
    aheadMessages: 0,
    acksSent: 0,
    senderBusy: 0,
    checksumMismatches: 0,
  };

  private highestSeenInstanceId = 0;
  private highestSeenFromNodeId = 0;
  private isLearning = false;
  private lastAckInstanceId = 0;
  /** The peer whose NeedAck value arrived last: flushAck() acks it once the value is executed. */
  private pendingAckTo = 0;
  private cancelAskTimer: (() => void) | undefined;
  private cancelSenderTimer: (() => void) | undefined;
  private senderTimerAt = Number.POSITIVE_INFINITY;

  constructor(
    private readonly host: LearnerHost,
    options: Partial<LearnerOptions> = {},
  ) {
    this.options = { ...DEFAULT_LEARNER_OPTIONS, ...options };
    this.state = new LearnerState(host.store, host.group);
    this.sender = new LearnerSender(this.options, {
      nowInstanceId: () => this.instanceId,
      readRecord: (id) => host.store.get(host.group, id),
      sendValue: (to, record, lastChecksum) => this.sendLearnValue(to, record, lastChecksum, true),
      ended: (to, reason, next, error) => this.senderEnded(to, reason, next, error),
    });
  }

  /** Starts learning: asks at once (PhxPaxos waits a full interval first), then on the timer. */
  start(): void {
    this.askforLearnNoop();
  }

  stop(): void {
    this.cancelAskTimer?.();
    this.cancelSenderTimer?.();
    this.cancelAskTimer = undefined;
    this.cancelSenderTimer = undefined;
  }

  /** Moves to the next instance (seed: Learner::NewInstance). */
  newInstance(): void {
    this.instanceId++;
    this.state.reset();
  }

  /** True when this node is not known to be behind anyone (seed: Learner::IsIMLatest). */
  isLatest(): boolean {
    return this.instanceId + 1 >= this.highestSeenInstanceId;
  }

  get seenInstanceId(): number {
    return this.highestSeenInstanceId;
  }

  /** Dispatches a learner message (seed: Instance::ReceiveMsgForLearner). */
  async handle(msg: PaxosMsg): Promise<void> {
    switch (msg.msgType) {
      case PaxosMsgType.AskforLearn:
        return this.onAskforLearn(msg);
      case PaxosMsgType.SendLearnValue:
        return this.onSendLearnValue(msg);
      case PaxosMsgType.ProposerSendSuccess:
        return this.onProposerSendSuccess(msg);
      case PaxosMsgType.SendNowInstanceID:
        return this.onSendNowInstanceId(msg);
      case PaxosMsgType.ComfirmAskforLearn:
        return this.onComfirmAskforLearn(msg);
      case PaxosMsgType.SendLearnValueAck:
        return this.onSendLearnValueAck(msg);
      default:
        return;
    }
  }

  /** The message a successful proposer broadcasts (seed: Learner::ProposerSendSuccess). */
  proposerSendSuccessMsg(instanceId: number, proposalId: number): PaxosMsg {
    return paxosMsg({
      msgType: PaxosMsgType.ProposerSendSuccess,
      instanceId,
      nodeId: this.host.nodeId,
      proposalId,
      lastChecksum: this.host.lastChecksum(),
    });
  }

  status(): LearnerStatus {
    const s = this.sender;
    return {
      instanceId: this.instanceId,
      highestSeenInstanceId: this.highestSeenInstanceId,
      highestSeenFromNodeId: this.highestSeenFromNodeId,
      isLearning: this.isLearning,
      lastAckInstanceId: this.lastAckInstanceId,
      counters: { ...this.counters },
      sender: {
        phase: s.phase,
        toNodeId: s.toNodeId,
        beginInstanceId: s.beginInstanceId,
        nextInstanceId: s.nextInstanceId,
        ackInstanceId: s.ackInstanceId,
        ackLead: s.ackLead,
        counters: { ...s.counters },
      },
    };
  }

  // ---- timers ---------------------------------------------------------------------------

  /** Re-arms the AskforLearn timer (seed: Reset_AskforLearn_Noop). */
  resetAskforLearnTimer(delayMs?: number): void {
    this.cancelAskTimer?.();
    const follower = this.host.followToNodeId() !== undefined;
    const o = this.options;
    const interval = follower ? o.followerAskforLearnIntervalMs : o.askforLearnIntervalMs;
    const jitter = follower ? o.followerAskforLearnJitterMs : o.askforLearnJitterMs;
    const delay = delayMs ?? interval + Math.floor(this.host.random() * jitter);
    this.cancelAskTimer = this.host.schedule(delay, () => this.askforLearnNoop());
  }

  /** Timer: stop waiting on a confirmed sender and ask everyone again (seed: AskforLearn_Noop). */
  private askforLearnNoop(): void {
    this.resetAskforLearnTimer();
    this.isLearning = false;
    this.askforLearn();
  }

  /** Keeps one timer at the sender's next deadline. */
  private armSenderTimer(): void {
    const at = this.sender.deadline();
    if (at === undefined) {
      this.cancelSenderTimer?.();
      this.cancelSenderTimer = undefined;
      this.senderTimerAt = Number.POSITIVE_INFINITY;
      return;
    }
    if (this.cancelSenderTimer !== undefined && at === this.senderTimerAt) return;
    this.cancelSenderTimer?.();
    this.senderTimerAt = at;
    this.cancelSenderTimer = this.host.schedule(Math.max(0, at - this.host.now()), () => {
      this.cancelSenderTimer = undefined;
      this.senderTimerAt = Number.POSITIVE_INFINITY;
      this.sender.tick(this.host.now());
      this.armSenderTimer();
    });
  }

  // ---- asking ---------------------------------------------------------------------------

  private askforLearn(): void {
    const followTo = this.host.followToNodeId();
    const msg = paxosMsg({
      msgType: PaxosMsgType.AskforLearn,
      instanceId: this.instanceId,
      nodeId: this.host.nodeId,
      // PhxPaxos reuses proposalNodeId to say whom a follower follows.
      proposalNodeId: followTo ?? 0,
    });
    this.counters.askforLearnSent++;
    for (const peer of this.host.peers()) this.host.send(peer, msg);
  }

  private setSeen(instanceId: number, fromNodeId: number): void {
    if (instanceId > this.highestSeenInstanceId) {
      this.highestSeenInstanceId = instanceId;
      this.highestSeenFromNodeId = fromNodeId;
    }
  }

  /** A peer asks to learn from me (seed: Learner::OnAskforLearn). */
  private onAskforLearn(msg: PaxosMsg): void {
    this.counters.askforLearnReceived++;
    this.setSeen(msg.instanceId, msg.nodeId);
    if (msg.proposalNodeId === this.host.nodeId) this.host.addFollower(msg.nodeId);
    if (msg.instanceId >= this.instanceId) return;

    const now = this.host.now();
    if (msg.instanceId >= this.host.minChosenInstanceId()) {
      if (!this.sender.prepare(msg.instanceId, msg.nodeId, now)) {
        this.counters.senderBusy++;
        if (msg.instanceId === this.instanceId - 1) {
          // Busy with someone else, but this asker misses only one value: just send it.
          const record = this.readRecordOrUndefined(msg.instanceId);
          if (record !== undefined) this.sendLearnValue(msg.nodeId, record, 0, false);
        }
        this.armSenderTimer();
        return;
      }
      this.armSenderTimer();
    }
    this.sendNowInstanceId(msg.instanceId, msg.nodeId);
  }

  private sendNowInstanceId(askerInstanceId: number, to: number): void {
    const reply = paxosMsg({
      msgType: PaxosMsgType.SendNowInstanceID,
      instanceId: askerInstanceId,
      nodeId: this.host.nodeId,
      nowInstanceId: this.instanceId,
      minChosenInstanceId: this.host.minChosenInstanceId(),
    });
    if (this.instanceId - askerInstanceId > this.options.variablesGapInstances) {
      const system = this.host.systemVariables();
      if (system !== undefined) reply.systemVariables = system;
      const master = this.host.masterVariables?.();
      if (master !== undefined) reply.masterVariables = master;
    }
    this.host.send(to, reply);
  }

  /** A peer told me how far it is (seed: Learner::OnSendNowInstanceID). */
  private onSendNowInstanceId(msg: PaxosMsg): void {
    this.setSeen(msg.nowInstanceId, msg.nodeId);
    // The master first: a far-behind node learns who the master is before replaying the log
    // (seed: OnSendNowInstanceID, GetMasterSM()->UpdateByCheckpoint).
    if (msg.masterVariables.length > 0 && this.host.applyMasterVariables?.(msg.masterVariables))
      this.host.event('master-variables-changed', { from: msg.nodeId });
    if (msg.systemVariables.length > 0 && this.host.applySystemVariables(msg.systemVariables)) {
      this.host.event('system-variables-changed', { from: msg.nodeId });
      return; // membership changed: everything is re-evaluated on the next ask
    }
    if (msg.instanceId !== this.instanceId || msg.nowInstanceId <= this.instanceId) {
      this.counters.lagMessages++;
      return;
    }
    if (msg.minChosenInstanceId > this.instanceId) {
      this.host.needCheckpoint(msg.nodeId, msg.minChosenInstanceId);
      return;
    }
    if (!this.isLearning) {
      this.host.send(
        msg.nodeId,
        paxosMsg({
          msgType: PaxosMsgType.ComfirmAskforLearn,
          instanceId: this.instanceId,
          nodeId: this.host.nodeId,
        }),
      );
      this.isLearning = true;
    }
  }

  /** The asker picked me (seed: Learner::OnComfirmAskForLearn). */
  private onComfirmAskforLearn(msg: PaxosMsg): void {
    const ok = this.sender.confirm(msg.instanceId, msg.nodeId, this.host.now());
    if (!ok) this.counters.lagMessages++;
    else
      this.host.event('sender-confirmed', {
        to: msg.nodeId,
        from: msg.instanceId,
        until: this.instanceId,
      });
    this.armSenderTimer();
  }

  private onSendLearnValueAck(msg: PaxosMsg): void {
    this.sender.ack(msg.instanceId, msg.nodeId, this.host.now());
    this.armSenderTimer();
  }

  /** Called after every learned instance: a confirmed stream may now send further. */
  pumpSender(): void {
    if (this.sender.phase === 'sending') {
      this.sender.pump(this.host.now());
      this.armSenderTimer();
    }
  }

  private senderEnded(to: number, reason: SenderEndReason, next: number, error?: unknown): void {
    this.host.event('sender-ended', {
      to,
      reason,
      nextInstanceId: next,
      error: error === undefined ? undefined : String(error),
    });
  }

  // ---- learning -------------------------------------------------------------------------

  private sendLearnValue(
    to: number,
    record: AcceptorRecord,
    lastChecksum: number,
    needAck: boolean,
  ): void {
    this.host.send(
      to,
      paxosMsg({
        msgType: PaxosMsgType.SendLearnValue,
        instanceId: record.instanceId,
        nodeId: this.host.nodeId,
        proposalId: record.acceptedId,
        proposalNodeId: record.acceptedNodeId,
        value: record.value,
        lastChecksum,
        flag: needAck ? PaxosMsgFlag.SendLearnValueNeedAck : 0,
      }),
    );
  }

  /** A value streamed by a peer (seed: Learner::OnSendLearnValue); learned strictly in order. */
  private async onSendLearnValue(msg: PaxosMsg): Promise<void> {
    if (msg.instanceId > this.instanceId) {
      this.counters.aheadMessages++;
      return;
    }
    if (msg.instanceId < this.instanceId) {
      this.counters.lagMessages++;
    } else if (!this.state.isLearned) {
      const mine = this.host.lastChecksum();
      if (msg.lastChecksum !== 0 && mine !== 0 && msg.lastChecksum !== mine) {
        // The peer's log diverged from ours before this instance: never learn its value as
        // good, nor ack the stream. (Instance stops the group before this; other hosts rely
        // on this check.)
        this.counters.checksumMismatches++;
        return;
      }
      const ballot = { proposalId: msg.proposalId, nodeId: msg.proposalNodeId };
      await this.state.learn(
        msg.instanceId,
        ballot,
        msg.value,
        this.host.lastChecksum(),
        this.host.promiseBallot(),
      );
      this.counters.valuesLearnedFromPeers++;
    }
    if (msg.flag === PaxosMsgFlag.SendLearnValueNeedAck) {
      // Every valid value of a stream proves the stream alive: push the next AskforLearn back.
      this.resetAskforLearnTimer();
      this.pendingAckTo = msg.nodeId;
    }
  }

  /**
   * Sends SendLearnValue_Ack when due. The instance calls it after it has executed what was
   * learned, so the ack reports the new now instance id (seed: Learner::SendLearnValue_Ack).
   */
  flushAck(): void {
    const to = this.pendingAckTo;
    if (to === 0) return;
    this.pendingAckTo = 0;
    if (this.instanceId < this.lastAckInstanceId + this.options.receiverAckLead) return;
    this.lastAckInstanceId = this.instanceId;
    this.counters.acksSent++;
    this.host.send(
      to,
      paxosMsg({
        msgType: PaxosMsgType.SendLearnValueAck,
        instanceId: this.instanceId,
        nodeId: this.host.nodeId,
      }),
    );
  }

  /** Steady state (seed: Learner::OnProposerSendSuccess): learn what my acceptor accepted. */
  private onProposerSendSuccess(msg: PaxosMsg): void {
    if (msg.instanceId !== this.instanceId) {
      this.counters.lagMessages++;
      return;
    }
    const accepted = this.host.acceptedState();
    if (isNullBallot(accepted.ballot)) return; // accepted nothing yet
    if (!ballotEquals(accepted.ballot, { proposalId: msg.proposalId, nodeId: msg.nodeId })) return;
    if (this.state.isLearned) return;
    this.state.learnWithoutWrite(accepted.ballot, accepted.value, accepted.checksum);
    this.counters.valuesLearnedFromProposer++;
    this.transmitToFollowers(accepted.ballot, accepted.value);
  }

  /** Forwards what I learned to every node that follows me (seed: TransmitToFollower). */
  private transmitToFollowers(ballot: Ballot, value: Uint8Array): void {
    const followers = this.host.followers();
    if (followers.length === 0) return;
    const msg = paxosMsg({
      msgType: PaxosMsgType.SendLearnValue,
      instanceId: this.instanceId,
      nodeId: this.host.nodeId,
      proposalId: ballot.proposalId,
      proposalNodeId: ballot.nodeId,
      value,
      lastChecksum: this.host.lastChecksum(),
    });
    for (const follower of followers) this.host.send(follower, msg);
  }

  private readRecordOrUndefined(instanceId: number): AcceptorRecord | undefined {
    try {
      return this.host.store.get(this.host.group, instanceId);
    } catch (error) {
      this.host.event('read-failed', { instanceId, error: String(error) });
      return undefined;
    }
  }
}
