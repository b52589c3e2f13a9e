// A group's status (GET /status, PaxosNode.status): assembled from the roles on each call,
// copying every counter so a caller cannot change the group's own.
import type { CheckpointManager, CheckpointStatus } from '@tspaxos/checkpoint';
import type { LearnerStatus } from '@tspaxos/learner';
import type { Committer, CommitterCounters } from './committer';
import type { PaxosError } from './errors';
import type { MasterCounters, MasterInfo, MasterStateMachine } from './master';
import type { MasterVariables } from './master-variables';
import type { MasterElection } from './election';
import type { Proposer, ProposerCounters } from './proposer';
import type { StateMachine } from './state-machine';
import type { LogStore } from '@tspaxos/storage';

export interface GroupStatus {
  nodeId: number;
  group: number;
  /** The now instance id: the first instance not learned here. */
  instanceId: number;
  minChosenInstanceId: number;
  checkpointInstanceId: number;
  lastChecksum: number;
  isFollower: boolean;
  members: number[];
  membershipVersion: number;
  followers: number[];
  /** Set when the group stopped itself (checksum divergence, a failed write): it serves status only. */
  stopped: { code: string; message: string } | undefined;
  /** Unexpected failures (README: "Errors"): any of them non-zero is a bug or a broken disk. */
  errors: GroupErrors;
  proposer: { phase: string; proposalId: number; counters: ProposerCounters };
  learner: LearnerStatus;
  /** This group's learner sender: the peers it streams to (the same object as learner.sender). */
  sender: LearnerStatus['sender'];
  committer: {
    queued: number;
    inFlightInstanceId: number | undefined;
    counters: CommitterCounters;
  };
  counters: GroupCounters;
  /** The master in this node's view while its lease is live here (see master.ts). */
  master: MasterInfo | undefined;
  masterElection: {
    enabled: boolean;
    isMaster: boolean;
    /** The log's master variables (undefined: no master operation applied yet). */
    recorded: MasterVariables | undefined;
    /** False while the master variables are unknown here (lost; waiting for a peer's). */
    anchored: boolean;
    counters: MasterCounters;
  };
  /** Checkpoint mode, transfers, cleaner and replayer (undefined without checkpoint config). */
  checkpoint: CheckpointStatus | undefined;
}

export interface GroupCounters {
  messagesReceived: number;
  messagesDropped: number;
  instancesLearned: number;
  executeFailures: number;
  checksumMismatches: number;
  /** Messages whose chain checksum was compared with this node's and agreed (design.md §2). */
  checksumChecks: number;
  retriedMessages: number;
  /**
   * Prepares and Accepts not voted on because a majority of the members had already learned
   * their instance (it is chosen; the learner learns it): a restarted node replaying the Accepts
   * its peers queued while it was down would pay a synced write per instance (issue 22).
   */
  votesSkippedChosen: number;
  /** The recovery no-op proposal at start ended with an expected code (E_TIMEOUT, E_STOPPED …). */
  recoveryProposalsFailed: number;
  /** Paxos messages not processed while in checkpoint mode (PhxPaxos ignores them too). */
  checkpointModeDrops: number;
  /** Times the group restarted in process after installing a checkpoint. */
  checkpointRestarts: number;
  /** User values refused unproposed because another node's lease was live (forwarding.ts). */
  valuesHandedBack: number;
  /**
   * Batch instances that waited for their values (options.batchWaitMs: fewer waited than the
   * last batch instance carried), and of those the ones whose values all came before the wait ran
   * out.
   */
  batchWaits: number;
  batchWaitsFilled: number;
}

/** How many times a kind of failure happened, and the last one. */
export interface ErrorCount {
  count: number;
  last: { code: string; message: string } | undefined;
}

export interface GroupErrors {
  /** A task of the group's loop (message handler, timer callback, proposal) threw. */
  taskErrors: ErrorCount;
  /** A state machine's execute() threw (retried: the group does not advance until it works). */
  executeFailures: ErrorCount;
  /** A write to the log failed (the group stops with E_STORAGE). */
  persistFailures: ErrorCount;
}

/** A new group's counters, all zero. */
export function newGroupCounters(): GroupCounters {
  return {
    messagesReceived: 0,
    messagesDropped: 0,
    instancesLearned: 0,
    executeFailures: 0,
    checksumMismatches: 0,
    checksumChecks: 0,
    retriedMessages: 0,
    votesSkippedChosen: 0,
    recoveryProposalsFailed: 0,
    checkpointModeDrops: 0,
    checkpointRestarts: 0,
    valuesHandedBack: 0,
    batchWaits: 0,
    batchWaitsFilled: 0,
  };
}

/** A new group's error counts, none yet. */
export function newGroupErrors(): GroupErrors {
  return {
    taskErrors: { count: 0, last: undefined },
    executeFailures: { count: 0, last: undefined },
    persistFailures: { count: 0, last: undefined },
  };
}

/** What the status is read from: the group's roles and state, as they are now. */
export interface GroupStatusSource {
  config: { nodeId: number; group: number; store: LogStore };
  machines: Iterable<StateMachine>;
  learner: LearnerStatus;
  lastChecksum: number;
  isFollower: boolean;
  members: readonly number[];
  membershipVersion: number;
  followers: number[];
  stoppedReason: PaxosError | undefined;
  errors: GroupErrors;
  proposer: Proposer;
  committer: Committer;
  counters: GroupCounters;
  master: MasterStateMachine;
  election: MasterElection | undefined;
  isMaster: boolean;
  checkpoint: CheckpointManager | undefined;
}

export function groupStatus(s: GroupStatusSource): GroupStatus {
  const { store, group, nodeId } = s.config;
  let checkpointInstanceId = -1;
  for (const sm of s.machines) {
    if (sm.getCheckpointInstanceId)
      checkpointInstanceId = Math.max(checkpointInstanceId, sm.getCheckpointInstanceId(group));
  }
  const { learner } = s;
  return {
    nodeId,
    group,
    instanceId: learner.instanceId,
    minChosenInstanceId: store.getMinChosenInstanceId(group),
    checkpointInstanceId,
    lastChecksum: s.lastChecksum,
    isFollower: s.isFollower,
    members: [...s.members],
    membershipVersion: s.membershipVersion,
    followers: s.followers,
    stopped:
      (s.stoppedReason && { code: s.stoppedReason.code, message: s.stoppedReason.message }) ??
      s.checkpoint?.status().needsCheckpoint,
    errors: {
      taskErrors: { ...s.errors.taskErrors },
      executeFailures: { ...s.errors.executeFailures },
      persistFailures: { ...s.errors.persistFailures },
    },
    proposer: {
      phase: s.proposer.phase,
      proposalId: s.proposer.proposalId,
      counters: { ...s.proposer.counters },
    },
    learner,
    sender: learner.sender,
    committer: {
      queued: s.committer.queueLength,
      inFlightInstanceId: s.committer.inFlight?.instanceId,
      counters: { ...s.committer.counters },
    },
    counters: { ...s.counters },
    master: s.master.master(),
    masterElection: {
      enabled: s.election !== undefined,
      isMaster: s.isMaster,
      recorded: s.master.variables && { ...s.master.variables },
      anchored: s.master.anchored,
      counters: { ...s.master.counters },
    },
    checkpoint: s.checkpoint?.status(),
  };
}
