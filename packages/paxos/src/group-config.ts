// What a group is built from (GroupConfig) and what it reports to its node (GroupEvent).
import type { CheckpointFiles, CheckpointOptions } from '@tspaxos/checkpoint';
import type { Logger, RandomSource, Scheduler } from '@tspaxos/core';
import type { LearnerEvent, SenderBudget } from '@tspaxos/learner';
import type { LogStore } from '@tspaxos/storage';
import type { CheckpointMsg, PaxosMsg } from '@tspaxos/transport';
import type { UnsafeFaults } from './faults';
import type { MasterFaults } from './master';
import type { MasterVariables } from './master-variables';
import type { PaxosOptions } from './options';
import type { StateMachine } from './state-machine';

export interface GroupConfig {
  nodeId: number;
  group: number;
  groupCount: number;
  /** Voting members at first start (later: the system variables). */
  initialMembers: readonly number[];
  followToNodeId?: number;
  store: LogStore;
  send: (to: number, group: number, msg: PaxosMsg) => void;
  /** The transport's view of a peer (Network.reachable; true without one). */
  reachable: (to: number) => boolean;
  scheduler: Scheduler;
  random: RandomSource;
  stateMachines: readonly StateMachine[];
  options: PaxosOptions;
  /** Planted bugs (tests only, see faults.ts). */
  faults?: UnsafeFaults & MasterFaults;
  /** The node-wide byte budget of the learner senders (shared by every group of the node). */
  senderBudget?: SenderBudget;
  /** Progress events for the node's listeners: learned instances, catch-up start and end. */
  onEvent?: (event: GroupEvent) => void;
  /** Run master elections in this group (the master state machine applies either way). */
  masterElection?: boolean;
  /** The recorded master changed (applied from the log or adopted from a peer). */
  onMasterChange?: (group: number, master: MasterVariables) => void;
  /**
   * Checkpoints (design.md §4): the file port, this group's staging directory and the limits.
   * Without it the group neither compacts nor sends nor receives checkpoints; the start-up rule
   * still holds (a machine older than the log stops the group with E_NEEDS_CHECKPOINT).
   */
  checkpoint?: GroupCheckpointConfig;
  /** The group's logger: the node adds its own fields (node, group) around it. */
  log?: Logger;
  /**
   * Forwarding to the master is on (NodeOptions.forwarding): while another node's master lease is
   * live in this node's view, the group proposes no user value or barrier (forwarding.ts).
   */
  forwarding?: boolean;
}

export interface GroupCheckpointConfig {
  files: CheckpointFiles;
  stagingRoot: string;
  options: CheckpointOptions;
  send: (to: number, group: number, msg: CheckpointMsg) => void;
  /** Compact on its own, keeping options.holdCount (PhxPaxos's cleaner thread); default true. */
  autoCompact: boolean;
}

/** What a group tells the node's listeners (PaxosNode.on). */
export type GroupEvent =
  | { type: 'learned'; group: number; instanceId: number; count: number }
  | ({ group: number } & LearnerEvent);
