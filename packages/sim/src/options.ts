// The simulator's options: SimOptions, the planted bugs, and their checks. Options are checked
// before a run (TspaxosError E_BAD_ARGUMENT naming the field and its range), so a test that pins
// a topology or a time bound never runs a meaningless simulation.
import { TspaxosError, type RandomSource } from '@tspaxos/core';
import { rangeProblem, type OptionRange } from '@tspaxos/crc-wasm';
import { MASTER_LEASE_MIN_MS, type MasterFaults, type UnsafeFaults } from '@tspaxos/paxos/internal';
import type { SimTopology } from './result';

/** Bugs planted on purpose; each must make the simulator fail (style.md 13). */
export const PLANTED_BUGS = [
  'forgetPromises',
  'resetPromisePerInstance',
  'acknowledgeBeforeDurable',
  'throwingTask',
  'learnerSkipsChainCheck',
  'unhandledRejection',
  /** The holder starts its lease when its operation applies, not before it proposed (master.ts). */
  'lateLeaseStart',
  /** A renewal applies whatever master version it names (master.ts). */
  'renewWithoutVersionCheck',
  /**
   * Not a code bug: the clock assumption broken. Election seeds draw clock drift (±5 %) and jumps
   * (0.5–5.5 s) as the seeds without elections do, beyond what any lease can survive.
   */
  'clocksOutsideLeaseBound',
  /** The simulator expects elections but the nodes run none: master liveness must fail. */
  'electionsNeverRun',
  /**
   * Not a code bug: PaxosNode.readIndex's precondition broken. Election seeds read under the
   * master's lease while every node proposes itself (no forwarding): a lease read misses a value
   * another node got chosen, and the linearizability check must say so.
   */
  'leaseReadsWithoutForwarding',
  // Checkpoints (checkpoints.ts): a recorder that reports its checkpoint one instance too high;
  // chunks corrupted with their CRC recomputed (what a receiver without the CRC check would take).
  'checkpointIdTooHigh',
  'checkpointChunkCorruptValidCrc',
  /** A proposal counts as committed when the chosen value has its bytes (paxos faults.ts). */
  'matchValueByBytesOnly',
  /** A proposer that proposes its own value over an accepted one (paxos faults.ts). */
  'proposerIgnoresAcceptedValues',
  /** A quorum read index that takes the lowest position of the majority (paxos quorum-read.ts). */
  'quorumReadTakesMin',
  /** A quorum read index from fewer answers than a majority (paxos quorum-read.ts). */
  'quorumReadFewerThanMajority',
] as const;
export type PlantedBug = (typeof PLANTED_BUGS)[number];

export interface SimOptions {
  seed: number;
  /** Voting members (default: 3 or 5, drawn from the seed). */
  nodes?: number;
  /** Groups every node hosts (default: 1 … 3, drawn). */
  groups?: number;
  /** Followers (default: 0 … 2, drawn); the first follows a voting node that dies. */
  followers?: number;
  /** A membership change (remove a member, add it back) in flight during the faults (default: drawn). */
  membershipChange?: boolean;
  /** One voting node kept down long enough that it must catch up from a peer's log (default: drawn). */
  longDown?: boolean;
  /** Nodes write checkpoints and compact their logs during the fault phase (default: drawn when faults are on). */
  compaction?: boolean;
  /** Virtual milliseconds of proposals and faults before everything heals. */
  faultPhaseMs?: number;
  /** After healing, all nodes must agree on the now instance id within this many ms. */
  livenessBoundMs?: number;
  /** Inject faults (default true). Without faults the topology defaults to 1 group, no followers. */
  faults?: boolean;
  /** A planted bug the run must catch. */
  planted?: PlantedBug;
  /** Same as planted: 'forgetPromises' (kept for the CLI's --broken-acceptor). */
  brokenAcceptor?: boolean;
  /** Keep a readable trace of every event. */
  trace?: boolean;
  /** A scripted scenario: cut this node off from the others between these virtual times. */
  partitionNode?: number;
  partitionMs?: [number, number];
  /**
   * Run master elections in every group (default: drawn, half the seeds with faults; always with a
   * planted master bug). Clocks then stay within the lease's bound (see masterClockBound).
   */
  masterElection?: boolean;
  /** Master lease of the election seeds (default: drawn in 2000 … 3000 ms). */
  masterLeaseMs?: number;
  /**
   * Election seeds: every node forwards its proposals to the master, and the workload reads
   * under the master's lease too (default: drawn, half the election seeds).
   */
  forwarding?: boolean;
  /**
   * A scripted scenario (checkpoints.ts): the first node to receive a whole checkpoint crashes at
   * this write of its install, and restarts cut off from the peers ahead of it. The trace says
   * where ("install step k: crash", or "install done after n writes" once k is past the end).
   */
  installCrashStep?: number;
  /**
   * A scripted scenario (master seeds): the master applies its own renewal late, the window
   * MasterFaults.lateLeaseStart opens. Once its renewal's Accept leaves it (after
   * LATE_OWN_APPLY_FROM_MS), every link into it is slowed by LATE_OWN_APPLY_DELAY_MS and another
   * member writes at once, adopting the accepted renewal (Paxos): the others apply it and start
   * the lease then. The master applies it only when the slow replies come, and is cut off from
   * that moment for three leases. No master drops and no other client proposals in such a run.
   */
  lateOwnApply?: boolean;
}

