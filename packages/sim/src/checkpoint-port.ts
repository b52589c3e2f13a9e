// What the checkpoint simulation (checkpoints.ts, checkpoint-cuts.ts) needs of the simulation and
// of a simulated node, the checkpoint limits of a simulated node, and its coverage keys.
import type { CheckpointOptions } from '@tspaxos/checkpoint';
import type { PaxosNode } from '@tspaxos/paxos/internal';
import type { LogStore } from '@tspaxos/storage';
import type { MemoryNetwork } from '@tspaxos/transport';
import type { NodeErrorsChecker } from './checkers/node-errors';
import type { EventQueue } from './event-queue';
import type { SimOptions } from './options';
import type { SimTopology } from './result';

/** Coverage keys of the checkpoint simulation (added to PATH_KINDS). */
export const CHECKPOINT_PATH_KINDS = [
  'checkpoint-writes',
  'checkpoint-compactions',
  'checkpoint-needs-at-start',
  'checkpoint-asks',
  'checkpoint-transfers-started',
  'checkpoint-transfers-finished',
  'checkpoint-installs',
  'checkpoint-installs-finished-at-start',
  'checkpoint-second-asker-while-sending',
  'checkpoint-chunks-corrupted',
  'checkpoint-corrupt-chunk-refused-then-installed',
  'checkpoint-cut-after-begin',
  'checkpoint-cut-mid-chunk',
  'checkpoint-cut-before-end',
  'checkpoint-cut-during-load',
  'checkpoint-cut-during-reset',
  'checkpoint-cut-before-clear',
  'checkpoint-cut-after-clear',
  'checkpoint-cuts-by-partition',
  'checkpoint-ahead-peers-partitioned',
  'checkpoint-sm-state-lost',
] as const;
export type CheckpointPathKind = (typeof CHECKPOINT_PATH_KINDS)[number];

/**
 * The checkpoint limits of a simulated node: small chunks so a checkpoint of a few KiB is many
 * frames (mid-chunk cuts, a window that fills), and timeouts in seconds, not minutes, so a cut
 * transfer is retried well within the liveness bound (60 s).
 */
export const SIM_CHECKPOINT_OPTIONS: Partial<CheckpointOptions> = {
  chunkBytes: 256,
  ackLeadChunks: 4,
  ackLeadBytes: 5 * 256,
  ackTimeoutMs: 3000,
  askMajorityWaitMs: 3000,
  checkpointModeIdleMs: 4000,
  askRetryMs: 1000,
  freeSpaceMarginBytes: 1024 * 1024,
  tickIntervalMs: 250,
  cleanerStepRecords: 50,
};

/** What the checkpoint simulation needs of a simulated node (sim-node.ts's SimNode). */
export interface CheckpointSimNode {
  readonly id: number;
  readonly voting: boolean;
  /** The node's log (read to tell which peers are ahead of it). */
  readonly store: LogStore;
  alive: boolean;
  incarnation: number;
  downUntilMs: number;
  node: PaxosNode | undefined;
  executed: Array<Map<number, string[]>>;
  isLive(incarnation: number): boolean;
}

/** What the checkpoint simulation needs of the simulation. */
export interface CheckpointSimPort {
  /** seed; compaction (pinned: nodes compact during the fault phase; default: drawn in a share of
   * seeds with faults); installCrashStep (scripted: crash the receiver at this write of its first
   * install). */
  readonly options: Pick<SimOptions, 'seed' | 'compaction' | 'installCrashStep'>;
  /** groups, nodes (voting), longDown, membershipChange. */
  readonly topology: SimTopology;
  readonly queue: EventQueue;
  readonly net: MemoryNetwork;
  readonly nodes: readonly CheckpointSimNode[];
  readonly faultPhaseMs: number;
  readonly faults: boolean;
  readonly planted: 'checkpointIdTooHigh' | 'checkpointChunkCorruptValidCrc' | undefined;
  /** The master lease of an election seed (undefined: no elections). */
  readonly masterLeaseMs: number | undefined;
  readonly paths: Record<CheckpointPathKind, number>;
  /** group → instance → values chosen there (the first node to execute decides). */
  readonly chosen: ReadonlyArray<Map<number, string[]>>;
  readonly proposed: ReadonlySet<string>;
  inFaultPhase(): boolean;
  /** The node's store refuses writes after an injected fsync failure. */
  storeFailed(n: CheckpointSimNode): boolean;
  crash(n: CheckpointSimNode, why: string): void;
  start(n: CheckpointSimNode): void;
  note(invariant: 'checkpoint' | 'validity', message: string): void;
  /** Failed checkpoint writes and compactions (checkers/node-errors.ts). */
  readonly nodeErrors: NodeErrorsChecker;
  log(line: string): void;
  /**
   * An install a restart finished (its node crashed inside it, or right after it cleared its
   * record): the in-process restart counters that count the others died with the node.
   */
  installFinishedAtStart(n: CheckpointSimNode): void;
}
