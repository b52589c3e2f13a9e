// What follows a learned instance (PhxPaxos Instance::ReceiveMsgForLearner after learning, and
// Committer's settle): the value is executed on the state machines (executor.ts, SMFac), the
// system-variable writes it caused are awaited, the committer's proposal is settled, and the group
// moves to the next instance. A failed execute is retried after executeRetryDelayMs; an unknown
// machine, a bad argument or a broken invariant stops the group.
import { InvariantError, type Logger } from '@tspaxos/core';
import type { Learner } from '@tspaxos/learner';
import type { CommitInFlight, Committer } from './committer';
import { invariantStop, PaxosError } from './errors';
import type { Executor } from './executor';
import { describeError } from './failures';
import type { GroupConfig } from './group-config';
import type { GroupCounters, GroupErrors } from './group-status';
import type { IOLoop } from './io-loop';
import type { Proposer } from './proposer';
import { isPromiseLike } from './scheduler';
import { bytesEqual, hasIdentity, withoutIdentity } from './value';

/** What the execution reads and moves of its group. */
export interface ExecutionContext {
  readonly config: GroupConfig;
  readonly loop: IOLoop;
  readonly executor: Executor;
  readonly committer: Committer;
  readonly proposer: Proposer;
  /** Replaced when the group restarts from a checkpoint. */
  readonly learner: Learner;
  readonly counters: GroupCounters;
  readonly errors: GroupErrors;
  /** Neither stopped nor closed. */
  running(): boolean;
  /** System-variable writes are in flight. */
  hasPendingWrites(): boolean;
  /** Awaits the system-variable writes in flight; false when one failed (the group stopped). */
  flushWrites(): Promise<boolean>;
  stopGroup(error: PaxosError): void;
  /**
   * The learned instance is settled: the chain goes on from it and every role moves to the next
   * instance; returns what must be awaited (retried messages), if anything.
   */
  nextInstance(): Promise<void> | undefined;
  log: Logger;
}

export class Execution {
  private executeRetryArmed = false;

  constructor(private readonly group: ExecutionContext) {}

  /**
   * Runs after every learner message: executes what was learned (a batch streamed by a peer is
   * executed instance by instance, in order), acks, resumes the sender.
   */
  async afterLearnerMessage(): Promise<void> {
    // Adopted system variables could not be saved (no await when nothing is pending: a microtask
    // per instance of a streamed batch is measurable).
    if (this.group.hasPendingWrites() && !(await this.group.flushWrites())) return;
    const before = this.group.learner.instanceId;
    while (this.group.learner.state.isLearned && this.group.running()) {
      const at = this.group.learner.instanceId;
      const learning = this.onLearned();
      if (learning !== undefined) await learning;
      if (this.group.learner.instanceId === at) break; // execution failed: retried later
    }
    const count = this.group.learner.instanceId - before;
    if (count > 0)
      this.group.config.onEvent?.({
        type: 'learned',
        group: this.group.config.group,
        instanceId: this.group.learner.instanceId,
        count,
      });
    this.group.learner.flushAck();
    this.group.learner.pumpSender();
  }

  /**
   * Executes the learned value and moves to the next instance. Synchronous (returns undefined)
   * unless something must be awaited: an execute() that returned a promise, a system-variable
   * write, or retried messages. A streamed batch learns thousands of instances in a row, and an
   * async call plus an await per instance showed in the receiver's catch-up profile.
   */
  private onLearned(): Promise<void> | undefined {
    const instanceId = this.group.learner.instanceId;
    const value = this.group.learner.state.value;
    const flight = this.group.committer.inFlight;
    // Mine only if the chosen value carries my proposal's identity: equal bytes from another node
    // (or another barrier) are not mine, and my value adopted by another proposer still is.
    const isMine =
      flight !== undefined &&
      flight.instanceId === instanceId &&
      (this.group.config.faults?.matchValueByBytesOnly === true
        ? bytesEqual(withoutIdentity(flight.value), withoutIdentity(value))
        : hasIdentity(value, flight.identity));
    let executed: unknown[] | Promise<unknown[]>;
    try {
      executed = this.group.executor.execute(instanceId, value, isMine);
    } catch (error) {
      this.executeFailed(instanceId, isMine, error);
      return undefined;
    }
    if (isPromiseLike(executed))
      return this.afterAsyncExecute(executed, instanceId, flight, isMine);
    return this.afterExecute(executed, instanceId, flight, isMine);
  }

  private async afterAsyncExecute(
    executed: Promise<unknown[]>,
    instanceId: number,
    flight: CommitInFlight | undefined,
    isMine: boolean,
  ): Promise<void> {
    let results: unknown[];
    try {
      results = await executed;
    } catch (error) {
      this.executeFailed(instanceId, isMine, error);
      return;
    }
    await this.afterExecute(results, instanceId, flight, isMine);
  }

  private executeFailed(instanceId: number, isMine: boolean, error: unknown): void {
    this.group.counters.executeFailures++;
    this.group.errors.executeFailures.count++;
    this.group.errors.executeFailures.last = describeError(error);
    this.group.proposer.cancelSkipPrepare();
    if (error instanceof InvariantError) error = invariantStop(error);
    if (
      error instanceof PaxosError &&
      (error.code === 'E_UNKNOWN_STATE_MACHINE' ||
        error.code === 'E_BAD_ARGUMENT' ||
        error.code === 'E_INVARIANT')
    ) {
      this.group.stopGroup(error);
      return;
    }
    this.group.log('error', 'execute-failed', { instanceId, error: String(error) });
    if (isMine)
      this.group.committer.failed(
        new PaxosError('E_EXECUTE_FAILED', `state machine failed: ${String(error)}`, {
          cause: error,
        }),
      );
    this.armExecuteRetry();
  }

  /** After a successful execute: saves what must be saved, settles the commit, moves on. */
  private afterExecute(
    results: unknown[],
    instanceId: number,
    flight: CommitInFlight | undefined,
    isMine: boolean,
  ): Promise<void> | undefined {
    if (this.group.hasPendingWrites())
      return this.group.flushWrites().then((ok) =>
        // a membership change could not be saved: the group stopped
        ok ? this.finishLearned(results, instanceId, flight, isMine) : undefined,
      );
    return this.finishLearned(results, instanceId, flight, isMine);
  }

  private finishLearned(
    results: unknown[],
    instanceId: number,
    flight: CommitInFlight | undefined,
    isMine: boolean,
  ): Promise<void> | undefined {
    if (isMine) this.group.committer.committed(results);
    else if (flight !== undefined && flight.instanceId === instanceId)
      this.group.committer.conflicted();
    this.group.counters.instancesLearned++;
    return this.group.nextInstance();
  }

  private armExecuteRetry(): void {
    if (this.executeRetryArmed) return;
    this.executeRetryArmed = true;
    this.group.loop.schedule(this.group.config.options.executeRetryDelayMs, async () => {
      this.executeRetryArmed = false;
      if (this.group.learner.state.isLearned) await this.afterLearnerMessage();
    });
  }
}
