/** A ballot (PhxPaxos BallotNumber): ordered by proposalId, then nodeId. (0, 0) is null. */
export interface Ballot {
  readonly proposalId: number;
  readonly nodeId: number;
}

export const NULL_BALLOT: Ballot = Object.freeze({ proposalId: 0, nodeId: 0 });

/** Negative, zero or positive as a is below, equal to or above b. */
export function compareBallots(a: Ballot, b: Ballot): number {
  return a.proposalId !== b.proposalId ? a.proposalId - b.proposalId : a.nodeId - b.nodeId;
}

export function ballotEquals(a: Ballot, b: Ballot): boolean {
  return a.proposalId === b.proposalId && a.nodeId === b.nodeId;
}

export function isNullBallot(b: Ballot): boolean {
  return b.proposalId === 0 && b.nodeId === 0;
}
