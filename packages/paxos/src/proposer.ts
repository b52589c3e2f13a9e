// The proposer (PhxPaxos Proposer, ProposerState, MsgCounter): prepare and accept phases with
// doubling timeouts, skipping prepare while its last ballot was not pre-empted (multi-Paxos's
// stable leader without a leader lease), and adopting the highest pre-accepted value it is told.
import { assert, type Ballot, compareBallots, NULL_BALLOT, isNullBallot } from '@tspaxos/core';
import { type PaxosMsg, PaxosMsgType, paxosMsg } from '@tspaxos/transport';
import type { ProposerFaults } from './faults';
import type { PaxosOptions } from './options';
import { bytesEqual } from './value';

export interface ProposerPort {
  readonly nodeId: number;
  /** Current voting members (quorums are majorities of these). */
  members(): readonly number[];
  /** Sends to every member, this node included (its acceptor answers like any other). */
  broadcast(msg: PaxosMsg): void;
  schedule(delayMs: number, fn: () => void): () => void;
  /** Uniform in [0, 1): the jitter of a retry after a lost round. */
  random(): number;
  /**
   * False when the transport knows the member unreachable (its connection failed and none opened
   * since): its reply will not come, so a round it alone could still save is lost at once.
   */
  reachable(nodeId: number): boolean;
  lastChecksum(): number;
  /** The ballot the previous instance was chosen with; sent along so acceptors can learn it. */
  previousChosenBallot(): Ballot;
  /** Diagnostics (prepare/accept decisions) for logs and simulator traces. */
  event(name: string, fields: Record<string, unknown>): void;
  /** A majority accepted `proposalId` for `instanceId`: tell the learners. */
  chosen(instanceId: number, proposalId: number): void;
}

export interface ProposerCounters {
  prepares: number;
  accepts: number;
  prepareTimeouts: number;
  acceptTimeouts: number;
  rejected: number;
  skippedPrepares: number;
}

/** Replies of one round, by node (PhxPaxos MsgCounter). */
class RoundCounter {
  readonly received = new Set<number>();
  readonly granted = new Set<number>();
  readonly rejected = new Set<number>();

  /**
   * Clears only sets that hold something: V8's Set#clear allocates a new table even for an empty
   * set, and a streamed catch-up resets the round once per learned instance (its profile showed
   * it among the receiver's top costs).
   */
  reset(): void {
    if (this.received.size > 0) this.received.clear();
    if (this.granted.size > 0) this.granted.clear();
    if (this.rejected.size > 0) this.rejected.clear();
  }
}

export class Proposer {
  /** Moved only by startAt() and newInstance() (the group keeps the roles aligned). */
  private nowInstanceId = 0;
  /** This node's proposal id; strictly above any it has seen rejected with. */
  proposalId = 1;
  value: Uint8Array | undefined;
  readonly counters: ProposerCounters = {
    prepares: 0,
    accepts: 0,
    prepareTimeouts: 0,
    acceptTimeouts: 0,
    rejected: 0,
    skippedPrepares: 0,
  };

  private highestOtherProposalId = 0;
  private highestOtherPreAccept: Ballot = NULL_BALLOT;
  private preparing = false;
  private accepting = false;
  private canSkipPrepare = false;
  private wasRejected = false;
  /** An Accept left this proposer for the current instance. */
  private acceptSentThisInstance = false;
  /** The ballot and value of the last Accept sent for the current instance (one ballot, one value). */
  private lastAcceptProposalId = 0;
  private lastAcceptValue: Uint8Array | undefined;
  /**
   * The proposal id a majority last promised (in this instance or an earlier one: a prepare
   * covers every later instance). An Accept carries no other id (Paxos phase 2 needs phase 1).
   */
  private preparedProposalId = 0;
  private readonly round = new RoundCounter();
  private cancelTimer: (() => void) | undefined;
  private readonly timeoutMs: { prepare: number; accept: number };

  constructor(
    private readonly host: ProposerPort,
    private readonly options: PaxosOptions,
    private readonly faults: ProposerFaults = {},
  ) {
    this.timeoutMs = { prepare: options.prepareTimeoutMs, accept: options.acceptTimeoutMs };
  }

  get instanceId(): number {
    return this.nowInstanceId;
  }

  /** Starts at `instanceId` (the group's start or restart, with the learner and acceptor). */
  startAt(instanceId: number): void {
    this.nowInstanceId = instanceId;
  }

  /** After a restart: never reuse a proposal id this node's acceptor has promised. */
  setStartProposalId(proposalId: number): void {
    this.proposalId = Math.max(this.proposalId, proposalId);
  }

  get isWorking(): boolean {
    return this.preparing || this.accepting;
  }

  get phase(): 'idle' | 'preparing' | 'accepting' {
    return this.preparing ? 'preparing' : this.accepting ? 'accepting' : 'idle';
  }

