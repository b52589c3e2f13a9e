// Master liveness (election seeds): after healing, a member holds each group's lease within 2
// leases of the group being live again: its barrier chosen and the backlog of workload proposals
// queued during the faults drained (each settled: chosen or timed out). Until then a master's
// operation waits in the same queue (PhxPaxos master_mgr.cpp TryBeMaster proposes through
// PNode::Propose, i.e. Committer::NewValueGetID); that wait is bounded by the liveness invariant.
import type { EventQueue } from '../event-queue';
import type { SimNode } from '../sim-node';
import type { SingleMasterChecker } from './single-master';

/** After healing, a member must hold each group's lease within this many lease periods. */
const MASTER_LIVENESS_LEASES = 2;

/** A group's barrier value was chosen after the heal. */
export interface GroupLiveEvent {
  kind: 'group-live';
  group: number;
}

export interface MasterLivenessDeps {
  queue: EventQueue;
  nodes: readonly SimNode[];
  groups: number;
  leaseMs: number;
  /** Workload proposals of the group still unsettled. */
  backlogged: (group: number) => boolean;
  singleMaster: SingleMasterChecker;
  healedAtMs: () => number | undefined;
  /** Records the violation and throws. */
  fail: (message: string) => never;
}

export class MasterLivenessChecker {
  /** group → when its master liveness is judged. */
  private readonly deadlineMs: number[] = [];

  constructor(private readonly d: MasterLivenessDeps) {}

  observe(e: GroupLiveEvent): void {
    const { queue } = this.d;
    const g = e.group;
    if (this.d.backlogged(g)) {
      queue.at(queue.nowMs + 100, () => this.observe(e), 'master liveness: backlog drained?');
      return;
    }
    const liveAtMs = queue.nowMs;
    const deadline = liveAtMs + MASTER_LIVENESS_LEASES * this.d.leaseMs;
    this.deadlineMs[g] = deadline;
    queue.at(deadline, () => this.judge(g, liveAtMs), 'master liveness check');
  }

  /** When every group will have been judged; undefined while some group is not live yet. */
  judgedBy(): number | undefined {
    for (let g = 0; g < this.d.groups; g++) if (this.deadlineMs[g] === undefined) return undefined;
    return Math.max(...this.deadlineMs);
  }

  finish(): void {}

  private judge(g: number, liveAtMs: number): void {
    this.d.singleMaster.observe({ kind: 'event' });
    if (this.d.singleMaster.heldAfterHeal[g] !== undefined) return;
    const views = this.d.nodes
      .filter((n) => n.alive && n.node !== undefined)
      .map((n) => {
        const e = n.node!.status(g).masterElection;
        return `n${n.id}: recorded ${e.recorded?.masterNodeId ?? '-'}@${e.recorded?.version ?? '-'}, attempts ${e.counters.attempts}, failed ${e.counters.attemptsFailed}`;
      });
    this.d.fail(
      `group ${g}: no member held the master lease within ${MASTER_LIVENESS_LEASES} leases (${MASTER_LIVENESS_LEASES * this.d.leaseMs} ms) of the group being live again (barrier chosen, backlog drained) at ${liveAtMs.toFixed(1)} ms (healed at ${this.d.healedAtMs()} ms; ${views.join('; ')})`,
    );
  }
}
