// The Learner (seed: Learner, Instance::ReceiveMsgForLearner). It learns the current instance's
// value in steady state from ProposerSendSuccess, and when this node is behind it catches up:
//
//   asker                                   peer that is ahead
//   AskforLearn(my now id) ───────────────► OnAskforLearn: sender.prepare()
//                          ◄─────────────── SendNowInstanceID(asker id, peer now id, min chosen)
//   ComfirmAskforLearn ───────────────────► sender.confirm(): stream starts
//   (ComfirmAskforLearn+Decline to the other peers that prepared: they free their stream)
//                          ◄─────────────── SendLearnValue batches (NeedAck, lastChecksum, each
//                                           value with its ballot and checksum)
//   SendLearnValue_Ack once per batch ────► sender.ack(): that peer's window moves
//   SendLearnValue_Ack+Gap on a gap ──────► the stream rewinds (NACK)
//
// This file asks, answers (the sender's side) and keeps the timers. The receiving side (chain
// check, putMany, acks) is receiver.ts; the catch-up accounting (status().catchUp) is catch-up.ts;
// what the members reported of their progress is reports.ts; the sender's stream runs on the
// host's loop through sender-driver.ts; the host port is port.ts.
//
// One idea, kept in one file though it passes 600 lines (issue 21): whom to ask and when,
// finishing a catch-up at once by asking the member that reported more (issue 22) included,
// share the ask state and timers; splitting them would pass that state across files.
//
// Sans-IO: everything outside comes through LearnerPort (port.ts); no clock, timer or socket of
// its own.
import type { AcceptorRecord } from '@tspaxos/crc-wasm';
import {
  type LentFrame,
  type PaxosMsg,
  PaxosMsgFlag,
  PaxosMsgType,
  paxosMsg,
} from '@tspaxos/transport';
import { type Ballot, ballotEquals, isNullBallot } from '@tspaxos/core';
import type { SenderBudget } from './budget';
import { isExpectedReadFailure } from './errors';
import { type LearnerOptions, resolveLearnerOptions } from './options';
import { CatchUpTracker } from './catch-up';
import type { LearnerSender } from './sender';
import { SenderDriver } from './sender-driver';
import type { LearnerPort } from './port';
import { type LearnerFaults, LearnerReceiver } from './receiver';
import { PeerReports } from './reports';
import { LearnerState } from './state';
import type { LearnerCarry, LearnerCounters, LearnerStatus, ReadFailure } from './status';