/** When the lateOwnApply script starts to watch for the master's renewal (ms). */
export const LATE_OWN_APPLY_FROM_MS = 4000;
/** How much the links into the master are slowed in the lateOwnApply script (ms). */
export const LATE_OWN_APPLY_DELAY_MS = 1500;

/** The planted throwing task throws on every n-th learner message (the reproduction). */
const PLANTED_THROW_EVERY = 97;

/** The paxos-side faults a planted bug turns on (undefined: none, or one of the simulator's own). */
export function plantedFaults(
  planted: PlantedBug | undefined,
): (UnsafeFaults & MasterFaults) | undefined {
  switch (planted) {
    case 'forgetPromises':
      return { forgetPromises: true };
    case 'resetPromisePerInstance':
      return { resetPromisePerInstance: true };
    case 'acknowledgeBeforeDurable':
      return { acknowledgeBeforeDurable: true };
    case 'throwingTask':
      return { throwInLearnerTaskEvery: PLANTED_THROW_EVERY };
    case 'learnerSkipsChainCheck':
      return { learnerSkipsChainCheck: true };
    case 'lateLeaseStart':
      return { lateLeaseStart: true };
    case 'renewWithoutVersionCheck':
      return { renewWithoutVersionCheck: true };
    case 'matchValueByBytesOnly':
      return { matchValueByBytesOnly: true };
    case 'proposerIgnoresAcceptedValues':
      return { proposerIgnoresAcceptedValues: true };
    case 'quorumReadTakesMin':
      return { quorumReadTakesMin: true };
    case 'quorumReadFewerThanMajority':
      return { quorumReadFewerThanMajority: true };
    default:
      return undefined; // none, or the simulator's own (unhandledRejection, clocks…, elections…)
  }
}

/** Proposals (and membership changes) wait this long before E_TIMEOUT. */
export const PROPOSE_TIMEOUT_MS = 8000;

/** Most voting nodes a simulation runs (ours: the sim's network ids are single bytes). */
export const SIM_MAX_NODES = 9;
/**
 * Most groups per node (ours: the seed's draw, 1–3). One proposal every ~75 ms is spread over
 * the groups; with more, each group gets too few instances in the fault phase for a long-down
 * node to have anything to catch up.
 */
export const SIM_MAX_GROUPS = 3;
/** Most followers (the first follows node 1, which dies; the second a drawn node). */
export const SIM_MAX_FOLLOWERS = 2;
/**
 * Voting nodes a long-down node or a membership change needs: with node 1 down (or a member
 * removed), the others must still form a majority that chooses values.
 */
export const SIM_MIN_NODES_FOR_LONG_DOWN = 3;
export const SIM_MIN_NODES_FOR_MEMBERSHIP_CHANGE = 3;
/** The long-down node goes down at a time drawn in this range (ms into the run)… */
export const LONG_DOWN_AT_MS: readonly [number, number] = [1000, 4000];
/** …and stays down for a time drawn in this range (ms): the others move on without it. */
export const LONG_DOWN_FOR_MS: readonly [number, number] = [7000, 12_000];
/** The fault phase must outlast its latest return, or it would come back only at the heal. */
export const LONG_DOWN_LATEST_RETURN_MS = LONG_DOWN_AT_MS[1] + LONG_DOWN_FOR_MS[1];

const NUMBER_RANGES: Partial<Record<keyof SimOptions, OptionRange>> = {
  seed: { min: 0, max: 0xffff_ffff },
  nodes: { min: 1, max: SIM_MAX_NODES },
  groups: { min: 1, max: SIM_MAX_GROUPS },
  followers: { min: 0, max: SIM_MAX_FOLLOWERS },
  faultPhaseMs: { min: 0 },
  livenessBoundMs: { min: 1 },
  partitionNode: { min: 1, max: SIM_MAX_NODES },
  masterLeaseMs: { min: MASTER_LEASE_MIN_MS },
  installCrashStep: { min: 1 },
};

function bad(message: string): TspaxosError {
  return new TspaxosError('E_BAD_ARGUMENT', `sim option ${message}`);
}

