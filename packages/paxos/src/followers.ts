// The follower table of one group (PhxPaxos Config's follower map): the non-member nodes that
// follow this node, each with the time it is forgotten unless it asks again.
import { FOLLOWER_TIMEOUT_ASK_INTERVALS } from './options';
import type { LearnerOptions } from '@tspaxos/learner';

export class Followers {
  /** Node id → time (ms) it expires. Bounded by the followers asking now (pruned on add). */
  private readonly expiresAtMs = new Map<number, number>();

  constructor(
    private readonly now: () => number,
    private readonly options: Pick<
      LearnerOptions,
      'followerAskforLearnIntervalMs' | 'followerAskforLearnJitterMs'
    >,
    private readonly log: (event: string, fields: Record<string, unknown>) => void,
  ) {}

  /** A follower asked to learn (PhxPaxos Config::AddFollowerNode); members never enter. */
  add(nodeId: number, isMember: boolean): void {
    if (isMember) return;
    if (!this.expiresAtMs.has(nodeId)) this.log('follower-added', { nodeId });
    this.expiresAtMs.set(nodeId, this.now() + this.timeoutMs());
    this.live(); // prune, so the table is bounded by the followers asking now
  }

  /** The followers that asked recently; the others are dropped from the table here. */
  live(): number[] {
    const now = this.now();
    for (const [nodeId, expiresAtMs] of this.expiresAtMs) {
      if (expiresAtMs < now) {
        this.expiresAtMs.delete(nodeId);
        this.log('follower-expired', { nodeId });
      }
    }
    return [...this.expiresAtMs.keys()];
  }

  /**
   * A follower that stops asking is forgotten after FOLLOWER_TIMEOUT_ASK_INTERVALS of its longest
   * ask interval. PhxPaxos does the same: Config::AddFollowerNode (src/config/config.cpp) sets
   * each follower's expiry to now + 3 × ASKFORLEARN_NOOP_INTERVAL at every AskforLearn
   * (Learner::OnAskforLearn), and Config::GetMyFollowerMap erases the expired ones.
   */
  private timeoutMs(): number {
    const { followerAskforLearnIntervalMs, followerAskforLearnJitterMs } = this.options;
    return (
      FOLLOWER_TIMEOUT_ASK_INTERVALS * (followerAskforLearnIntervalMs + followerAskforLearnJitterMs)
    );
  }
}
