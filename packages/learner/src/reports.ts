// How far the members say they are (AskforLearn, SendNowInstanceID), and which of those claims a
// stream failed to back up: the learner's isLatest() reads it (issue 17).
export class PeerReports {
  private highestSeenInstanceId = 0;
  private highestSeenFromNodeId = 0;
  /** The highest now instance id each member reported (bounded by the membership). */
  private readonly reportedInstanceIds = new Map<number, number>();
  /**
   * Per member, a reported id it did not back up: a stream from it stalled before we reached it.
   * The report counts again only when the member reports a higher one.
   */
  private readonly unbackedInstanceIds = new Map<number, number>();

  /** `peers`: every voting member but me (LearnerMembershipPort.peers). */
  constructor(private readonly peers: () => readonly number[]) {}

  /** The highest now instance id any node reported, and who reported it. */
  get seenInstanceId(): number {
    return this.highestSeenInstanceId;
  }

  get seenFromNodeId(): number {
    return this.highestSeenFromNodeId;
  }

  /** A node reported its now instance id; a member's report is kept per member. */
  setSeen(instanceId: number, fromNodeId: number): void {
    if (
      instanceId > (this.reportedInstanceIds.get(fromNodeId) ?? -1) &&
      this.peers().includes(fromNodeId)
    ) {
      this.reportedInstanceIds.set(fromNodeId, instanceId);
    }
    if (instanceId > this.highestSeenInstanceId) {
      this.highestSeenInstanceId = instanceId;
      this.highestSeenFromNodeId = fromNodeId;
    }
  }

  /** The highest now instance id a member reported and did not fail to back up. */
  get backedSeenInstanceId(): number {
    let seen = 0;
    for (const peer of this.peers()) {
      const reported = this.reportedInstanceIds.get(peer) ?? 0;
      if (reported > (this.unbackedInstanceIds.get(peer) ?? -1)) seen = Math.max(seen, reported);
    }
    return seen;
  }

  /** The highest now instance id a majority of the members reached, as far as they told us. */
  quorumSeenInstanceId(myInstanceId: number): number {
    const ids = [myInstanceId];
    for (const peer of this.peers()) ids.push(this.reportedInstanceIds.get(peer) ?? 0);
    ids.sort((x, y) => y - x);
    return ids[Math.floor(ids.length / 2)]!;
  }

  /**
   * Whether a majority of the members reached past `instanceId`: quorumSeenInstanceId(mine) >
   * instanceId. That id is at most the higher of mine and the highest report, so for an
   * `instanceId` at or above both the answer is no without sorting the reports: the usual case
   * of the check every Prepare and Accept passes (Group.receiveForAcceptor).
   */
  majorityPast(instanceId: number, myInstanceId: number): boolean {
    if (instanceId >= myInstanceId && instanceId >= this.highestSeenInstanceId) return false;
    return this.quorumSeenInstanceId(myInstanceId) > instanceId;
  }

  /**
   * A stream from `from` was given up short of what it claimed: that claim no longer holds us
   * back from proposing. True when there was such a claim.
   */
  markUnbacked(from: number, myInstanceId: number): boolean {
    const claimed = this.reportedInstanceIds.get(from) ?? 0;
    if (claimed <= myInstanceId) return false;
    this.unbackedInstanceIds.set(from, claimed);
    return true;
  }

  /**
   * The member with the highest report past `myInstanceId` that it did not fail to back up
   * (undefined when none): whom to ask when a stream ran out below it.
   */
  memberAhead(myInstanceId: number): number | undefined {
    let best: number | undefined;
    let bestId = myInstanceId;
    for (const peer of this.peers()) {
      const reported = this.reportedInstanceIds.get(peer) ?? 0;
      if (reported > bestId && reported > (this.unbackedInstanceIds.get(peer) ?? -1)) {
        best = peer;
        bestId = reported;
      }
    }
    return best;
  }
}
