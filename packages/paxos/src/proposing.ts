// Proposing on a group (PhxPaxos Instance::CheckNewValue and the Committer's timeouts): what a
// proposal must pass before it is queued, handing the next waiting value to the proposer when this
// node may propose, and one timer at the earliest commit deadline.
import type { CheckpointManager } from '@tspaxos/checkpoint';
import { ClosedLoopWait } from '@tspaxos/core';
import type { Learner } from '@tspaxos/learner';
import type { Committer, ProposeResult } from './committer';
import { PaxosError } from './errors';
import type { Executor } from './executor';
import type { GroupConfig } from './group-config';
import type { GroupCounters } from './group-status';
import type { IOLoop } from './io-loop';
import type { MasterStateMachine } from './master';
import type { Proposer } from './proposer';
import {
  BATCH_HEADER_BYTES,
  BATCH_ITEM_OVERHEAD_BYTES,
  IDENTITY_HEADER_BYTES,
  MASTER_SM_ID,
  NO_SM_ID,
  SINGLE_VALUE_OVERHEAD_BYTES,
  SYSTEM_SM_ID,
} from './value';

/** Promises propose() returned already rejected: refused before queueing, nothing left the node. */
const refusals = new WeakSet<Promise<unknown>>();

function refuse(error: PaxosError): Promise<never> {
  const p = Promise.reject(error);
  refusals.add(p);
  return p;
}

/** True for a promise Group.propose returned already rejected (never queued). */
export function refusedBeforeQueueing(p: Promise<unknown>): boolean {
  return refusals.has(p);
}

/** Errors of values handed back unproposed because another node's lease became live here. */
const handBacks = new WeakSet<PaxosError>();

/** True when a queued value was handed back unproposed (never chosen): it may go to the master. */
export function isHandedBack(error: unknown): boolean {
  return error instanceof PaxosError && handBacks.has(error);
}

/** What proposing reads of its group. */
export interface ProposingContext {
  readonly config: GroupConfig;
  readonly loop: IOLoop;
  readonly committer: Committer;
  readonly proposer: Proposer;
  readonly executor: Executor;
  readonly master: MasterStateMachine;
  readonly counters: GroupCounters;
  /** Replaced when the group restarts from a checkpoint. */
  readonly learner: Learner;
  checkpoint(): CheckpointManager | undefined;
  members(): readonly number[];
  isFollower(): boolean;
  closed(): boolean;
  /** Why the group stopped (undefined while it runs). */
  stoppedReason(): PaxosError | undefined;
}

export class Proposing {
  private cancelCommitTimer: (() => void) | undefined;
  private commitTimerAt = Number.POSITIVE_INFINITY;
  /** Values the last batch instance of this node carried (undefined: it is settled). */
  private lastBatchValues: number | undefined;
  /** committer.counters.conflicts when it was taken: lost, its values are back in the queue. */
  private conflictsAtTake = 0;
  /**
   * The next batch instance's wait for its values (batchWaitMs; `@tspaxos/core` ClosedLoopWait):
   * its target is the last one's callers plus the values that queued while it was out, i.e.
   * every caller of a closed loop; a wait that runs out proposes what is there, and then the next
   * CLOSED_LOOP_WAIT_PAUSE batch instances do not wait.
   */
  private readonly batchWait: ClosedLoopWait;

  constructor(private readonly group: ProposingContext) {
    this.batchWait = new ClosedLoopWait({
      waitMs: group.config.options.batchWaitMs,
      schedule: (delayMs, fn) => this.group.loop.schedule(delayMs, fn),
      ranOut: () => this.checkNewValue(),
      onWait: () => this.group.counters.batchWaits++,
      onFilled: () => this.group.counters.batchWaitsFilled++,
    });
  }

  propose(
    smId: number,
    value: Uint8Array,
    batch: boolean,
    timeoutMs: number,
  ): Promise<ProposeResult> {
    if (this.group.closed()) return refuse(new PaxosError('E_STOPPED', 'the node is stopped'));
    if (this.group.stoppedReason() !== undefined) return refuse(this.group.stoppedReason()!);
    const needs = this.group.checkpoint()?.needsCheckpoint;
    if (needs !== undefined)
      return refuse(new PaxosError('E_NEEDS_CHECKPOINT', needs.message, { cause: needs }));
    if (this.group.isFollower())
      return refuse(new PaxosError('E_FOLLOWER', 'a follower cannot propose'));
    if (smId !== NO_SM_ID && !this.group.executor.has(smId)) {
      return refuse(
        new PaxosError('E_UNKNOWN_STATE_MACHINE', `no state machine with id ${smId} on this node`),
      );
    }
    // What fits one Accept frame once packed (options.ts maxValueBytesForFrame); a batch value
    // carries the batch's own header and item header besides.
    const maxBytes =
      this.group.config.options.maxValueBytes -
      (batch
        ? IDENTITY_HEADER_BYTES +
          BATCH_HEADER_BYTES +
          BATCH_ITEM_OVERHEAD_BYTES -
          SINGLE_VALUE_OVERHEAD_BYTES
        : 0);
    if (value.length > maxBytes) {
      return refuse(
        new PaxosError(
          'E_VALUE_TOO_LARGE',
          `value of ${value.length} bytes exceeds the ${batch ? 'batchPropose' : 'propose'} limit of ${maxBytes} (maxValueBytes ${this.group.config.options.maxValueBytes})`,
        ),
      );
    }
    const now = this.group.config.scheduler.now();
    const queued = this.group.committer.counters.proposed;
    const promise = this.group.committer.add(smId, value, batch, now, timeoutMs);
    // A full queue refuses it at once, already rejected: a refusal like the ones above.
    if (this.group.committer.counters.proposed === queued) {
      refusals.add(promise);
      return promise;
    }
    this.group.loop.enqueue(() => this.checkNewValue());
    this.armCommitTimer(now + timeoutMs);
    return promise;
  }

