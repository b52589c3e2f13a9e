// What a run exercised, counted: faults injected by kind, and paths the code went through. The
// CLI sums these over seeds; a test asserts on them (a fault never injected proves nothing).
import { CHECKPOINT_PATH_KINDS } from './checkpoint-port';
import { STALE_LEASE_PATH_KINDS } from './checkers/stale-lease';

/** Counts of what a run exercised: faults injected by kind, and paths the code went through. */
export interface Coverage {
  faults: Record<FaultKind, number>;
  paths: Record<PathKind, number>;
}

export const FAULT_KINDS = [
  'link-fault',
  'asymmetric-loss',
  'partition',
  'one-way-partition',
  'heal',
  'fault-returns-after-heal',
  'links-reset',
  'crash',
  'crash-in-fsync',
  'restart',
  'clock-jump-forward',
  'clock-jump-backward',
  'clock-drift',
  'slow-fsync',
  'fsync-failure',
  'corrupting-link',
  /** Lossy, reordering links into the long-down node for a while after it comes back. */
  'catch-up-link-loss',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export const PATH_KINDS = [
  'proposals',
  'acknowledged',
  'rejected',
  'instances-chosen',
  'catch-up-streams-started',
  'catch-up-streams-finished',
  'membership-changes',
  'follower-values-learned',
  'corrupted-frames-dropped',
  'groups-stopped-by-fsync-failure',
  'long-down-restarts',
  'disks-replaced',
  /** SendLearnValue frames carrying more than one instance, delivered to a live node. */
  'batches-streamed',
  /** Gap acks a receiver sent (a value ahead of it arrived: a frame was lost). */
  'gap-nacks-sent',
  /** Gap acks that rewound a sender's stream. */
  'gap-nacks-received',
  /** Streams confirmed while the same sender was streaming to another peer. */
  'concurrent-streams',
  /** A catching-up learner heard nothing for learnerStallMs and asked everyone again. */
  'stall-re-asks',
  /** A learner asked one peer ahead at once: its stream ran out below that peer, or a Prepare/Accept showed it ahead. */
  'asks-to-peer-ahead',
  /** A follower's stream served by a node it does not follow, while the node it follows is down. */
  'follower-fallback-streams',
  /** Prepared streams released at once because the asker confirmed another peer. */
  'prepares-declined',
  /** Prepared streams released by senderPrepareTimeoutMs (the asker never confirmed). */
  'prepare-timeouts',
  // Master leases (election seeds), as the single-master check observes them after each event:
  /** A node began to hold a lease (it did not hold one at the previous event). */
  'master-elections',
  /** A holder's lease end moved later while it held it (a renewal applied). */
  'master-renewals',
  /** A holder's lease ended on its own clock without a renewal. */
  'master-expiries',
  /** A holder gave its lease up before its end (node.dropMaster, or removed from the membership). */
  'master-drops',
  /** A lease begun by another node than the group's previous holder. */
  'master-changes',
  /** Of those, the previous holder had crashed while holding. */
  'master-changes-after-crash',
  // What clients were told (checkers/): register writes, barrier reads, identities compared.
  /** Register writes (workload) acknowledged. */
  'register-writes-acknowledged',
  /** Barrier reads answered and checked for linearizability. */
  'barrier-reads',
  /** Of those, begun on a node that had not learned everything another live node had. */
  'barrier-reads-behind',
  /** Quorum reads (PaxosNode.quorumReadIndex) answered and checked for linearizability. */
  'quorum-reads',
  /** Of those, begun on a node behind a live peer. */
  'quorum-reads-behind',
  /** Lease reads (PaxosNode.readIndex, election seeds) answered and checked. */
  'lease-reads',
  /** Of those, begun on a node behind a live peer. */
  'lease-reads-behind',
  /** Acknowledgements compared with the identity of the value chosen at their instance. */
  'identities-checked',
  ...CHECKPOINT_PATH_KINDS,
  ...STALE_LEASE_PATH_KINDS,
] as const;
export type PathKind = (typeof PATH_KINDS)[number];

export function emptyCoverage(): Coverage {
  return {
    faults: Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>,
    paths: Object.fromEntries(PATH_KINDS.map((k) => [k, 0])) as Record<PathKind, number>,
  };
}

/** Adds b's counts into a (for summing runs). */
export function addCoverage(a: Coverage, b: Coverage): Coverage {
  for (const k of FAULT_KINDS) a.faults[k] += b.faults[k];
  for (const k of PATH_KINDS) a.paths[k] += b.paths[k];
  return a;
}

/** Frames the network dropped as undecodable (a coded E_… drop; too large is not corruption). */
export function corruptedFrames(drops: Readonly<Record<string, number>>): number {
  return Object.entries(drops)
    .filter(([reason]) => reason.startsWith('E_') && reason !== 'E_FRAME_TOO_LARGE')
    .reduce((sum, [, count]) => sum + count, 0);
}
