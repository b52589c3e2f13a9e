// Linearizable reads by a quorum read index (issue 22; etcd's ReadIndex, raft §6.4): no disk write
// and no clock assumption. The reader asks every voting member of the group for its acceptor's
// position, p = its acceptor's instance + (1 if it accepted a value there), "every instance below
// p may be chosen in my view"; the read index is the max of p over a majority of the voters
// (itself included when it votes). Once this node has applied every instance below the read
// index, its state reflects every write acknowledged before the read began: such a write was
// chosen at some w, so a majority accepted at w; every majority meets it, and a member that
// accepted at w reports p ≥ w + 1 (docs/design.md §6, "Quorum reads").
//
// Rounds are shared: one in flight per group; a read that arrives meanwhile waits for the next
// round, never joins one that started before it arrived (whose answers may predate a write
// acknowledged in between). An instance accepted but never chosen (its proposer died) would hold
// a read back for good: after QUORUM_READ_FALLBACK_MS the read proposes a barrier, which chooses
// that instance (a new proposer's prepare adopts the accepted value) and orders the read after it.
import type { Scheduler } from '@tspaxos/core';
import {
  ForwardFlag,
  type ForwardMsg,
  forwardMsg,
  ForwardMsgType,
  type Message,
} from '@tspaxos/transport';
import { PaxosError } from './errors';
import type { QuorumReadFaults } from './faults';
import type { Group } from './group';

/** Members that have not answered a round are asked again this often (a frame may be lost). */
export const QUORUM_READ_RESEND_MS = 200;
/**
 * How long a read waits to apply up to its read index before it proposes a barrier instead: the
 * index may name an instance accepted by one member and never chosen. Normal waits are one
 * commit or one catch-up from a peer, well below this.
 */
export const QUORUM_READ_FALLBACK_MS = 1000;
/** Most reads waiting for the next round of one node, over all groups (more: E_QUEUE_FULL). */
export const QUORUM_READ_MAX_WAITING = 100_000;

export interface QuorumReadCounters {
  /** quorumReadIndex calls. */
  reads: number;
  /** Rounds started (reads / rounds is how many reads a round served on average). */
  rounds: number;
  /** QuorumReadIndex messages sent, resends included. */
  asked: number;
  /** QuorumReadIndex answered here for other nodes. */
  served: number;
  /** Reads that proposed a barrier after waiting QUORUM_READ_FALLBACK_MS for their index. */
  fallbacks: number;
  /** Rounds run again because the membership changed while the read applied its index. */
  membershipRetries: number;
  /** Replies for no round waiting here (it had ended): counted drops. */
  repliesUnknown: number;
  /** Messages dropped as malformed (sender mismatch, a reply from a non-member, an error reply). */
  malformed: number;
  /** Reads refused E_NO_QUORUM at once (a majority of the members known unreachable). */
  noQuorum: number;
}

/** What the quorum reader needs from its node. */
export interface QuorumReadPort {
  readonly nodeId: number;
  readonly scheduler: Scheduler;
  send(to: number, group: number, message: Message): void;
  /** The group, or throws PaxosError E_BAD_GROUP. */
  group(g: number): Group;
  /** False when a majority of the group's members is known unreachable (Forwarder.hasQuorum). */
  hasQuorum(g: number): boolean;
  /** Resolves once instance `instanceId` is applied here; E_TIMEOUT at `deadlineMs`. */
  waitApplied(g: number, instanceId: number, deadlineMs: number): Promise<void>;
  /** Proposes a barrier (through the master when forwarding); its instance, applied here. */
  barrier(g: number, timeoutMs: number): Promise<number>;
  readonly faults: QuorumReadFaults;
}

/** What a round found: the read index, under which membership version. */
interface RoundResult {
  readIndex: number;
  membershipVersion: number;
}

interface Round {
  g: number;
  requestId: number;
  members: readonly number[];
  membershipVersion: number;
  /** Each answering member's p (its acceptor's instance, +1 if it accepted there). */
  positions: Map<number, number>;
  resolve(result: RoundResult): void;
  reject(error: PaxosError): void;
  cancelTimers(): void;
}

/** The next round of a group, promised to the reads that wait for it before it starts. */
interface Next {
  promise: Promise<RoundResult>;
  settle(round: Promise<RoundResult>): void;
  deadlineMs: number;
  waiting: number;
}

interface GroupRounds {
  inFlight: boolean;
  next: Next | undefined;
}

export class QuorumReader {
  readonly counters: QuorumReadCounters = {
    reads: 0,
    rounds: 0,
    asked: 0,
    served: 0,
    fallbacks: 0,
    membershipRetries: 0,
    repliesUnknown: 0,
    malformed: 0,
    noQuorum: 0,
  };
  private nextRequestId = 1;
  private readonly rounds = new Map<number, Round>();
  private readonly groups = new Map<number, GroupRounds>();
  private waitingTotal = 0;
  private stopped = false;

  constructor(private readonly host: QuorumReadPort) {}