  /** Hands the next waiting value to the proposer when this node may propose. */
  checkNewValue(): void {
    if (this.group.closed() || this.group.stoppedReason() !== undefined || this.group.isFollower())
      return;
    if (this.group.committer.inFlight !== undefined) return;
    this.settledBatch();
    if (!this.group.committer.hasWork) return;
    if (!this.group.learner.isLatest()) return; // behind someone: learn first, propose after
    if (this.group.config.forwarding === true) this.handBackUserValues();
    if (!this.group.members().includes(this.group.config.nodeId)) {
      this.group.committer.take(this.group.proposer.instanceId);
      this.group.committer.failed(
        new PaxosError(
          'E_NOT_MEMBER',
          `node ${this.group.config.nodeId} is not a member of group ${this.group.config.group}`,
        ),
      );
      return;
    }
    if (this.waitsForBatch()) return;
    const flight = this.group.committer.take(this.group.proposer.instanceId);
    if (flight === undefined) return;
    if (flight.batch) {
      this.lastBatchValues = flight.entries.length;
      this.conflictsAtTake = this.group.committer.counters.conflicts;
      this.batchWait.started();
    }
    this.group.proposer.newValue(flight.value);
  }

  /**
   * At the first check after the last batch instance was settled (chosen and applied, lost, or
   * abandoned): its callers are being answered now, and the batch values queued meanwhile are
   * already here; the next batch instance waits for as many as both (values of propose(), a
   * master renewal or a membership change, go in instances of their own and do not count). One that lost its instance has its
   * values back in the queue: nobody to wait for.
   */
  private settledBatch(): void {
    if (this.lastBatchValues === undefined) return;
    const { committer, config } = this.group;
    this.batchWait.settled(
      committer.counters.conflicts !== this.conflictsAtTake
        ? 0
        : Math.min(
            this.lastBatchValues + committer.batchQueueLength,
            config.options.batchMaxValues,
          ),
    );
    this.lastBatchValues = undefined;
  }

  /**
   * True while the next batch instance waits for its values (options.batchWaitMs): as many as
   * the last batch instance's callers plus the values that queued while it was out, which is
   * every caller when they are a closed loop (each proposes again once answered, a round trip
   * later). Every proposal checks again; the wait's timer proposes what is there when it runs
   * out, and then the next CLOSED_LOOP_WAIT_PAUSE batch instances do not wait (callers that
   * do not come back, or come back later than the wait, cost one wait per that many instances).
   * Only a batch value at the queue's head waits: a propose() value, a master renewal or a
   * membership change ends a wait under way and goes at once.
   */
  private waitsForBatch(): boolean {
    const { committer } = this.group;
    return this.batchWait.waits(committer.batchQueueLength, committer.headIsBatch);
  }

  /**
   * The forwarding rule (forwarding.ts): while another node's lease is live here, no user value
   * or barrier is proposed from this node. Those waiting (queued before the lease was learned, or
   * back from an instance they lost) are refused, never chosen (isHandedBack): forwarding.ts sends
   * them to that master.
   */
  private handBackUserValues(): void {
    const master = this.group.master.master();
    if (master === undefined || master.nodeId === this.group.config.nodeId) return;
    if (this.group.config.faults?.proposeDespiteLiveLease === true) return;
    const error = new PaxosError(
      'E_NOT_MASTER',
      `node ${master.nodeId} holds the master lease of group ${this.group.config.group}: the value was not proposed here`,
    );
    handBacks.add(error);
    const n = this.group.committer.rejectWaiting(
      (smId) => smId !== SYSTEM_SM_ID && smId !== MASTER_SM_ID,
      error,
    );
    this.group.counters.valuesHandedBack += n;
  }

  /**
   * Keeps one timer at the earliest commit deadline. A new proposal passes its own deadline, so
   * proposing stays O(1); the full scan of the queue runs only when the timer fires.
   */
  private armCommitTimer(deadline?: number): void {
    const next = deadline ?? this.group.committer.nextDeadline();
    if (next === undefined || next >= this.commitTimerAt) return;
    this.cancelCommitTimer?.();
    this.commitTimerAt = next;
    this.cancelCommitTimer = this.group.loop.schedule(
      Math.max(0, next - this.group.config.scheduler.now()),
      () => {
        this.cancelCommitTimer = undefined;
        this.commitTimerAt = Number.POSITIVE_INFINITY;
        if (this.group.committer.expire(this.group.config.scheduler.now()))
          this.group.proposer.exit();
        this.armCommitTimer();
        this.checkNewValue();
      },
    );
  }

  /** Drops the commit timer once nothing waits or is in flight. */
  rearmCommitTimer(): void {
    if (!this.group.committer.hasWork && this.group.committer.inFlight === undefined) {
      this.cancelCommitTimer?.();
      this.cancelCommitTimer = undefined;
      this.commitTimerAt = Number.POSITIVE_INFINITY;
    }
  }

  /** Drops the commit timer and a batch's wait (the group stops). */
  stop(): void {
    this.cancelCommitTimer?.();
    this.batchWait.cancel();
  }
}