/** Throws E_BAD_ARGUMENT for the first field of `options` out of its range. */
export function checkSimOptions(options: SimOptions): void {
  if (typeof options !== 'object' || options === null) throw bad('options must be an object');
  if (options.seed === undefined) throw bad('seed is required');
  for (const [key, range] of Object.entries(NUMBER_RANGES)) {
    const value = (options as unknown as Record<string, unknown>)[key];
    if (value === undefined) continue;
    const problem = rangeProblem(value, range!);
    if (problem !== undefined) throw bad(`${key} ${problem}`);
  }
  for (const key of [
    'membershipChange',
    'longDown',
    'faults',
    'brokenAcceptor',
    'trace',
    'lateOwnApply',
  ] as const) {
    const value = options[key];
    if (value !== undefined && typeof value !== 'boolean')
      throw bad(`${key} must be a boolean, got ${JSON.stringify(value)}`);
  }
  if (options.planted !== undefined && !PLANTED_BUGS.includes(options.planted))
    throw bad(
      `planted must be one of ${PLANTED_BUGS.join(', ')}, got ${JSON.stringify(options.planted)}`,
    );
  if (options.nodes !== undefined) {
    if (options.longDown === true && options.nodes < SIM_MIN_NODES_FOR_LONG_DOWN)
      throw bad(
        `longDown needs at least ${SIM_MIN_NODES_FOR_LONG_DOWN} nodes (the others must choose without node 1), got nodes ${options.nodes}`,
      );
    if (options.membershipChange === true && options.nodes < SIM_MIN_NODES_FOR_MEMBERSHIP_CHANGE)
      throw bad(
        `membershipChange needs at least ${SIM_MIN_NODES_FOR_MEMBERSHIP_CHANGE} nodes (a majority must remain after the removal), got nodes ${options.nodes}`,
      );
  }
  if (options.faults === false) {
    for (const key of ['longDown', 'membershipChange'] as const)
      if (options[key] === true) throw bad(`${key} is a fault-phase event: it needs faults`);
  }
  if (
    options.longDown === true &&
    options.faultPhaseMs !== undefined &&
    options.faultPhaseMs < LONG_DOWN_LATEST_RETURN_MS
  )
    throw bad(
      `longDown needs faultPhaseMs ≥ ${LONG_DOWN_LATEST_RETURN_MS} (the node comes back up to ${LONG_DOWN_LATEST_RETURN_MS} ms in), got ${options.faultPhaseMs}`,
    );
  if (options.partitionNode !== undefined && options.nodes !== undefined) {
    if (options.partitionNode > options.nodes)
      throw bad(
        `partitionNode (${options.partitionNode}) must be one of the ${options.nodes} nodes`,
      );
  }
  if ((options.partitionNode === undefined) !== (options.partitionMs === undefined))
    throw bad('partitionNode and partitionMs go together');
  if (options.partitionMs !== undefined) {
    const [from, to] = Array.isArray(options.partitionMs) ? options.partitionMs : [];
    const ok =
      options.partitionMs.length === 2 &&
      rangeProblem(from, { min: 0 }) === undefined &&
      rangeProblem(to, { min: 0 }) === undefined &&
      from! <= to!;
    if (!ok)
      throw bad(
        `partitionMs must be [from, to] with 0 ≤ from ≤ to ms, got ${JSON.stringify(options.partitionMs)}`,
      );
  }
}

/**
 * The topology of a run. Every field is drawn first, in a fixed order, whatever is pinned (pinning
 * one option does not change the draws of the others).
 */
export function drawTopology(
  rng: RandomSource,
  options: SimOptions,
  faults: boolean,
  faultPhaseMs: number,
): SimTopology {
  const drawn = {
    nodes: rng.next() < 0.6 ? 3 : 5,
    groups: 1 + rng.int(3),
    followers: rng.int(3),
    membershipChange: rng.next() < 0.5,
    longDown: rng.next() < 0.5,
  };
  const nodes = options.nodes ?? drawn.nodes;
  return {
    nodes,
    groups: options.groups ?? (faults ? drawn.groups : 1),
    followers: options.followers ?? (faults ? drawn.followers : 0),
    membershipChange:
      options.membershipChange ??
      (faults && nodes >= SIM_MIN_NODES_FOR_MEMBERSHIP_CHANGE && drawn.membershipChange),
    longDown:
      options.longDown ??
      (faults &&
        nodes >= SIM_MIN_NODES_FOR_LONG_DOWN &&
        faultPhaseMs >= LONG_DOWN_LATEST_RETURN_MS &&
        drawn.longDown),
  };
}

/** The planted bugs the checkpoint simulation plants itself (checkpoints.ts, checkpoint-cuts.ts). */
export function checkpointPlanted(
  planted: PlantedBug | undefined,
): 'checkpointIdTooHigh' | 'checkpointChunkCorruptValidCrc' | undefined {
  return planted === 'checkpointIdTooHigh' || planted === 'checkpointChunkCorruptValidCrc'
    ? planted
    : undefined;
}
