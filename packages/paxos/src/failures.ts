// How a group fails: a failed write stops it (E_STORAGE), a task that threw is a bug (counted; a
// broken invariant stops it), and the recovery proposal at start may end with expected codes. A
// coded failure of a checkpoint install is told apart from a bug, which is rethrown. Each failure
// is counted with its code and message in status().errors.
import { InvariantError, type Logger } from '@tspaxos/core';
import { invariantStop, PaxosError } from './errors';
import type { GroupConfig } from './group-config';
import type { GroupCounters, GroupErrors } from './group-status';

/** Codes a recovery no-op proposal may end with that are expected outcomes, not failures. */
export const RECOVERY_EXPECTED_CODES = new Set([
  'E_TIMEOUT',
  'E_STOPPED',
  'E_NOT_MEMBER',
  'E_QUEUE_FULL',
  'E_CHECKSUM_MISMATCH',
  'E_STORAGE',
  'E_EXECUTE_FAILED',
  // A checkpoint was installed meanwhile: the group restarted from it (found by the simulator).
  'E_CHECKPOINT_INSTALLED',
  // Another node holds the lease (forwarding on): its proposals settle the accepted value.
  'E_NOT_MASTER',
]);

export function describeError(error: unknown): { code: string; message: string } {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { code: typeof code === 'string' ? code : error.name, message: error.message };
  }
  return { code: 'NON_ERROR_THROWN', message: String(error) };
}

/** A coded failure of the checkpoint install (as opposed to a bug, which is rethrown). */
export function isInstallError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === 'E_LOAD_FAILED' || code === 'E_CORRUPT_MANIFEST';
}

/** What the failure handling reads and moves of its group. */
export interface FailuresContext {
  readonly config: GroupConfig;
  readonly counters: GroupCounters;
  readonly errors: GroupErrors;
  /** Why the group stopped (undefined while it runs). */
  stoppedReason(): PaxosError | undefined;
  stopGroup(error: PaxosError): void;
  log: Logger;
}

export class GroupFailures {
  constructor(private readonly group: FailuresContext) {}

  /**
   * A write to the log failed. A store whose fsync failed refuses every later write (the kernel
   * may have dropped the dirty pages), so the group cannot go on: it stops with E_STORAGE and
   * says why in its status; the process and the other groups' state are untouched.
   */
  persistFailed(error: unknown): void {
    const described = describeError(error);
    this.group.errors.persistFailures.count++;
    this.group.errors.persistFailures.last = described;
    this.group.stopGroup(
      new PaxosError(
        'E_STORAGE',
        `group ${this.group.config.group}: a write to the log failed (${described.code}: ${described.message}); the group stopped`,
        { cause: error },
      ),
    );
  }

  /**
   * A task of the loop threw: a bug (expected conditions are counted drops, never thrown). A
   * broken invariant also stops the group: its state can no longer be trusted to keep Paxos's
   * promises (etcd raft panics; PhxPaxos asserts and dies; a library stops only the group).
   */
  taskFailed(error: unknown): void {
    const described = describeError(error);
    this.group.errors.taskErrors.count++;
    this.group.errors.taskErrors.last = described;
    this.group.log('error', 'task-failed', { ...described });
    if (error instanceof InvariantError) this.group.stopGroup(invariantStop(error));
  }

  /** The recovery no-op at start ended: expected codes are counted, anything else is a bug. */
  recoveryProposalFailed(error: unknown): void {
    // The group's own stop reason is already in its status (and counted where it arose).
    if (
      error instanceof PaxosError &&
      (RECOVERY_EXPECTED_CODES.has(error.code) || error === this.group.stoppedReason())
    ) {
      this.group.counters.recoveryProposalsFailed++;
      this.group.log('info', 'recovery-proposal-ended', { code: error.code });
      return;
    }
    this.taskFailed(error);
  }
}