  /** Proposes `value` for the current instance (seed: Proposer::NewValue). */
  newValue(value: Uint8Array): void {
    this.value = value;
    this.timeoutMs.prepare = this.options.prepareTimeoutMs;
    this.timeoutMs.accept = this.options.acceptTimeoutMs;
    if (this.acceptSentThisInstance) {
      // An Accept with the current ballot may already sit at some acceptors with the old value:
      // a different value needs a new ballot, or one ballot would carry two values (found by
      // @tspaxos/sim, seed 122). PhxPaxos never gets here with a different value: its
      // Proposer::NewValue (src/algorithm/proposer.cpp) keeps the value already set for the
      // instance and re-sends it; our committer hands over the next waiting value instead.
      this.prepare(true);
    } else if (this.canSkipPrepare && !this.wasRejected) {
      this.counters.skippedPrepares++;
      this.accept();
    } else {
      this.prepare(this.wasRejected);
    }
  }

  /** Forgets the finished instance (seed: Proposer::InitForNewPaxosInstance). */
  newInstance(): void {
    this.nowInstanceId++;
    this.acceptSentThisInstance = false;
    this.lastAcceptValue = undefined;
    this.round.reset();
    this.highestOtherProposalId = 0;
    this.value = undefined;
    this.exit();
  }

  /** Gives up the current round (commit timeout, or the group stopping). */
  exit(): void {
    this.preparing = false;
    this.accepting = false;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
  }

  /** After a failed execution the next value must prepare again (PhxPaxos CancelSkipPrepare). */
  cancelSkipPrepare(): void {
    this.canSkipPrepare = false;
  }

  private majority(): number {
    return Math.floor(this.host.members().length / 2) + 1;
  }

  private isMember(nodeId: number): boolean {
    return this.host.members().includes(nodeId);
  }

  private prepare(needNewBallot: boolean): void {
    this.exit();
    this.preparing = true;
    this.canSkipPrepare = false;
    this.wasRejected = false;
    this.highestOtherPreAccept = NULL_BALLOT;
    if (needNewBallot) this.proposalId = Math.max(this.proposalId, this.highestOtherProposalId) + 1;
    else if (this.acceptSentThisInstance && this.lastAcceptProposalId === this.proposalId) {
      // Preparing again the id an Accept already carried (its timeout, no rejection): that Accept
      // may sit at acceptors outside this round's majority, so the id keeps its value. Our own
      // (proposalId, nodeId) outranks any pre-accept a promiser of this id can report, which a
      // lower ballot's value must not displace. PhxPaxos's Proposer::Prepare resets the highest
      // pre-accept here too, so one ballot could carry two values (proposer.test.ts).
      this.highestOtherPreAccept = { proposalId: this.proposalId, nodeId: this.host.nodeId };
      this.value = this.lastAcceptValue;
    }
    this.round.reset();
    this.counters.prepares++;
    this.host.event('prepare', { instanceId: this.nowInstanceId, proposalId: this.proposalId });
    this.armTimer('prepare');
    this.host.broadcast(
      paxosMsg({
        msgType: PaxosMsgType.Prepare,
        instanceId: this.nowInstanceId,
        nodeId: this.host.nodeId,
        proposalId: this.proposalId,
        ...this.previousChosen(),
      }),
    );
  }

  onPrepareReply(msg: PaxosMsg): void {
    if (!this.preparing || msg.proposalId !== this.proposalId || !this.isMember(msg.nodeId)) return;
    if (this.countReply(msg)) {
      const preAccept = { proposalId: msg.preAcceptId, nodeId: msg.preAcceptNodeId };
      if (!isNullBallot(preAccept) && compareBallots(preAccept, this.highestOtherPreAccept) > 0) {
        // Paxos: adopt the value of the highest ballot any promiser accepted.
        this.highestOtherPreAccept = preAccept;
        if (this.faults.proposerIgnoresAcceptedValues !== true) this.value = msg.value;
        this.host.event('adopt', {
          instanceId: this.nowInstanceId,
          from: msg.nodeId,
          preAccept,
          valueBytes: msg.value.length,
        });
      }
    }
    if (this.round.granted.size >= this.majority()) {
      this.canSkipPrepare = true;
      this.preparedProposalId = this.proposalId;
      this.accept();
    } else if (this.roundLost()) {
      this.armTimer('prepare', this.retryDelayMs());
    }
  }

  /** Records a reply of the current round; true when it grants, false when it rejects. */
  private countReply(msg: PaxosMsg): boolean {
    this.round.received.add(msg.nodeId);
    if (msg.rejectByPromiseId === 0) {
      this.round.granted.add(msg.nodeId);
      return true;
    }
    this.round.rejected.add(msg.nodeId);
    this.wasRejected = true;
    this.counters.rejected++;
    this.highestOtherProposalId = Math.max(this.highestOtherProposalId, msg.rejectByPromiseId);
    return false;
  }

