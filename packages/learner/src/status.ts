// What the learner reports: its counters and its status (status().learner of a group).
import type { CatchUpStatus, CatchUpSummary, CatchUpTracker } from './catch-up';
import type { SenderCounters, SenderPeerStatus } from './sender';

export interface LearnerCounters {
  askforLearnSent: number;
  askforLearnReceived: number;
  valuesLearnedFromPeers: number;
  valuesLearnedFromProposer: number;
  lagMessages: number;
  aheadMessages: number;
  acksSent: number;
  senderBusy: number;
  /** Streamed values refused because their lastChecksum breaks our chain (design.md §2). */
  checksumMismatches: number;
  /** SendLearnValue frames (batches or single values) learned from. */
  batchesLearned: number;
  /** Gap acks sent: a value ahead of us arrived (a frame was lost). */
  nacksSent: number;
  /** Streams that went silent for learnerStallMs: we asked everyone again. */
  stalls: number;
  /** Prepared streams we declined because we learn from another peer. */
  declinesSent: number;
  catchUpsStarted: number;
  catchUpsFinished: number;
  /**
   * Records this node could not read to serve a peer or to chain a stream (E_CORRUPT_RECORD,
   * E_IO: errors.ts EXPECTED_READ_FAILURES): the peer gets nothing from us for that instance.
   */
  readFailures: number;
  /**
   * AskforLearn sent to one peer ahead of us at once (issue 22): the stream we learned from ran
   * out below an id another member reported, or a member's Prepare/Accept showed it ahead while
   * no stream was bringing it (Learner.peerIsAt).
   */
  asksToPeerAhead: number;
  /** AskforLearn to every peer at the host's request (Learner.learnNow), not on the timer. */
  asksOnDemand: number;
}

/** What a learner hands the one that replaces it (Learner.handOver). */
export interface LearnerCarry {
  counters: LearnerCounters;
  catchUp: CatchUpTracker;
}

/** The last record read that failed (status: which instance, and why). */
export interface ReadFailure {
  instanceId: number;
  code: string;
  message: string;
}

export interface LearnerStatus {
  instanceId: number;
  highestSeenInstanceId: number;
  highestSeenFromNodeId: number;
  isLearning: boolean;
  lastAckInstanceId: number;
  /** Undefined when not catching up. */
  catchUp: CatchUpStatus | undefined;
  lastCatchUp: CatchUpSummary | undefined;
  counters: LearnerCounters;
  /** Undefined until a read of a stored record fails (counters.readFailures). */
  lastReadFailure: ReadFailure | undefined;
  sender: {
    /** One entry per peer being served (prepared or streaming). */
    peers: SenderPeerStatus[];
    budgetUsedBytes: number;
    budgetCapacityBytes: number;
    counters: SenderCounters;
  };
}
