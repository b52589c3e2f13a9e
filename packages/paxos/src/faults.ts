// Planted bugs: deliberate defects the simulator must catch (style.md 13: every checker keeps a
// test that plants the bug). Test-only: they are reachable only through NodeOptions.unsafeFaults,
// which production code never sets, and none of them is "another implementation's behaviour".

export interface UnsafeFaults {
  /** Planted: an acceptor that keeps no promise (prepares never raise it, accepts ignore it). */
  forgetPromises?: boolean;
  /** Planted: an acceptor that forgets its promise at each new instance. */
  resetPromisePerInstance?: boolean;
  /** Planted: an acceptor that replies before its promise/accept write is durable. */
  acknowledgeBeforeDurable?: boolean;
  /** Planted: every n-th learner message handled throws a TypeError inside the group's loop. */
  throwInLearnerTaskEvery?: number;
  /**
   * Planted: a learner that skips the chain check: a value learned from a peer is stored with a
   * checksum that does not extend the previous instance's, and streamed values are not checked.
   */
  learnerSkipsChainCheck?: boolean;
  /** Planted: the learner releases a batch's receive buffer before its values are executed. */
  releaseLentFramesEarly?: boolean;
  /**
   * Planted: background work (the learner's stream) is queued as an ordinary task, FIFO with the
   * group's messages, instead of in the loop's idle time: an Accept waits behind a run of slices.
   */
  backgroundWorkAsTasks?: boolean;
  /** Planted: the proposer is not moved to the next instance with the acceptor and learner. */
  proposerMissesNewInstance?: boolean;
  /**
   * Planted: a proposal counts as committed when the value chosen at its instance has the same
   * bytes (identity header aside), as PhxPaxos's IsMyCommit: another node's equal value, or any
   * other barrier, is taken for ours (issue 17, finding 1).
   */
  matchValueByBytesOnly?: boolean;
  /**
   * Planted: a proposer that ignores the values its prepare replies report accepted and proposes
   * its own: a value already chosen at the instance can be replaced. Every role's assertion holds
   * (ballots and promises are right); only agreement, as the simulator checks it, breaks.
   */
  proposerIgnoresAcceptedValues?: boolean;
  /**
   * Planted: with forwarding on, a node proposes user values and barriers itself even while
   * another node's master lease is live in its view (forwarding.ts's rule is skipped): a value
   * chosen that the master has not applied can be missed by its lease reads.
   */
  proposeDespiteLiveLease?: boolean;
  /** Planted: a quorum read's index is the min of the members' positions, not the max. */
  quorumReadTakesMin?: boolean;
  /** Planted: a quorum read's round ends with the first position it has (its own), no majority. */
  quorumReadFewerThanMajority?: boolean;
}

/** The proposer's share of the planted bugs. */
export type ProposerFaults = Pick<UnsafeFaults, 'proposerIgnoresAcceptedValues'>;

/** The acceptor's share of the planted bugs. */
export type AcceptorFaults = Pick<
  UnsafeFaults,
  'forgetPromises' | 'resetPromisePerInstance' | 'acknowledgeBeforeDurable'
>;

/** The quorum reader's share of the planted bugs (quorum-read.ts). */
export type QuorumReadFaults = Pick<
  UnsafeFaults,
  'quorumReadTakesMin' | 'quorumReadFewerThanMajority'
>;
