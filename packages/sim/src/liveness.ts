// The liveness invariant: started nodes come up; after the heal one more value is chosen in each
// group (a barrier), every node converges on the same log, and (election seeds) master liveness is
// judged. Each wait runs the simulation's clock (runUntil) until it holds or its bound passes, so
// this is a phase of the run, not an observer; that time passes at all is
// checkers/event-storm.ts.
import type { RandomSource } from '@tspaxos/core';
import type { GroupStatus } from '@tspaxos/paxos/internal';
import type { AcknowledgedIdentityChecker } from './checkers/acknowledged-identity';
import type { DurabilityChecker } from './checkers/durability';
import type { MasterLivenessChecker } from './checkers/master-liveness';
import type { EventQueue } from './event-queue';
import { PROPOSE_TIMEOUT_MS } from './options';
import { RECORDER_SM_ID } from './recorder';
import type { SimNode } from './sim-node';
import type { Workload } from './workload';

export interface LivenessPort {
  queue: EventQueue;
  /** The main stream: which member proposes a barrier. */
  rng: RandomSource;
  nodes: readonly SimNode[];
  groups: number;
  livenessBoundMs: number;
  proposed: Set<string>;
  identities: AcknowledgedIdentityChecker;
  durability: DurabilityChecker;
  workload: Workload;
  /** Election seeds only. */
  masterLiveness: MasterLivenessChecker | undefined;
  runUntil: (endMs: number) => Promise<void>;
  /** Throws the violation a node callback recorded, if any. */
  throwIfViolated: () => void;
  log: (line: string) => void;
  /** Records a liveness violation and throws. */
  fail: (message: string) => never;
}

export class Liveness {
  constructor(private readonly h: LivenessPort) {}

  /** Runs the clock until every started node is up (a replay may wait for fsyncs). */
  async awaitStarts(): Promise<void> {
    await settle();
    const { queue, livenessBoundMs } = this.h;
    const deadline = queue.nowMs + livenessBoundMs;
    for (;;) {
      this.h.throwIfViolated();
      const pending = this.h.nodes.filter((n) => n.alive && n.node === undefined);
      if (pending.length === 0) return;
      if (queue.nowMs >= deadline)
        this.h.fail(`n${pending[0]!.id} did not finish starting within ${livenessBoundMs} ms`);
      await this.h.runUntil(queue.nowMs + 10);
    }
  }

  /**
   * After healing, one more value must get chosen in each group: liveness of proposing, not only
   * of learning. It also drives a value that was chosen but learned by nobody before the crashes
   * (the acceptors hold it; the next instance's prepare finds it) to be learned everywhere.
   */
  async barrier(group: number): Promise<void> {
    const { queue, nodes, livenessBoundMs } = this.h;
    const deadline = queue.nowMs + livenessBoundMs;
    const failures: string[] = [];
    for (let attempt = 0; queue.nowMs < deadline; attempt++) {
      // The members as the most up-to-date node knows them (a membership change may be recent).
      const views = nodes.filter((n) => n.voting).map((n) => n.node!.status(group));
      const newest = views.reduce((a, b) => (b.membershipVersion > a.membershipVersion ? b : a));
      const candidates = nodes.filter((n) => n.voting && newest.members.includes(n.id));
      const n = candidates[this.h.rng.int(candidates.length)]!;
      const value = `g${group}.barrier${attempt}`;
      this.h.proposed.add(value);
      this.h.log(`n${n.id} propose "${value}" (after healing)`);
      let done = false;
      let failure: string | undefined;
      n.node!.propose(group, new TextEncoder().encode(value), {
        smId: RECORDER_SM_ID,
        timeoutMs: Math.max(1, Math.min(PROPOSE_TIMEOUT_MS * 2, deadline - queue.nowMs)),
      }).then(
        (r) => {
          done = true;
          this.h.identities.observe({
            kind: 'acknowledged',
            group,
            instanceId: r.instanceId,
            identity: r.identity,
            node: n.id,
            what: `"${value}"`,
          });
          this.h.durability.observe({
            kind: 'acknowledged',
            group,
            instanceId: r.instanceId,
            value,
            node: n.id,
          });
          this.h.log(`n${n.id} "${value}" chosen at instance ${r.instanceId}`);
        },
        (e: { code?: string }) => {
          done = true;
          failure = e.code ?? String(e);
        },
      );
      while (!done && queue.nowMs < deadline)
        await this.h.runUntil(Math.min(deadline, queue.nowMs + 100));
      if (done && failure === undefined) {
        this.h.masterLiveness?.observe({ kind: 'group-live', group });
        return;
      }
      failures.push(`n${n.id}: ${failure ?? 'still pending'}`);
    }
    this.h.fail(
      `group ${group}: no value could be chosen within ${livenessBoundMs} ms of healing (${failures.join(', ')})`,
    );
  }