  /**
   * Resolves once this node has applied every instance a write acknowledged before the call may
   * have been chosen at, with the last instance applied here then: state read afterwards is
   * linearizable. Errors are `rejected` (a read proposes nothing the caller asked for; a
   * fallback barrier carries no value): E_NO_QUORUM, E_TIMEOUT, E_STOPPED, E_QUEUE_FULL,
   * E_BAD_GROUP, or a fallback barrier's refusal.
   */
  async read(g: number, timeoutMs: number): Promise<number> {
    this.counters.reads++;
    try {
      const group = this.host.group(g);
      const deadlineMs = this.host.scheduler.now() + timeoutMs;
      for (;;) {
        if (this.stopped) throw new PaxosError('E_STOPPED', 'the node is stopping');
        if (!this.host.hasQuorum(g)) {
          this.counters.noQuorum++;
          throw new PaxosError(
            'E_NO_QUORUM',
            `a majority of group ${g}'s members ${group.members.join(',')} is not reachable from node ${this.host.nodeId}`,
          );
        }
        const round = await this.nextRound(g, deadlineMs);
        const applied = await this.applyUpTo(group, g, round.readIndex, deadlineMs);
        // A membership change chosen before the read began is below the read index (a majority
        // of the old members chose it), so it is applied now; the members it brought must be
        // the ones asked (the new majority may not meet the old one): ask them.
        if (group.membership.version === round.membershipVersion) return applied;
        this.counters.membershipRetries++;
      }
    } catch (error) {
      if (error instanceof PaxosError) throw error.asRejected();
      throw error;
    }
  }

  /** A QuorumReadIndex or its reply from the network; `from` is the authenticated sender. */
  receive(from: number, g: number, msg: ForwardMsg): void {
    if (this.stopped) return;
    if (msg.nodeId !== from) {
      this.counters.malformed++;
      return;
    }
    if (msg.msgType === ForwardMsgType.QuorumReadIndex) this.serve(from, g, msg);
    else this.onReply(from, g, msg);
  }

  /** Rejects every round and waiting read with E_STOPPED. */
  stop(): void {
    this.stopped = true;
    const error = new PaxosError('E_STOPPED', 'the node is stopping');
    for (const round of [...this.rounds.values()]) this.end(round, error);
    for (const state of this.groups.values()) {
      const next = state.next;
      state.next = undefined;
      next?.settle(Promise.reject(error));
    }
  }

  // ---- sharing rounds -----------------------------------------------------------------------

  /** A round that starts after this call: now if none is in flight, else the next one. */
  private nextRound(g: number, deadlineMs: number): Promise<RoundResult> {
    let state = this.groups.get(g);
    if (state === undefined) {
      state = { inFlight: false, next: undefined };
      this.groups.set(g, state);
    }
    if (!state.inFlight) return this.startRound(g, state, deadlineMs);
    if (this.waitingTotal >= QUORUM_READ_MAX_WAITING)
      return Promise.reject(
        new PaxosError('E_QUEUE_FULL', `${this.waitingTotal} reads wait for a round already`),
      );
    if (state.next === undefined) {
      let settle!: (round: Promise<RoundResult>) => void;
      const promise = new Promise<RoundResult>((resolve) => (settle = resolve));
      state.next = { promise, settle, deadlineMs, waiting: 0 };
    }
    // The next round lasts as long as its longest-waiting read may.
    state.next.deadlineMs = Math.max(state.next.deadlineMs, deadlineMs);
    state.next.waiting++;
    this.waitingTotal++;
    return state.next.promise;
  }

  private startRound(g: number, state: GroupRounds, deadlineMs: number): Promise<RoundResult> {
    state.inFlight = true;
    const round = this.runRound(g, deadlineMs);
    const done = (): void => {
      state.inFlight = false;
      const next = state.next;
      state.next = undefined;
      if (next === undefined) return;
      this.waitingTotal -= next.waiting;
      next.settle(
        this.stopped
          ? Promise.reject(new PaxosError('E_STOPPED', 'the node is stopping'))
          : this.startRound(g, state, next.deadlineMs),
      );
    };
    round.then(done, done);
    return round;
  }

  // ---- one round ----------------------------------------------------------------------------

  private runRound(g: number, deadlineMs: number): Promise<RoundResult> {
    this.counters.rounds++;
    const group = this.host.group(g);
    const requestId = this.nextRequestId++;
    return new Promise<RoundResult>((resolve, reject) => {
      const round: Round = {
        g,
        requestId,
        members: [...group.members],
        membershipVersion: group.membership.version,
        positions: new Map(),
        resolve,
        reject,
        cancelTimers: () => {},
      };
      this.rounds.set(requestId, round);
      if (round.members.includes(this.host.nodeId)) {
        const own = group.acceptorPosition();
        this.record(round, this.host.nodeId, own.instanceId, own.accepted);
        if (!this.rounds.has(requestId)) return; // a group of one: decided already
      }
      const ask = (): void => {
        for (const m of round.members) {
          if (round.positions.has(m)) continue;
          this.counters.asked++;
          this.host.send(m, g, {
            kind: 'forward',
            msg: forwardMsg({
              msgType: ForwardMsgType.QuorumReadIndex,
              requestId,
              nodeId: this.host.nodeId,
            }),
          });
        }
      };
      let cancelResend = (): void => {};
      const resend = (): void => {
        ask();
        cancelResend = this.host.scheduler.schedule(QUORUM_READ_RESEND_MS, resend);
      };
      resend();
      const cancelDeadline = this.host.scheduler.schedule(
        Math.max(0, deadlineMs - this.host.scheduler.now()),
        () =>
          this.end(
            round,
            new PaxosError(
              'E_TIMEOUT',
              `no majority of group ${g}'s members ${round.members.join(',')} answered a read index in time (answered: ${[...round.positions.keys()].join(',') || 'none'})`,
            ),
          ),
      );
      round.cancelTimers = () => {
        cancelResend();
        cancelDeadline();
      };
    });
  }