export class Learner {
  readonly options: LearnerOptions;
  /** The first instance this node has not learned (PhxPaxos Base::m_llInstanceID). */
  instanceId = 0;
  readonly state: LearnerState;
  readonly sender: LearnerSender;
  readonly budget: SenderBudget;
  /** Runs the sender on the host's loop (its timer, its idle-time slices). */
  private readonly driver: SenderDriver;
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
    batchesLearned: 0,
    nacksSent: 0,
    stalls: 0,
    declinesSent: 0,
    catchUpsStarted: 0,
    catchUpsFinished: 0,
    readFailures: 0,
    asksToPeerAhead: 0,
    asksOnDemand: 0,
  };

  private readonly reports: PeerReports;
  private isLearning = false;
  /** The peer we confirmed (0 when not learning). */
  private learningFromNodeId = 0;
  private learningSinceMs = 0;
  /**
   * The confirmed peer's now instance id as it last told us (its SendNowInstanceID, raised by
   * each batch's nowInstanceId): its stream ends there unless it learns more meanwhile.
   */
  private servingNowInstanceId = 0;
  /** The last AskforLearn sent to one peer ahead (askPeerAhead): whom, at which id, when. */
  private askedAhead: { nodeId: number; instanceId: number; atMs: number } | undefined;
  private readonly catchUp: CatchUpTracker;
  private readonly receiver: LearnerReceiver;
  private lastReadFailure: ReadFailure | undefined;
  private cancelAskTimer: (() => void) | undefined;
  private cancelStallTimer: (() => void) | undefined;
  /** When the last AskforLearn went to every peer (learnNow's bound). */
  private lastBroadcastAtMs = Number.NEGATIVE_INFINITY;
  private stopped = false;

  /**
   * `carried`: what a learner the group replaced hands over (Learner.handOver): after a checkpoint
   * install the group restarts with a new learner, and its counters and the catch-up under way go
   * on (the install is one step of that catch-up; counters a metric scrapes never go back).
   */
  constructor(
    private readonly host: LearnerPort,
    options: Partial<LearnerOptions> = {},
    faults: LearnerFaults = {},
    carried?: LearnerCarry,
  ) {
    this.options = resolveLearnerOptions(options);
    this.state = new LearnerState(host.store, host.group);
    this.reports = new PeerReports(() => host.membership.peers());
    if (carried !== undefined) Object.assign(this.counters, carried.counters);
    this.catchUp =
      carried?.catchUp ?? new CatchUpTracker(this.options.rateWindowMs, () => host.runtime.now());
    this.receiver = new LearnerReceiver(
      {
        nodeId: host.nodeId,
        group: host.group,
        store: host.store,
        instanceId: () => this.instanceId,
        now: () => host.runtime.now(),
        send: (to, msg) => host.send(to, msg),
        lastChecksum: () => host.lastChecksum(),
        promiseBallot: () => host.acceptor.promiseBallot(),
        event: (name, fields) => host.runtime.event(name, fields),
        learned: (instances, bytes) => this.catchUp.learned(instances, bytes),
        releaseLentFrames: host.releaseLentFrames === true,
      },
      this.options,
      this.state,
      this.counters,
      faults,
    );
    this.driver = new SenderDriver(
      host,
      this.options,
      () => this.instanceId,
      (id) => this.storedChecksum(id),
    );
    this.sender = this.driver.sender;
    this.budget = this.driver.budget;
  }

  /** Starts learning: asks at once (PhxPaxos waits a full interval first), then on the timer. */
  start(): void {
    // A carried catch-up whose target the install already passed ends here.
    this.checkCaughtUp();
    this.askforLearnNoop();
  }

  /** What the learner that replaces this one goes on with (constructor `carried`); stops this one. */
  handOver(): LearnerCarry {
    this.stop();
    return { counters: { ...this.counters }, catchUp: this.catchUp };
  }

  /**
   * Asks every peer at once what the AskforLearn timer would ask at its next turn, for a host that
   * needs what the group chose now (apps/node: a membership change waiting to learn that this node
   * is a voter; without a master nothing else brings it before that turn). Nothing while a stream
   * is alive (it brings what its peer has), and at most once per learnerStallMs, however often it
   * is called. True when it asked.
   */
  learnNow(): boolean {
    if (this.stopped) return false;
    if (this.host.runtime.now() - this.lastBroadcastAtMs < this.options.learnerStallMs)
      return false;
    if (!this.askUnlessStreaming()) return false;
    this.counters.asksOnDemand++;
    return true;
  }

  /**
   * Asks every peer now (and re-arms the timer) unless a stream is alive: confirmed and not
   * silent for learnerStallMs. True when it asked.
   */
  private askUnlessStreaming(): boolean {
    const last = Math.max(this.receiver.lastStreamValueAtMs, this.learningSinceMs);
    if (this.isLearning && this.host.runtime.now() - last < this.options.learnerStallMs)
      return false;
    this.resetAskforLearnTimer();
    this.stopLearning();
    this.askforLearn();
    return true;
  }

  stop(): void {
    this.stopped = true;
    this.cancelAskTimer?.();
    this.cancelStallTimer?.();
    this.cancelAskTimer = undefined;
    this.cancelStallTimer = undefined;
    this.driver.stop();
  }

  /**
   * Moves to the next instance (seed: Learner::NewInstance). A value already learned for it (the
   * rest of a batch) becomes the current learned value at once.
   */
  newInstance(): void {
    this.instanceId++;
    this.state.reset();
    this.receiver.learnNextPending();
    this.checkCaughtUp();
    this.askAheadIfStreamRanOut();
  }

  /**
   * True when this node is not known to be behind anyone (seed: Learner::IsIMLatest, which trusts
   * the highest id any node ever reported). Instance proposes only while this holds, so one
   * peer's inflated id (a bug, a damaged meta) stopped every node that heard it from proposing
   * for good (issue 17). Now a member's report counts until a stream from that member stalls
   * short of it (it could not back it up), and a majority's view always counts: a member that
   * keeps claiming an id it does not have holds us back only until we ask it to stream (it
   * answers our next AskforLearn) and its stream stalls (learnerStallMs).
   * Proposing while wrongly "latest" is safe: the Prepare round finds what a majority accepted.
   */
  isLatest(): boolean {
    return this.instanceId + 1 >= Math.max(this.quorumSeenInstanceId, this.backedSeenInstanceId);
  }

  /** The highest now instance id a member reported and did not fail to back up. */
  get backedSeenInstanceId(): number {
    return this.reports.backedSeenInstanceId;
  }

  /** The highest now instance id a majority of the members reached, as far as they told us. */
  get quorumSeenInstanceId(): number {
    return this.reports.quorumSeenInstanceId(this.instanceId);
  }

  /** Whether a majority of the members reached past `instanceId`, as far as they told us. */
  majorityPast(instanceId: number): boolean {
    return this.reports.majorityPast(instanceId, this.instanceId);
  }

  get seenInstanceId(): number {
    return this.reports.seenInstanceId;
  }

  /**
   * Dispatches a learner message (seed: Instance::ReceiveMsgForLearner). `lent`: the receive
   * buffer the message lies in, released once nothing holds its values (releaseLentFrames).
   */
  async handle(msg: PaxosMsg, lent?: LentFrame): Promise<void> {
    switch (msg.msgType) {
      case PaxosMsgType.AskforLearn:
        return this.onAskforLearn(msg);
      case PaxosMsgType.SendLearnValue:
        if (msg.nodeId === this.learningFromNodeId && msg.nowInstanceId > this.servingNowInstanceId)
          this.servingNowInstanceId = msg.nowInstanceId;
        return this.receiver.receive(msg, lent);
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
    const now = this.host.runtime.now();
    return {
      instanceId: this.instanceId,
      highestSeenInstanceId: this.reports.seenInstanceId,
      highestSeenFromNodeId: this.reports.seenFromNodeId,
      isLearning: this.isLearning,
      lastAckInstanceId: this.receiver.lastAckInstanceId,
      catchUp: this.catchUp.status(now, this.instanceId),
      lastCatchUp: this.catchUp.lastSummary(),
      counters: { ...this.counters },
      lastReadFailure: this.lastReadFailure && { ...this.lastReadFailure },
      sender: {
        peers: this.sender.peerStatus(now),
        budgetUsedBytes: this.budget.usedBytes,
        budgetCapacityBytes: this.budget.capacityBytes,
        counters: { ...this.sender.counters },
      },
    };
  }

  // ---- timers ---------------------------------------------------------------------------

  /** Re-arms the AskforLearn timer (seed: Reset_AskforLearn_Noop). */
  resetAskforLearnTimer(delayMs?: number): void {
    this.cancelAskTimer?.();
    const delay = delayMs ?? this.askInterval();
    this.cancelAskTimer = this.host.runtime.schedule(delay, () => this.askforLearnNoop());
  }

  private askInterval(): number {
    const follower = this.host.membership.followToNodeId() !== undefined;
    const o = this.options;
    const interval = follower ? o.followerAskforLearnIntervalMs : o.askforLearnIntervalMs;
    const jitter = follower ? o.followerAskforLearnJitterMs : o.askforLearnJitterMs;
    return interval + Math.floor(this.host.runtime.random() * jitter);
  }

  /**
   * Timer: stop waiting on a confirmed sender and ask everyone again (seed: AskforLearn_Noop).
   * The seed re-arms this timer on every streamed value; here a live stream only moves it on
   * when it fires (one timer operation per interval, not one per value).
   */
  private askforLearnNoop(): void {
    if (this.stopped) return;
    const quietMs = this.host.runtime.now() - this.receiver.lastStreamValueAtMs;
    const interval = this.askInterval();
    if (quietMs < interval) {
      // A stream is alive: the next ask is one interval after its last value, as in the seed.
      this.resetAskforLearnTimer(interval - quietMs);
      return;
    }
    this.resetAskforLearnTimer(interval);
    this.stopLearning();
    this.askforLearn();
  }

  /** While learning: a stream silent for learnerStallMs is given up, and we ask everyone. */
  private armStallTimer(delayMs: number): void {
    this.cancelStallTimer?.();
    this.cancelStallTimer = this.host.runtime.schedule(delayMs, () => {
      this.cancelStallTimer = undefined;
      if (!this.isLearning || this.stopped) return;
      const last = Math.max(this.receiver.lastStreamValueAtMs, this.learningSinceMs);
      const quietMs = this.host.runtime.now() - last;
      if (quietMs < this.options.learnerStallMs) {
        this.armStallTimer(this.options.learnerStallMs - quietMs);
        return;
      }
      this.counters.stalls++;
      this.host.runtime.event('learner-stalled', { from: this.learningFromNodeId, quietMs });
      this.stopLearning();
      this.resetAskforLearnTimer();
      this.askforLearn();
    });
  }

  private stopLearning(): void {
    // Given up on a stream (it stalled, or went quiet for an ask interval) short of what its
    // member claimed: that claim no longer holds us back from proposing. The catch-up stays open
    // (a slow stream, a 64 MiB frame under way, is given up this way too).
    if (this.isLearning && this.reports.markUnbacked(this.learningFromNodeId, this.instanceId))
      this.host.latestMayHaveChanged?.();
    this.isLearning = false;
    this.learningFromNodeId = 0;
    this.servingNowInstanceId = 0;
    this.cancelStallTimer?.();
    this.cancelStallTimer = undefined;
  }

  // ---- asking ---------------------------------------------------------------------------

  private askforLearn(): void {
    const msg = this.askforLearnMsg();
    this.counters.askforLearnSent++;
    this.lastBroadcastAtMs = this.host.runtime.now();
    for (const peer of this.host.membership.peers()) this.host.send(peer, msg);
  }

  private askforLearnMsg(): PaxosMsg {
    const followTo = this.host.membership.followToNodeId();
    return paxosMsg({
      msgType: PaxosMsgType.AskforLearn,
      instanceId: this.instanceId,
      nodeId: this.host.nodeId,
      // PhxPaxos reuses proposalNodeId to say whom a follower follows.
      proposalNodeId: followTo ?? 0,
      flag: this.host.variables.masterAnchored?.() === false ? PaxosMsgFlag.AskMasterVariables : 0,
    });
  }

  /**
   * A member showed its now instance id in a message of its own: a Prepare or Accept for
   * `nowInstanceId` (its proposer works there, so every instance before it is chosen and learned
   * there; a master renewal is one too). When that is past me and no stream will bring it, ask
   * that member now instead of at the next AskforLearn (2.5–3 s): a proposer that lost an
   * instance to another proposer learns it at once (issue 22). Not a report for isLatest(): a
   * member that dies after its Prepare never answers, and its id would hold us back for good.
   */
  peerIsAt(nodeId: number, nowInstanceId: number): void {
    if (this.stopped || nowInstanceId <= this.instanceId) return;
    if (nodeId === this.learningFromNodeId) {
      // The peer streaming to us has more: its stream goes on (its sender reads its now id).
      this.servingNowInstanceId = Math.max(this.servingNowInstanceId, nowInstanceId);
      return;
    }
    if (this.isLearning && this.instanceId < this.servingNowInstanceId) return;
    this.askPeerAhead(nodeId);
  }

  /**
   * The peer we learn from has streamed everything it told us it has, and a member reported more
   * (its SendNowInstanceID that we declined, most often): ask that member now rather than wait
   * for learnerStallMs of silence and ask everyone (issue 22: a fresh node beside two writers one
   * instance apart waited 1 s for the last instance). PhxPaxos (src/algorithm/learner.cpp,
   * Learner::SetSeenInstanceID) keeps who reported the highest id but asks only by broadcast,
   * on its AskforLearn timer (AskforLearn_Noop), and OnSendNowInstanceID confirms whichever peer
   * answers first while it is not learning.
   */
  private askAheadIfStreamRanOut(): void {
    if (!this.isLearning || this.instanceId < this.servingNowInstanceId) return;
    const ahead = this.reports.memberAhead(this.instanceId);
    if (ahead === undefined || ahead === this.learningFromNodeId) return;
    this.askPeerAhead(ahead);
  }

  /**
   * AskforLearn to one peer ahead of me. Its answer is confirmed even while a stream runs, if that
   * stream ran out (onSendNowInstanceId); the stall timer stays armed, so a lost ask or answer
   * costs what it did before (learnerStallMs, or the next AskforLearn when not learning). At most
   * one per instance id per learnerStallMs.
   */
  private askPeerAhead(nodeId: number): void {
    const now = this.host.runtime.now();
    const last = this.askedAhead;
    if (
      last !== undefined &&
      last.instanceId === this.instanceId &&
      now - last.atMs < this.options.learnerStallMs
    )
      return;
    this.askedAhead = { nodeId, instanceId: this.instanceId, atMs: now };
    this.counters.asksToPeerAhead++;
    this.host.runtime.event('asked-peer-ahead', {
      to: nodeId,
      instanceId: this.instanceId,
      learningFrom: this.learningFromNodeId,
    });
    this.host.send(nodeId, this.askforLearnMsg());
  }

  /** A peer asks to learn from me (seed: Learner::OnAskforLearn). */
  private onAskforLearn(msg: PaxosMsg): void {
    this.counters.askforLearnReceived++;
    this.reports.setSeen(msg.instanceId, msg.nodeId);
    if (msg.proposalNodeId === this.host.nodeId) this.host.membership.addFollower(msg.nodeId);
    if (msg.instanceId >= this.instanceId) {
      // Level with me, but its master state is unknown (it installed a checkpoint): my variables
      // (SendNowInstanceID applies them before anything else; the rest is a lag message there).
      // Behind it, mine would miss operations it passed: it needs a peer at least as far.
      if (
        (msg.flag & PaxosMsgFlag.AskMasterVariables) !== 0 &&
        msg.instanceId === this.instanceId
      ) {
        const master = this.host.variables.master?.();
        if (master !== undefined) {
          const reply = paxosMsg({
            msgType: PaxosMsgType.SendNowInstanceID,
            instanceId: msg.instanceId,
            nodeId: this.host.nodeId,
            nowInstanceId: this.instanceId,
            minChosenInstanceId: this.host.minChosenInstanceId(),
          });
          reply.masterVariables = master;
          // Its membership is as stale as its master state (the install kept both from before).
          const system = this.host.variables.system();
          if (system !== undefined) reply.systemVariables = system;
          this.host.send(msg.nodeId, reply);
        }
      }
      return;
    }

    const now = this.host.runtime.now();
    if (msg.instanceId >= this.host.minChosenInstanceId()) {
      if (!this.sender.prepare(msg.instanceId, msg.nodeId, now)) {
        this.counters.senderBusy++;
        if (msg.instanceId === this.instanceId - 1) {
          // Busy with others, but this asker misses only one value: just send it.
          const record = this.readRecordOrUndefined(msg.instanceId);
          if (record !== undefined) this.sendLearnValue(msg.nodeId, record, 0, false);
        }
        this.driver.armTimer();
        return;
      }
      this.driver.armTimer();
    }
    this.sendNowInstanceId(
      msg.instanceId,
      msg.nodeId,
      (msg.flag & PaxosMsgFlag.AskMasterVariables) !== 0,
    );
  }

  /** `refresh`: the asker installed a checkpoint and needs my variables whatever the gap. */
  private sendNowInstanceId(askerInstanceId: number, to: number, refresh: boolean): void {
    const reply = paxosMsg({
      msgType: PaxosMsgType.SendNowInstanceID,
      instanceId: askerInstanceId,
      nodeId: this.host.nodeId,
      nowInstanceId: this.instanceId,
      minChosenInstanceId: this.host.minChosenInstanceId(),
    });
    if (refresh || this.instanceId - askerInstanceId > this.options.variablesGapInstances) {
      const system = this.host.variables.system();
      if (system !== undefined) reply.systemVariables = system;
    }
    // The master variables ride on every reply, not only past the gap (PhxPaxos's rule): an
    // asker that installed a checkpoint has forgotten its own and needs them to hold a lease
    // again; a few dozen bytes per ask, and an asker adopts them only when they are newer.
    const master = this.host.variables.master?.();
    if (master !== undefined) reply.masterVariables = master;
    this.host.send(to, reply);
  }

  /** A peer told me how far it is (seed: Learner::OnSendNowInstanceID). */
  private onSendNowInstanceId(msg: PaxosMsg): void {
    this.reports.setSeen(msg.nowInstanceId, msg.nodeId);
    // The master first: a far-behind node learns who the master is before replaying the log
    // (seed: OnSendNowInstanceID, GetMasterSM()->UpdateByCheckpoint).
    // The peer's variables reflect its log up to its now instance id: the host refuses those of a
    // peer behind me (they miss master operations I passed; trusting them risks two masters).
    if (
      msg.masterVariables.length > 0 &&
      this.host.variables.applyMaster?.(msg.masterVariables, msg.nowInstanceId)
    )
      this.host.runtime.event('master-variables-changed', { from: msg.nodeId });
    if (msg.systemVariables.length > 0 && this.host.variables.applySystem(msg.systemVariables)) {
      this.host.runtime.event('system-variables-changed', { from: msg.nodeId });
      // Membership changed: everything is re-evaluated on the next ask (PhxPaxos skips the
      // message too), and that ask goes now, to the new members: waiting for the timer cost a
      // node that just joined an ask interval per change it adopted (the other replies that arrive
      // meanwhile find a stream confirmed, or are declined).
      this.askUnlessStreaming();
      return;
    }
    if (msg.instanceId !== this.instanceId || msg.nowInstanceId <= this.instanceId) {
      this.counters.lagMessages++;
      return;
    }
    if (msg.minChosenInstanceId > this.instanceId) {
      this.host.needCheckpoint(msg.nodeId, msg.minChosenInstanceId);
      return;
    }
    // The peer we asked because our stream ran out below its id (askPeerAhead) takes over.
    const asked = this.askedAhead;
    const takesOver =
      asked?.nodeId === msg.nodeId &&
      asked.instanceId === this.instanceId &&
      this.instanceId >= this.servingNowInstanceId;
    if (this.isLearning && !takesOver) {
      if (msg.nodeId !== this.learningFromNodeId) {
        // It prepared a stream for us that we will not use: free it now, not after its timeout.
        this.counters.declinesSent++;
        this.sendComfirm(msg.nodeId, PaxosMsgFlag.ComfirmDecline);
      }
      return;
    }
    this.sendComfirm(msg.nodeId, 0);
    const now = this.host.runtime.now();
    this.isLearning = true;
    this.learningFromNodeId = msg.nodeId;
    this.servingNowInstanceId = msg.nowInstanceId;
    this.learningSinceMs = now;
    this.armStallTimer(this.options.learnerStallMs);
    this.startCatchUp(msg.nodeId, msg.nowInstanceId, now);
  }

  private sendComfirm(to: number, flag: number): void {
    this.host.send(
      to,
      paxosMsg({
        msgType: PaxosMsgType.ComfirmAskforLearn,
        instanceId: this.instanceId,
        nodeId: this.host.nodeId,
        flag,
      }),
    );
  }

  /** The asker picked me, or declined me (seed: Learner::OnComfirmAskForLearn). */
  private onComfirmAskforLearn(msg: PaxosMsg): void {
    if (msg.flag === PaxosMsgFlag.ComfirmDecline) {
      if (!this.sender.decline(msg.instanceId, msg.nodeId)) this.counters.lagMessages++;
      this.driver.armTimer();
      return;
    }
    const ok = this.sender.confirm(msg.instanceId, msg.nodeId, this.host.runtime.now());
    if (!ok) this.counters.lagMessages++;
    else {
      this.host.runtime.event('sender-confirmed', {
        to: msg.nodeId,
        from: msg.instanceId,
        until: this.instanceId,
      });
      this.driver.continueSoon();
    }
    this.driver.armTimer();
  }

  private onSendLearnValueAck(msg: PaxosMsg): void {
    const now = this.host.runtime.now();
    this.sender.ack(msg.instanceId, msg.nodeId, msg.flag === PaxosMsgFlag.AckGap, now);
    // The window moved: the next slice sends, in the host's idle time (never inline here, so
    // a burst of acks cannot chain sender turns ahead of the group's own messages).
    if (this.sender.isSending) this.driver.continueSoon();
    this.driver.armTimer();
  }

  /** Called after every learned instance: a stream may now send further. */
  pumpSender(): void {
    if (this.sender.isSending) this.driver.continueSoon();
  }

  // ---- catch-up progress ------------------------------------------------------------------

  private startCatchUp(from: number, target: number, nowMs: number): void {
    if (!this.catchUp.start(from, target, this.instanceId, nowMs)) return;
    this.counters.catchUpsStarted++;
    this.host.notify?.({
      type: 'catchUpStarted',
      fromNodeId: from,
      beginInstanceId: this.instanceId,
      targetInstanceId: target,
    });
  }

  /** A catch-up ends when this node has executed up to the highest now id a peer reported. */
  private checkCaughtUp(): void {
    const summary = this.catchUp.finishIfReached(this.instanceId, this.reports.seenInstanceId);
    if (summary === undefined) return;
    this.counters.catchUpsFinished++;
    // Nothing left to stream: a later silence is not a stall.
    this.stopLearning();
    this.host.notify?.({ type: 'caughtUp', ...summary });
  }

  // ---- learning -------------------------------------------------------------------------

  /** One value in the seed's form (TransmitToFollower, the busy sender's single value). */
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

  /**
   * Sends SendLearnValue_Ack when due. The instance calls it after it has executed what was
   * learned, so the ack reports the new now instance id (seed: Learner::SendLearnValue_Ack).
   */
  flushAck(): void {
    this.receiver.flushAck();
  }

  /** Steady state (seed: Learner::OnProposerSendSuccess): learn what my acceptor accepted. */
  private onProposerSendSuccess(msg: PaxosMsg): void {
    if (msg.instanceId !== this.instanceId) {
      this.counters.lagMessages++;
      return;
    }
    const accepted = this.host.acceptor.acceptedState();
    if (isNullBallot(accepted.ballot)) return; // accepted nothing yet
    if (!ballotEquals(accepted.ballot, { proposalId: msg.proposalId, nodeId: msg.nodeId })) return;
    if (this.state.isLearned) return;
    this.state.learnWithoutWrite(accepted.ballot, accepted.value, accepted.checksum);
    this.counters.valuesLearnedFromProposer++;
    this.transmitToFollowers(accepted.ballot, accepted.value);
  }

  /** Forwards what I learned to every node that follows me (seed: TransmitToFollower). */
  private transmitToFollowers(ballot: Ballot, value: Uint8Array): void {
    const followers = this.host.membership.followers();
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

  /** The chain checksum of a stored instance (0 when it is not stored or unreadable). */
  private storedChecksum(instanceId: number): number {
    return this.readRecordOrUndefined(instanceId)?.checksum ?? 0;
  }

  /**
   * A stored record; undefined when it is not there, or (counted in readFailures) when it is
   * damaged or the disk fails the read. Any other error is a bug and goes up.
   */
  private readRecordOrUndefined(instanceId: number): AcceptorRecord | undefined {
    try {
      return this.host.store.get(this.host.group, instanceId);
    } catch (error) {
      if (!isExpectedReadFailure(error)) throw error;
      this.counters.readFailures++;
      this.lastReadFailure = { instanceId, code: error.code, message: error.message };
      this.host.runtime.event('read-failed', {
        instanceId,
        code: error.code,
        error: error.message,
      });
      return undefined;
    }
  }
}