  async awaitConvergence(): Promise<void> {
    const { queue, nodes, groups, livenessBoundMs } = this.h;
    const deadline = queue.nowMs + livenessBoundMs;
    const converged = (statuses: GroupStatus[]): boolean => {
      const ids = statuses.map((s) => s.instanceId);
      return (
        ids.every((id) => id === ids[0]) &&
        statuses.every(
          (s) => s.committer.queued === 0 && s.committer.inFlightInstanceId === undefined,
        )
      );
    };
    while (queue.nowMs < deadline) {
      await this.h.runUntil(Math.min(deadline, queue.nowMs + 500));
      let all = true;
      for (let g = 0; g < groups; g++) {
        const statuses = nodes.map((n) => n.node!.status(g));
        // A group waiting for a checkpoint (E_NEEDS_CHECKPOINT) is on its way, not stopped.
        const stopped = statuses.find(
          (s) => s.stopped !== undefined && s.stopped.code !== 'E_NEEDS_CHECKPOINT',
        );
        if (stopped)
          this.h.fail(`n${stopped.nodeId} stopped group ${g}: ${stopped.stopped!.message}`);
        if (
          !converged(statuses) &&
          !(this.h.masterLiveness && this.convergedUnderRenewals(g, statuses))
        )
          all = false;
      }
      if (all) {
        this.h.log('converged');
        return;
      }
    }
    const summary = [];
    for (let g = 0; g < groups; g++)
      summary.push(
        `g${g}: ` + nodes.map((n) => `n${n.id}@${n.node!.status(g).instanceId}`).join(' '),
      );
    this.h.fail(`no convergence ${livenessBoundMs} ms after healing: ${summary.join('; ')}`);
  }

  /** Runs until master liveness has been judged in every group (checkers/master-liveness.ts). */
  async awaitMasterLiveness(masterLiveness: MasterLivenessChecker): Promise<void> {
    const { queue, livenessBoundMs } = this.h;
    const deadline = queue.nowMs + livenessBoundMs;
    while (masterLiveness.judgedBy() === undefined) {
      if (queue.nowMs >= deadline)
        this.h.fail(`workload proposals still pending ${livenessBoundMs} ms after healing`);
      await this.h.runUntil(queue.nowMs + 100);
    }
    await this.h.runUntil(masterLiveness.judgedBy()!);
  }

  /**
   * Convergence while masters renew: the log never stops growing, so the nodes' instance ids are
   * rarely all equal at one sample. Converged instead when no workload proposal is pending (no
   * acknowledgement can come any more) and every node has learned every acknowledged instance.
   */
  private convergedUnderRenewals(g: number, statuses: GroupStatus[]): boolean {
    if (this.h.workload.backlogged(g)) return false;
    const last = this.h.durability.lastAcknowledged(g);
    return statuses.every((s) => s.instanceId > last);
  }
}

/** Lets every pending promise (storage writes, loop tasks) run before the next event. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