  private record(round: Round, member: number, instanceId: number, accepted: boolean): void {
    const p = instanceId + (accepted ? 1 : 0);
    round.positions.set(member, Math.max(p, round.positions.get(member) ?? 0));
    const majority = Math.floor(round.members.length / 2) + 1;
    const needed = this.host.faults.quorumReadFewerThanMajority === true ? 1 : majority;
    if (round.positions.size < needed) return;
    const ps = [...round.positions.values()];
    const readIndex =
      this.host.faults.quorumReadTakesMin === true ? Math.min(...ps) : Math.max(...ps);
    this.nudgeLearner(round);
    this.end(round, undefined, { readIndex, membershipVersion: round.membershipVersion });
  }

  /**
   * Behind the member with the highest position: ask it now, not at the next AskforLearn. Its
   * position may count an instance it accepted and has not learned yet; it has most often by the
   * time the ask arrives (the proposer's success message follows its Accept), else the learner's
   * own timers and the fallback take over.
   */
  private nudgeLearner(round: Round): void {
    let best: number | undefined;
    let bestP = -1;
    for (const [m, p] of round.positions)
      if (m !== this.host.nodeId && p > bestP) [best, bestP] = [m, p];
    const group = this.host.group(round.g);
    if (best !== undefined && bestP > group.instanceId) group.peerIsAt(best, bestP);
  }

  private end(round: Round, error: PaxosError | undefined, result?: RoundResult): void {
    if (!this.rounds.delete(round.requestId)) return;
    round.cancelTimers();
    if (error !== undefined) round.reject(error);
    else round.resolve(result!);
  }

  private onReply(from: number, g: number, msg: ForwardMsg): void {
    const round = this.rounds.get(msg.requestId);
    if (round === undefined) {
      this.counters.repliesUnknown++;
      return;
    }
    if (
      msg.msgType !== ForwardMsgType.QuorumReadIndexReply ||
      round.g !== g ||
      !round.members.includes(from) ||
      msg.errorCode !== ''
    ) {
      this.counters.malformed++;
      return;
    }
    this.record(round, from, msg.instanceId, (msg.flag & ForwardFlag.Accepted) !== 0);
  }

  /** Answers with this node's acceptor position (any asker: the position is no secret). */
  private serve(from: number, g: number, msg: ForwardMsg): void {
    let group: Group;
    try {
      group = this.host.group(g);
    } catch (error) {
      // No such group here: nothing to answer for (a counted drop); anything else is a bug.
      if (!(error instanceof PaxosError) || error.code !== 'E_BAD_GROUP') throw error;
      this.counters.malformed++;
      return;
    }
    this.counters.served++;
    const { instanceId, accepted } = group.acceptorPosition();
    this.host.send(from, g, {
      kind: 'forward',
      msg: forwardMsg({
        msgType: ForwardMsgType.QuorumReadIndexReply,
        requestId: msg.requestId,
        nodeId: this.host.nodeId,
        instanceId,
        flag: accepted ? ForwardFlag.Accepted : 0,
      }),
    });
  }

  // ---- applying up to the index -------------------------------------------------------------

  /** Waits until every instance below `readIndex` is applied here; the last applied id then. */
  private async applyUpTo(
    group: Group,
    g: number,
    readIndex: number,
    deadlineMs: number,
  ): Promise<number> {
    if (group.instanceId < readIndex) {
      const fallbackAtMs = this.host.scheduler.now() + QUORUM_READ_FALLBACK_MS;
      try {
        await this.host.waitApplied(g, readIndex - 1, Math.min(deadlineMs, fallbackAtMs));
      } catch (error) {
        const remainingMs = deadlineMs - this.host.scheduler.now();
        if (!(error instanceof PaxosError) || error.code !== 'E_TIMEOUT') throw error;
        if (remainingMs <= 0)
          throw new PaxosError(
            'E_TIMEOUT',
            `node ${this.host.nodeId} has not applied group ${g} up to its read index ${readIndex} in time (applied below ${group.instanceId})`,
          );
        // Maybe an instance accepted by one member and never chosen: a barrier resolves it,
        // and, proposed after the read began, orders the read after every completed write.
        this.counters.fallbacks++;
        const barrier = await this.host.barrier(g, remainingMs);
        return Math.max(barrier, group.instanceId - 1);
      }
    }
    return group.instanceId - 1;
  }
}
