// LearnerState (seed: LearnerState): what this node has learned for its current instance.
import { chainChecksum } from '@tspaxos/crc-wasm';
import type { LogStore } from '@tspaxos/storage';
import { type Ballot, compareBallots, NULL_BALLOT } from '@tspaxos/core';

/** Shared by every reset: a fresh empty array per instance showed up in the catch-up profile. */
const EMPTY = new Uint8Array(0);

export class LearnerState {
  private learnedValue: Uint8Array = EMPTY;
  private learned = false;
  private checksum = 0;
  private learnedBallot: Ballot = NULL_BALLOT;

  constructor(
    private readonly store: LogStore,
    private readonly group: number,
  ) {}

  /** Forgets the previous instance (seed: LearnerState::Init). */
  reset(): void {
    this.learnedValue = EMPTY;
    this.learned = false;
    this.checksum = 0;
    this.learnedBallot = NULL_BALLOT;
  }

  /** The ballot the learned value was chosen with. */
  get ballot(): Ballot {
    return this.learnedBallot;
  }

  get isLearned(): boolean {
    return this.learned;
  }

  get value(): Uint8Array {
    return this.learnedValue;
  }

  /** Checksum of the learned instance (the next instance's lastChecksum). */
  get newChecksum(): number {
    return this.checksum;
  }

  /**
   * Learns a value the local acceptor already persisted with this ballot, so nothing is written
   * (seed: LearnValueWithoutWrite, reached from ProposerSendSuccess).
   */
  learnWithoutWrite(ballot: Ballot, value: Uint8Array, checksum: number): void {
    this.learnedBallot = ballot;
    this.learnedValue = value;
    this.learned = true;
    this.checksum = checksum;
  }

  /**
   * Learns a value from a peer: computes the chain checksum, persists the record without fsync
   * (PhxPaxos LearnValue: bSync = false; it survives a process crash), then marks it learned.
   * The record keeps `promise` when it is above the chosen ballot: the acceptor's promise must
   * never go down on disk (PhxPaxos writes the chosen ballot as the promise).
   */
  async learn(
    instanceId: number,
    ballot: Ballot,
    value: Uint8Array,
    lastChecksum: number,
    promise: Ballot,
  ): Promise<void> {
    const checksum = chainChecksum(instanceId, lastChecksum, value);
    const kept = compareBallots(promise, ballot) > 0 ? promise : ballot;
    await this.store.put(
      this.group,
      {
        instanceId,
        promiseId: kept.proposalId,
        promiseNodeId: kept.nodeId,
        acceptedId: ballot.proposalId,
        acceptedNodeId: ballot.nodeId,
        value,
        checksum,
      },
      { sync: false },
    );
    this.learnWithoutWrite(ballot, value, checksum);
  }
}
