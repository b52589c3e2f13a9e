// The chain invariant: every instance a node has learned carries the checksum the first node to
// learn it had. Simulation feeds each newly learned record once per incarnation (checkedUpTo).
export interface LearnedEvent {
  kind: 'learned';
  node: number;
  group: number;
  instanceId: number;
  checksum: number;
  /** The checksum of instanceId - 1 in the same log (undefined: not there). */
  previousChecksum: number | undefined;
  /** The event being run, for the message. */
  during: () => string;
}

export class ChainChecker {
  /** group → instanceId → the chain checksum first seen there, and on which node. */
  private readonly first: Array<Map<number, { checksum: number; node: number }>> = [];
  readonly counts = { compared: 0 };

  /** `fail` records the violation and throws (the run stops at once). */
  constructor(
    groups: number,
    private readonly fail: (message: string) => never,
  ) {
    for (let g = 0; g < groups; g++) this.first.push(new Map());
  }

  observe(e: LearnedEvent): void {
    // design.md §2: an instance whose predecessor's checksum is unknown (not in this log, after a
    // checkpoint install or compaction, or itself 0) restarts the chain at 0.
    if (e.checksum === 0 && e.instanceId > 0 && (e.previousChecksum ?? 0) === 0) return;
    const seen = this.first[e.group]!;
    const first = seen.get(e.instanceId);
    if (first === undefined) seen.set(e.instanceId, { checksum: e.checksum, node: e.node });
    else {
      this.counts.compared++;
      if (first.checksum !== e.checksum)
        this.fail(
          `group ${e.group} instance ${e.instanceId}: checksum ${e.checksum} on n${e.node} but ${first.checksum} on n${first.node} (after event "${e.during()}")`,
        );
    }
  }

  finish(): void {}
}
