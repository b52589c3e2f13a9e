// The acceptor (seed/PhxPaxos: Acceptor, AcceptorState). Its promise and accepted value for the
// current instance are persisted with sync:true before any reply leaves (Paxos's only durability
// requirement), and the record's checksum extends the chain (design.md §2).
import { chainChecksum } from '@tspaxos/crc-wasm';
import { assert, type Ballot, compareBallots, NULL_BALLOT } from '@tspaxos/core';
import type { LogStore } from '@tspaxos/storage';
import { type PaxosMsg, PaxosMsgType, paxosMsg } from '@tspaxos/transport';

import type { AcceptorFaults } from './faults';

export type { AcceptorFaults };

/** Why a write of the acceptor's state failed: the group stops (Group.persistFailed). */
export type PersistFailureHandler = (error: unknown) => void;

/** Shared by every new instance (a fresh empty array per instance costs in a streamed catch-up). */
const NO_VALUE = new Uint8Array(0);

export class Acceptor {
  // Private, moved only by load/newInstance/reset and the durable writes: a write from outside
  // could skip the invariants persist() checks.
  private currentInstanceId = 0;
  private promise: Ballot = NULL_BALLOT;
  private accepted: Ballot = NULL_BALLOT;
  private acceptedBytes: Uint8Array = new Uint8Array(0);
  private acceptedChecksum = 0;

  get instanceId(): number {
    return this.currentInstanceId;
  }
  get promiseBallot(): Ballot {
    return this.promise;
  }
  get acceptedBallot(): Ballot {
    return this.accepted;
  }
  get acceptedValue(): Uint8Array {
    return this.acceptedBytes;
  }
  get checksum(): number {
    return this.acceptedChecksum;
  }

  constructor(
    private readonly nodeId: number,
    private readonly group: number,
    private readonly store: LogStore,
    private readonly persistFailed: PersistFailureHandler,
    private readonly faults: AcceptorFaults = {},
  ) {}

  /**
   * Loads the state of the highest instance in the log and makes it current: that instance may
   * have been promised or accepted but not learned (PhxPaxos AcceptorState::Load).
   */
  load(): number {
    const max = this.store.maxInstanceId(this.group);
    if (max === undefined) {
      this.currentInstanceId = 0;
      return 0;
    }
    const record = this.store.get(this.group, max);
    this.currentInstanceId = max;
    if (record !== undefined) {
      this.promise = { proposalId: record.promiseId, nodeId: record.promiseNodeId };
      this.accepted = { proposalId: record.acceptedId, nodeId: record.acceptedNodeId };
      this.acceptedBytes = record.value;
      this.acceptedChecksum = record.checksum;
    }
    return max;
  }

  /**
   * Forgets the state in memory, promise included, and loads the log's: after a checkpoint
   * install reset the log (which kept the promise), nothing of the old instance may survive.
   */
  reload(): number {
    this.promise = NULL_BALLOT;
    this.accepted = NULL_BALLOT;
    this.acceptedBytes = new Uint8Array(0);
    this.acceptedChecksum = 0;
    return this.load();
  }

  /**
   * Moves to the next instance, forgetting the accepted ballot, value and checksum but KEEPING the
   * promise, as PhxPaxos does (src/algorithm/acceptor.cpp, AcceptorState::Init resets only
   * m_oAcceptedBallot, m_sAcceptedValue and m_iChecksum). The kept promise is what makes skipping
   * prepare safe: a prepare covers every later instance, as in Multi-Paxos. The planted bug
   * `resetPromisePerInstance` (an acceptor that forgets its promise at each new instance) lets a
   * proposer that skips prepare at i+1 with ballot b overwrite a value a lower ballot already got
   * chosen there; the assertion below stops the group first (before it, @tspaxos/sim's agreement
   * check caught it).
   */
  newInstance(): void {
    const promise = this.promiseBallot;
    this.currentInstanceId++;
    if (this.faults.resetPromisePerInstance) this.promise = NULL_BALLOT;
    this.accepted = NULL_BALLOT;
    this.acceptedBytes = NO_VALUE;
    this.acceptedChecksum = 0;
    assert(this.promiseBallot === promise, 'the promise is kept across instances');
  }

