// The acceptor (seed/PhxPaxos: Acceptor, AcceptorState). Its promise and accepted value for the
// current instance are persisted with sync:true before any reply leaves (Paxos's only durability
// requirement), and the record's checksum extends the chain (DESIGN §2).
import { chainChecksum } from '@tspaxos/crc-wasm';
import { assert, type Ballot, compareBallots, NULL_BALLOT } from '@tspaxos/core';
import type { LogStore } from '@tspaxos/storage';
import { type PaxosMsg, PaxosMsgType, paxosMsg } from '@tspaxos/transport';

import type { AcceptorFaults } from './faults';

export type { AcceptorFaults };

/** Why a write of the acceptor's state failed: the group stops (Instance.persistFailed). */
export type PersistFailureHandler = (error: unknown) => void;

/** Shared by every new instance (a fresh empty array per instance costs in a streamed catch-up). */
const NO_VALUE = new Uint8Array(0);

export class Acceptor {
  instanceId = 0;
  promiseBallot: Ballot = NULL_BALLOT;
  acceptedBallot: Ballot = NULL_BALLOT;
  acceptedValue: Uint8Array = new Uint8Array(0);
  checksum = 0;

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
      this.instanceId = 0;
      return 0;
    }
    const record = this.store.get(this.group, max);
    this.instanceId = max;
    if (record !== undefined) {
      this.promiseBallot = { proposalId: record.promiseId, nodeId: record.promiseNodeId };
      this.acceptedBallot = { proposalId: record.acceptedId, nodeId: record.acceptedNodeId };
      this.acceptedValue = record.value;
      this.checksum = record.checksum;
    }
    return max;
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
    this.instanceId++;
    if (this.faults.resetPromisePerInstance) this.promiseBallot = NULL_BALLOT;
    this.acceptedBallot = NULL_BALLOT;
    this.acceptedValue = NO_VALUE;
    this.checksum = 0;
    assert(this.promiseBallot === promise, 'the promise is kept across instances');
  }

  /** Phase 1b. Returns the reply, or undefined when the promise could not be persisted. */
  async onPrepare(msg: PaxosMsg, lastChecksum: number): Promise<PaxosMsg | undefined> {
    assert(msg.instanceId === this.instanceId, 'a Prepare reaches the acceptor for its instance');
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
    assert(msg.instanceId === this.instanceId, 'an Accept reaches the acceptor for its instance');
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
      instanceId: this.instanceId,
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
      accepted.proposalId > 0 ? chainChecksum(this.instanceId, lastChecksum, value) : 0;
    const write = this.store.put(
      this.group,
      {
        instanceId: this.instanceId,
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
    this.promiseBallot = promise;
    this.acceptedBallot = accepted;
    this.acceptedValue = value;
    this.checksum = checksum;
    assert(
      compareBallots(this.acceptedBallot, this.promiseBallot) <= 0,
      'the accepted ballot is at most the promise',
    );
    return true;
  }
}
