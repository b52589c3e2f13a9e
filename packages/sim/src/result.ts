// What a run reports (SimResult) and the vocabulary the harness, fault injection and checkers
// share: the invariants, the topology, the long-down node's catch-up, the election settings.
import type { Coverage } from './coverage';

export type Invariant =
  | 'agreement'
  | 'validity'
  | 'chain'
  | 'durability'
  /** An acceptor's promise or accept, sent in a reply, was not on its disk when it crashed. */
  | 'reply-durability'
  | 'liveness'
  /** An unexpected error inside a node: a task, execute() or a write failed (status().errors). */
  | 'error'
  /** An assertion in a node's code failed (E_INVARIANT): a bug; the group stopped. */
  | 'invariant'
  | 'unhandled-rejection'
  /** The simulation itself threw. */
  | 'crash'
  /** Two live nodes believe, at the same virtual instant, that they hold a group's master lease. */
  | 'single-master'
  /** After healing, no member held a group's master lease within 2 lease periods. */
  | 'master-liveness'

  /** A checkpoint (own or installed) differs from what the log says (checkpoints.ts). */
  | 'checkpoint'
  /** A proposal was acknowledged at an instance whose chosen value is another proposal's. */
  | 'acknowledged-identity'
  /** A barrier read returned what no linearization of the writes clients were told about allows. */
  | 'linearizable';

export interface SimViolation {
  invariant: Invariant;
  message: string;
  atMs: number;
}

export interface SimTopology {
  nodes: number;
  groups: number;
  followers: number;
  membershipChange: boolean;
  longDown: boolean;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  violation?: SimViolation;
  nodes: number;
  topology: SimTopology;
  stats: {
    events: number;
    virtualMs: number;
    proposals: number;
    acknowledged: number;
    rejected: Record<string, number>;
    instances: number;
    crashes: number;
    delivered: number;
  };
  coverage: Coverage;
  /**
   * With a long-down node: what it learned from its peers after it came back (every incarnation
   * from its return on, the heal included). Undefined when the topology has none.
   */
  longDownCatchUp: LongDownCatchUp | undefined;
  /** The master-election settings of an election seed (undefined: no elections). */
  master?: MasterSettings;
  trace: string[];
}

export interface LongDownCatchUp {
  /** Virtual time it came back; undefined when the run ended before that. */
  backAtMs: number | undefined;
  /**
   * How far it was behind when it came back: the most instances, in any group, executed
   * somewhere past the end of its durable log.
   */
  behindAtReturn: number;
  /** Instances it learned from peers' streams (status().learner.counters.valuesLearnedFromPeers). */
  valuesLearnedFromPeers: number;
  catchUpsStarted: number;
  catchUpsFinished: number;
  /** Checkpoints it installed from a peer (its peers had compacted past its log). */
  checkpointInstalls: number;
}

/** What an election seed runs with, and the clock bound it keeps (see masterClockBound). */
export interface MasterSettings {
  leaseMs: number;
  marginMs: number;
  /**
   * Every node forwards its proposals to the master (NodeOptions.forwarding, as apps/node runs),
   * and lease reads are part of the workload; off, every node proposes itself (PhxPaxos's way).
   */
  forwarding: boolean;
  /** Largest |rate - 1| a clock-drift fault draws. */
  driftMax: number;
  /** Largest clock jump (either way), at most one per node per 2 leases. */
  jumpMaxMs: number;
}

/** A broken invariant: recorded once (the first), thrown to stop the run. */
export class Violation extends Error {
  constructor(
    readonly invariant: Invariant,
    message: string,
  ) {
    super(message);
  }
}
