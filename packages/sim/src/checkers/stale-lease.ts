// The single-master invariant, extended to stale leases (issue 17, finding 3). simulate.ts checks
// that no two live nodes hold a group's lease at one instant. A node that trusts stale master
// variables (kept across a checkpoint install, or adopted from a peer behind it) can also grant
// itself a lease after the real master's has ended: no overlap, yet a lease the log refused (the
// others judged its operation against the newer version and dropped it). This checker sees that
// too: a node holds a lease under master version v while some node has already applied another
// node's election at a version above v.
//
// Why that is a violation whatever the timing: that election's proposer proposed only once its
// view of the lease of version v had ended, and the clock bound of election seeds (masterClockBound)
// makes the holder's own lease end before that; so once any node has applied the election, the
// holder of v can no longer hold a lease. (A renewal by the same node keeps it; the rule looks at
// changes of master only, which is what PaxosNode's onMasterChange reports.)

export type StaleLeaseEvent =
  /** A node's recorded master changed (an election applied, or variables adopted from a peer). */
  | { kind: 'master-changed'; group: number; nodeId: number; masterNodeId: number; version: number }
  /** A node holds the group's lease by its own clock (simulate.ts checkSingleMaster). */
  | { kind: 'lease-held'; group: number; nodeId: number; version: number };

/** Coverage keys of this checker (added to PATH_KINDS). */
export const STALE_LEASE_PATH_KINDS = ['master-leases-checked-for-staleness'] as const;

export interface StaleLeaseCounts {
  /** Lease observations compared against an election some node applied. */
  'master-leases-checked-for-staleness': number;
}

export class StaleLeaseChecker {
  /** group → the newest change of master any node applied: its version, master and where. */
  private readonly newest = new Map<
    number,
    { version: number; masterNodeId: number; on: number }
  >();
  private readonly counts: StaleLeaseCounts = { 'master-leases-checked-for-staleness': 0 };

  /** `fail` records the violation (simulate.ts note('single-master', …)). */
  constructor(private readonly fail: (message: string) => void) {}

  observe(event: StaleLeaseEvent): void {
    const newest = this.newest.get(event.group);
    if (event.kind === 'master-changed') {
      if (newest === undefined || event.version > newest.version)
        this.newest.set(event.group, {
          version: event.version,
          masterNodeId: event.masterNodeId,
          on: event.nodeId,
        });
      return;
    }
    if (newest === undefined) return;
    this.counts['master-leases-checked-for-staleness']++;
    if (newest.version > event.version && newest.masterNodeId !== event.nodeId)
      this.fail(
        `group ${event.group}: n${event.nodeId} holds the master lease under version ${event.version}, ` +
          `but n${newest.masterNodeId}'s election at version ${newest.version} was already applied on ` +
          `n${newest.on}: a stale lease`,
      );
  }

  /** What the run exercised, for the coverage. */
  finish(): StaleLeaseCounts {
    return { ...this.counts };
  }
}
