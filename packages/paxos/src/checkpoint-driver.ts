// How a group drives its checkpoint roles (design.md §4): checkpoint frames from the network go
// to the manager on the group's loop (a finished install restarts the group from the checkpoint),
// the roles' timer (sender timeouts, checkpoint mode, cleaner and replayer steps), and compaction.
import type { CheckpointManager } from '@tspaxos/checkpoint';
import { StorageError } from '@tspaxos/storage';
import type { CheckpointMsg } from '@tspaxos/transport';
import { PaxosError } from './errors';
import { isInstallError } from './failures';
import type { GroupConfig } from './group-config';
import type { GroupCounters } from './group-status';
import type { IOLoop } from './io-loop';

/** What the driver reads and calls of its group. */
export interface CheckpointDriverContext {
  readonly config: GroupConfig;
  readonly loop: IOLoop;
  readonly counters: GroupCounters;
  checkpoint(): CheckpointManager | undefined;
  closed(): boolean;
  /** Why the group stopped (undefined while it runs). */
  stoppedReason(): PaxosError | undefined;
  /** A write failed: the group stops with E_STORAGE. */
  persistFailed(error: unknown): void;
  stopGroup(error: PaxosError): void;
  /** An install finished: the group starts over from the checkpoint. */
  restartFromCheckpoint(checkpointInstanceId: number): void;
}

export class CheckpointDriver {
  private cancelTimerFn: (() => void) | undefined;

  constructor(private readonly group: CheckpointDriverContext) {}

  /** A checkpoint frame from the network for this group; `from` is the authenticated sender. */
  receive(from: number, msg: CheckpointMsg): void {
    this.group.counters.messagesReceived++;
    const manager = this.group.checkpoint();
    if (manager === undefined || msg.nodeId !== from) {
      this.group.counters.messagesDropped++;
      return;
    }
    const accepted = this.group.loop.enqueueMessage(async () => {
      if (this.group.closed() || this.group.stoppedReason() !== undefined) return;
      let event;
      try {
        event = await manager.handle(from, msg);
      } catch (error) {
        // A write of the install failed (the store refuses writes after a failed fsync): the
        // group stops with E_STORAGE, as for any failed write; the record stays for a restart.
        if (error instanceof StorageError) {
          this.group.persistFailed(error);
          return;
        }
        // The install could not finish (a machine failed to load, a staged file is damaged): the
        // record stays, a restart tries again; meanwhile the group serves status only.
        if (!isInstallError(error)) throw error;
        this.group.stopGroup(
          new PaxosError('E_CHECKPOINT_INSTALL_FAILED', String((error as Error).message), {
            cause: error,
          }),
        );
        return;
      }
      if (event?.kind === 'installed') this.group.restartFromCheckpoint(event.checkpointInstanceId);
    });
    if (!accepted) this.group.counters.messagesDropped++;
  }

  /**
   * Deletes the log below the checkpoint, keeping `keep` instances (node.compact). The new min
   * chosen id is durable when this resolves; records go in bounded steps on the next ticks.
   */
  compact(keep: number): Promise<number> {
    const manager = this.group.checkpoint();
    if (manager === undefined)
      return Promise.reject(new PaxosError('E_BAD_ARGUMENT', 'the group has no checkpoint config'));
    if (this.group.closed())
      return Promise.reject(new PaxosError('E_STOPPED', 'the node is stopped'));
    // One durable write of the min chosen id (no loop task: a stopping loop drops its queue and
    // would leave this promise unsettled); the deletion steps run on the loop's checkpoint timer.
    return manager.compact(keep).then((minChosen) => {
      this.armTimer(0);
      return minChosen;
    });
  }

  /** The checkpoint roles' timer: sender timeouts, mode, cleaner and replayer steps. */
  armTimer(delayMs?: number): void {
    const manager = this.group.checkpoint();
    if (manager === undefined || this.group.closed()) return;
    const options = this.group.config.checkpoint!.options;
    this.cancelTimerFn?.();
    this.cancelTimerFn = this.group.loop.schedule(delayMs ?? options.tickIntervalMs, async () => {
      this.cancelTimerFn = undefined;
      if (this.group.closed()) return;
      let more = false;
      try {
        more = await manager.tick({ autoCompact: this.group.config.checkpoint!.autoCompact });
      } finally {
        this.armTimer(more ? options.cleanerStepDelayMs : undefined);
      }
    });
  }

  /** Stops the roles' timer (the group stops). */
  cancelTimer(): void {
    this.cancelTimerFn?.();
  }
}