  /**
   * A majority rejected, or everyone answered without a majority granting (PhxPaxos MsgCounter),
   * or (ours) a member rejected and the members still to answer that the transport can reach
   * cannot make the grants a majority. PhxPaxos waits out the phase's timeout in that last case:
   * with a member down, two proposers that preempt each other (survivors electing a master) each
   * lost a whole accept or prepare timeout per duel. A rejection is required: without one, an
   * unreachable majority would spin prepares instead of waiting for the timeout.
   */
  private roundLost(): boolean {
    const members = this.host.members();
    const { granted, rejected, received } = this.round;
    if (rejected.size >= this.majority() || received.size === members.length) return true;
    if (rejected.size === 0) return false;
    let possible = granted.size;
    for (const m of members)
      if (!received.has(m) && (m === this.host.nodeId || this.host.reachable(m))) possible++;
    return possible < this.majority();
  }

  /**
   * The pause before a lost round prepares again: [⅓, 1⅓) × rejectedRetryDelayMs, so two
   * proposers that preempt each other do not retry in step (PhxPaxos Proposer::OnPrepareReply,
   * `AddPrepareTimer(OtherUtils::FastRand() % 30 + 10)`).
   */
  private retryDelayMs(): number {
    const base = this.options.rejectedRetryDelayMs;
    return Math.floor(base / 3 + this.host.random() * base);
  }

  private accept(): void {
    const value = this.value;
    if (value === undefined) return;
    // Phase 2 only after phase 1: a majority promised this id, just now or for an earlier
    // instance with nothing since that cancels it (the skip-prepare rule, newValue()).
    assert(
      this.canSkipPrepare && this.preparedProposalId === this.proposalId,
      'no Accept without a prepare majority for its proposal id',
    );
    // One ballot carries one value in an instance (see newValue()): a re-sent Accept with the
    // same id carries the same bytes (the value may be a peer's copy of it, adopted back).
    assert(
      !this.acceptSentThisInstance ||
        this.lastAcceptProposalId !== this.proposalId ||
        value === this.lastAcceptValue ||
        (this.lastAcceptValue !== undefined && bytesEqual(value, this.lastAcceptValue)),
      'one proposal id carries one value in an instance',
    );
    this.lastAcceptProposalId = this.proposalId;
    this.lastAcceptValue = value;
    this.exit();
    this.accepting = true;
    this.round.reset();
    this.counters.accepts++;
    this.acceptSentThisInstance = true;
    this.host.event('accept', {
      instanceId: this.nowInstanceId,
      proposalId: this.proposalId,
      valueBytes: value.length,
    });
    this.armTimer('accept');
    this.host.broadcast(
      paxosMsg({
        msgType: PaxosMsgType.Accept,
        instanceId: this.nowInstanceId,
        nodeId: this.host.nodeId,
        proposalId: this.proposalId,
        value,
        lastChecksum: this.host.lastChecksum(),
        ...this.previousChosen(),
      }),
    );
  }

  onAcceptReply(msg: PaxosMsg): void {
    if (!this.accepting || msg.proposalId !== this.proposalId || !this.isMember(msg.nodeId)) return;
    this.countReply(msg);
    if (this.round.granted.size >= this.majority()) {
      this.exit();
      this.host.chosen(this.nowInstanceId, this.proposalId);
    } else if (this.roundLost()) {
      this.armTimer('accept', this.retryDelayMs());
    }
  }

  /**
   * A reply for the instance just finished. A node that is always slower than the majority would
   * otherwise have its rejections ignored forever (PhxPaxos OnExpiredPrepareReply/AcceptReply).
   */
  onExpiredReply(msg: PaxosMsg): void {
    if (msg.rejectByPromiseId !== 0) {
      this.wasRejected = true;
      this.highestOtherProposalId = Math.max(this.highestOtherProposalId, msg.rejectByPromiseId);
    }
  }

  /** Prepare and Accept carry the previous instance's chosen ballot in the preAccept fields. */
  private previousChosen(): { preAcceptId: number; preAcceptNodeId: number } {
    const b = this.host.previousChosenBallot();
    return { preAcceptId: b.proposalId, preAcceptNodeId: b.nodeId };
  }

  /**
   * Arms the proposer's one timer (prepare and accept never run together): after the phase's
   * timeout, doubling per retry up to its maximum, or after `delayMs`, prepare again (PhxPaxos
   * OnPrepareTimeout / OnAcceptTimeout).
   */
  private armTimer(phase: 'prepare' | 'accept', delayMs?: number): void {
    this.cancelTimer?.();
    const instanceId = this.nowInstanceId;
    let delay = delayMs;
    if (delay === undefined) {
      delay = this.timeoutMs[phase];
      const max =
        phase === 'prepare' ? this.options.prepareTimeoutMaxMs : this.options.acceptTimeoutMaxMs;
      this.timeoutMs[phase] = Math.min(delay * 2, max);
    }
    this.cancelTimer = this.host.schedule(delay, () => {
      this.cancelTimer = undefined;
      if (
        instanceId !== this.nowInstanceId ||
        this.phase !== (phase === 'prepare' ? 'preparing' : 'accepting')
      )
        return;
      this.counters[phase === 'prepare' ? 'prepareTimeouts' : 'acceptTimeouts']++;
      this.prepare(this.wasRejected);
    });
  }
}
