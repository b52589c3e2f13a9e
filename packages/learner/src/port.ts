// The learner's port onto the group that hosts it (LearnerPort), grouped by where each part comes
// from: the acceptor, the system and master variables, the membership, and the runtime.
import type { LogStore } from '@tspaxos/storage';
import type { PaxosMsg } from '@tspaxos/transport';
import type { Ballot } from '@tspaxos/core';
import type { SenderBudget } from './budget';
import type { LearnerEvent } from './catch-up';

/**
 * What the learner needs from the group that hosts it, grouped by where it comes from: the
 * acceptor, the system and master variables, the membership, and the runtime (time, timers,
 * randomness, log).
 */
export interface LearnerPort {
  readonly nodeId: number;
  readonly group: number;
  readonly store: LogStore;
  readonly acceptor: LearnerAcceptorPort;
  readonly variables: LearnerVariablesPort;
  readonly membership: LearnerMembershipPort;
  readonly runtime: LearnerRuntimePort;
  send(to: number, msg: PaxosMsg): void;
  /** Checksum of the instance before my current one (0 when unknown). */
  lastChecksum(): number;
  minChosenInstanceId(): number;
  /** A peer has deleted the log I need: only a checkpoint can teach me. */
  needCheckpoint(from: number, peerMinChosenInstanceId: number): void;
  /**
   * True when nothing holds a value learned from a peer once it is stored and executed (the
   * store and every state machine copy values): the learner then releases the receive buffer a
   * batch arrived in (LentFrame) after its last value is executed, for the network to reuse.
   */
  readonly releaseLentFrames?: boolean;
  /** The node-wide byte budget of every group's sender (the learner makes its own if absent). */
  readonly senderBudget?: SenderBudget;
  /** Typed progress events for the node's listeners (catch-up started, caught up). */
  notify?(event: LearnerEvent): void;
  /**
   * isLatest() may have turned true without anything learned (a member's claim it could not back
   * up was dropped at a stall): the host may propose again.
   */
  latestMayHaveChanged?(): void;
}

/** The group's acceptor, as the learner sees it. */
export interface LearnerAcceptorPort {
  /** My acceptor's state for the current instance. */
  acceptedState(): { ballot: Ballot; value: Uint8Array; checksum: number };
  /** My acceptor's promise for the current instance (kept when a learned record is written). */
  promiseBallot(): Ballot;
}

/** The system (membership) and master variables a far-behind node learns before the log. */
export interface LearnerVariablesPort {
  /** Encoded system variables to hand to a far-behind asker, if any. */
  system(): Uint8Array | undefined;
  /** Applies a peer's system variables; true when they changed mine. */
  applySystem(bytes: Uint8Array): boolean;
  /** Encoded master variables to hand to a far-behind asker, if any (PhxPaxos GetMasterSM). */
  master?(): Uint8Array | undefined;
  /**
   * Applies a peer's master variables, which reflect its log up to `asOfInstanceId` (its now
   * instance id); true when they were taken (PhxPaxos UpdateByCheckpoint).
   */
  applyMaster?(bytes: Uint8Array, asOfInstanceId: number): boolean;
  /** False while this node's master state is unknown (after a checkpoint install). */
  masterAnchored?(): boolean;
}

/** Whom the learner asks and whom it forwards to. */
export interface LearnerMembershipPort {
  /** Nodes to ask: every voting member but me (a follower asks them too). */
  peers(): readonly number[];
  /** Non-voting nodes that follow me (they get every value I learn). */
  followers(): readonly number[];
  addFollower(nodeId: number): void;
  /** The voting node I follow, when I am a follower. */
  followToNodeId(): number | undefined;
}

/** Time, timers, randomness and the log: injected, so the simulator can replay a seed. */
export interface LearnerRuntimePort {
  now(): number;
  /** Uniform in [0, 1): jitter for the AskforLearn timer. */
  random(): number;
  /** Runs fn after delayMs, serialized with message handling; returns a cancel function. */
  schedule(delayMs: number, fn: () => void): () => void;
  /**
   * Runs fn in the host's idle time: after pending I/O has been read, and only when none of the
   * group's own work (messages, proposals, timers) is queued; serialized with message handling.
   * The sender's slices run here, so the stream never delays a Paxos message by more than one
   * slice (senderTurnMaxMs). Without it, a 0 ms schedule() (no priority).
   */
  scheduleIdle?(fn: () => void): () => void;
  /**
   * When the group last handled Paxos traffic of its own (a Prepare, an Accept or a reply).
   * Within senderBusyWindowMs of it the sender's turns shrink to senderBusyTurnMaxMs. Without it,
   * the group never counts as busy.
   */
  paxosActiveAtMs?(): number;
  event(name: string, fields: Record<string, unknown>): void;
}
