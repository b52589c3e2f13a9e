// The no-unexpected-error invariant: nothing inside a live node fails that a fault did not cause.
// A task that throws, an execute() that fails, a group that stops, a start, a checkpoint write or
// a compaction that fails, a count in status().errors: each is a violation ('error'; 'invariant'
// when an assertion failed, E_INVARIANT; 'chain' for a checksum mismatch), unless the node's disk
// was made to fail (an injected fsync failure: expected, logged or counted).
import type { PaxosErrorCode } from '@tspaxos/paxos/internal';
import type { PathKind } from '../coverage';
import type { Invariant } from '../result';
import type { SimNode } from '../sim-node';
import { describeError } from '../trace';

/** What a failed assertion in @tspaxos/paxos throws and stops its group with (InvariantError). */
const INVARIANT_CODE: PaxosErrorCode = 'E_INVARIANT';

export type NodeErrorEvent =
  /** An incarnation's start rejected. */
  | { kind: 'start-failed'; node: SimNode; error: unknown }
  /** A live node's status, read when it crashes and at the end of the run. */
  | { kind: 'status'; node: SimNode }
  /** A live incarnation's log line. */
  | { kind: 'log'; node: SimNode; event: string; fields: Record<string, unknown> }
  | { kind: 'checkpoint-write-failed'; node: number; group: number; error: unknown }
  | {
      kind: 'compact-failed';
      node: number;
      group: number;
      error: { code?: string; message?: string };
      /** The node's store refuses writes after an injected fsync failure. */
      storeFailed: boolean;
    };

export interface NodeErrorsDeps {
  groups: number;
  paths: Record<PathKind, number>;
  log: (line: string) => void;
  /** Records a violation without throwing (node callbacks). */
  note: (invariant: Invariant, message: string) => void;
  eventName: () => string;
}

export class NodeErrorsChecker {
  constructor(private readonly d: NodeErrorsDeps) {}

  observe(e: NodeErrorEvent): void {
    switch (e.kind) {
      case 'start-failed':
        // A start that writes (a checkpoint install finished, a log reset) on a disk whose fsync
        // was made to fail: the node is faulted, its disk is replaced later.
        if (
          (e.error as { code?: string }).code === 'E_IO' &&
          e.node.store.failedWith !== undefined
        ) {
          this.d.log(`n${e.node.id} could not start: its fsync failed (the disk will be replaced)`);
          return;
        }
        this.d.note('error', `n${e.node.id} failed to start: ${describeError(e.error)}`);
        return;
      case 'status':
        this.status(e.node);
        return;
      case 'log':
        this.logLine(e.node, e.event, e.fields);
        return;
      case 'checkpoint-write-failed':
        this.d.note(
          'error',
          `n${e.node} group ${e.group}: checkpoint write failed: ${String(e.error)}`,
        );
        return;
      case 'compact-failed': {
        // Waiting for a checkpoint itself, or its store refuses writes after an injected fsync failure.
        const { code, message } = e.error;
        const expected =
          code === 'E_NEEDS_CHECKPOINT' ||
          ((code === 'E_STORAGE' || code === 'E_IO') && e.storeFailed);
        if (expected) {
          this.d.log(`n${e.node} compact group ${e.group} refused: ${code}`);
          return;
        }
        this.d.note('error', `n${e.node} group ${e.group}: compact failed: ${code}: ${message}`);
        return;
      }
    }
  }

  /** Nothing to judge at the end: every live node's status was observed at the harvest. */
  finish(): void {}

  /** status().errors of a live node: task errors and execute failures are always bugs. */
  private status(n: SimNode): void {
    if (!n.alive || n.node === undefined) return;
    for (let g = 0; g < this.d.groups; g++) {
      const { errors } = n.node.status(g);
      for (const kind of ['taskErrors', 'executeFailures', 'persistFailures'] as const) {
        const e = errors[kind];
        if (e.count === 0) continue;
        // A write fails only after an injected fsync failure (the group then stopped).
        if (kind === 'persistFailures' && n.store.fsyncFailures > 0) continue;
        this.d.note(
          e.last?.code === INVARIANT_CODE ? 'invariant' : 'error',
          `n${n.id} group ${g}: status().errors.${kind} = ${e.count}, last ${e.last?.code}: ${e.last?.message}`,
        );
      }
    }
  }

  private logLine(n: SimNode, event: string, fields: Record<string, unknown>): void {
    switch (event) {
      case 'task-failed':
        this.d.note(
          fields.code === INVARIANT_CODE ? 'invariant' : 'error',
          `n${n.id} group ${String(fields.group)}: a task threw ${String(fields.code)}: ${String(fields.message)} (during event "${this.d.eventName()}")`,
        );
        return;
      case 'execute-failed':
        this.d.note(
          'error',
          `n${n.id} group ${String(fields.group)}: execute() failed at instance ${String(fields.instanceId)}: ${String(fields.error)} (during event "${this.d.eventName()}")`,
        );
        return;
      case 'group-stopped':
        if (fields.code === 'E_STORAGE' && n.store.failedWith !== undefined) {
          this.d.paths['groups-stopped-by-fsync-failure']++;
          return; // the node is faulted: its disk is replaced later
        }
        this.d.note(
          fields.code === 'E_CHECKSUM_MISMATCH'
            ? 'chain'
            : fields.code === INVARIANT_CODE
              ? 'invariant'
              : 'error',
          `n${n.id} group ${String(fields.group)} stopped: ${String(fields.message)} (during event "${this.d.eventName()}")`,
        );
        return;
      default:
    }
  }
}