  /** Phase 1b. Returns the reply, or undefined when the promise could not be persisted. */
  async onPrepare(msg: PaxosMsg, lastChecksum: number): Promise<PaxosMsg | undefined> {
    assert(
      msg.instanceId === this.currentInstanceId,
      'a Prepare reaches the acceptor for its instance',
    );
    const reply = this.reply(PaxosMsgType.PrepareReply, msg);
    const ballot = { proposalId: msg.proposalId, nodeId: msg.nodeId };
    if (compareBallots(ballot, this.promiseBallot) >= 0) {
      reply.preAcceptId = this.acceptedBallot.proposalId;
      reply.preAcceptNodeId = this.acceptedBallot.nodeId;
      if (this.acceptedBallot.proposalId > 0) reply.value = this.acceptedValue;
      const promise = this.faults.forgetPromises ? this.promiseBallot : ballot;
      if (!(await this.persist(promise, this.acceptedBallot, this.acceptedValue, lastChecksum)))
        return undefined;
    } else {
      reply.rejectByPromiseId = this.promiseBallot.proposalId;
    }
    return reply;
  }

  /** Phase 2b. Returns the reply, or undefined when the accept could not be persisted. */
  async onAccept(msg: PaxosMsg, lastChecksum: number): Promise<PaxosMsg | undefined> {
    assert(
      msg.instanceId === this.currentInstanceId,
      'an Accept reaches the acceptor for its instance',
    );
    const reply = this.reply(PaxosMsgType.AcceptReply, msg);
    const ballot = { proposalId: msg.proposalId, nodeId: msg.nodeId };
    if (this.faults.forgetPromises || compareBallots(ballot, this.promiseBallot) >= 0) {
      if (!(await this.persist(ballot, ballot, msg.value, lastChecksum))) return undefined;
    } else {
      reply.rejectByPromiseId = this.promiseBallot.proposalId;
    }
    return reply;
  }

  /** A reply to `msg` about this acceptor's current instance. */
  private reply(msgType: number, msg: PaxosMsg): PaxosMsg {
    return paxosMsg({
      msgType,
      instanceId: this.currentInstanceId,
      nodeId: this.nodeId,
      proposalId: msg.proposalId,
    });
  }

  /**
   * Makes a new state durable (fsync), then adopts it. On failure the state stays what is on
   * disk, so nothing (not even a learn without write) relies on a state that is not durable, no
   * reply leaves, and the failure goes to the instance (which stops the group: a store whose
   * fsync failed refuses every later write).
   */
  private async persist(
    promise: Ballot,
    accepted: Ballot,
    value: Uint8Array,
    lastChecksum: number,
  ): Promise<boolean> {
    // Paxos: a promise only rises (an acceptor that lowered it could grant a ballot it refused).
    assert(compareBallots(promise, this.promiseBallot) >= 0, 'the promise never decreases');
    const checksum =
      accepted.proposalId > 0 ? chainChecksum(this.currentInstanceId, lastChecksum, value) : 0;
    const write = this.store.put(
      this.group,
      {
        instanceId: this.currentInstanceId,
        promiseId: promise.proposalId,
        promiseNodeId: promise.nodeId,
        acceptedId: accepted.proposalId,
        acceptedNodeId: accepted.nodeId,
        value,
        checksum,
      },
      { sync: true },
    );
    if (this.faults.acknowledgeBeforeDurable) {
      // Planted bug: the reply leaves before the write is durable (its failure still reported).
      write.then(undefined, this.persistFailed);
    } else {
      try {
        await write;
      } catch (error) {
        this.persistFailed(error);
        return false;
      }
    }
    this.promise = promise;
    this.accepted = accepted;
    this.acceptedBytes = value;
    this.acceptedChecksum = checksum;
    assert(
      compareBallots(this.acceptedBallot, this.promiseBallot) <= 0,
      'the accepted ballot is at most the promise',
    );
    return true;
  }
}
