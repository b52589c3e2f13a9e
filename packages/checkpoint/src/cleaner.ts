// Cleaner (PhxPaxos src/checkpoint/cleaner.cpp): deletes the log below what every state machine's
// checkpoint already holds, keeping `keep` instances, in bounded steps. PhxPaxos deletes first
// and saves the min chosen id every 100 deletes, then repairs it at start
// (Cleaner::FixMinChosenInstanceID); here the new min chosen id is made durable FIRST, so it never
// lags the deletion, and records a crash leaves below it are garbage the next steps delete.
import type { LogStore } from '@tspaxos/storage';
import type { CheckpointOptions } from './options';
import { type CheckpointStateMachine, groupCheckpointInstanceId } from './state-machine';

export interface CleanerPort {
  group: number;
  store: LogStore;
  machines: readonly CheckpointStateMachine[];
  /** The first instance not chosen here yet (PhxPaxos CheckpointMgr::GetMaxChosenInstanceID). */
  nowInstanceId(): number;
}

export class Cleaner {
  readonly counters = { compactions: 0, steps: 0, recordsDeleted: 0 };
  private paused = false;

  constructor(
    private readonly port: CleanerPort,
    private readonly options: CheckpointOptions,
  ) {}

  get isPaused(): boolean {
    return this.paused;
  }

  /** PhxPaxos Cleaner::Pause / Continue (a node pauses it while it reads the log, for example). */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  /**
   * The lowest instance that must stay: min(checkpoint instance id + 1, now, highest record) −
   * keep, and never below the current min chosen id (PhxPaxos Cleaner::run's loop condition).
   * The highest record always stays: it holds the acceptor's promise, which a restart reloads
   * (forgetting it would let a lower ballot win an instance a proposer thinks it owns).
   */
  target(keep: number): number {
    const { group, store, machines } = this.port;
    const current = store.getMinChosenInstanceId(group);
    const cp = groupCheckpointInstanceId(machines, group);
    const max = store.maxInstanceId(group);
    if (cp === undefined || cp < 0 || max === undefined) return current;
    const bound = Math.min(cp + 1, this.port.nowInstanceId(), max) - keep;
    return Math.max(current, bound);
  }

  /**
   * Raises the min chosen id to target(keep), durably, before anything is deleted. Returns the
   * new min chosen id; step() then deletes below it.
   */
  async plan(keep: number): Promise<number> {
    if (!Number.isSafeInteger(keep) || keep < 0)
      throw new RangeError(`keep must be a non-negative integer, got ${String(keep)}`);
    const { group, store } = this.port;
    const target = this.target(keep);
    if (target > store.getMinChosenInstanceId(group)) {
      await store.setMinChosenInstanceId(group, target);
      this.counters.compactions++;
    }
    return target;
  }

  /**
   * One bounded deletion below the min chosen id (the store bounds records and bytes per call).
   * Returns how many records went; 0 when paused or nothing is left.
   */
  step(): number {
    if (this.paused) return 0;
    const { group, store } = this.port;
    const deleted = store.deleteBelow(
      group,
      store.getMinChosenInstanceId(group),
      this.options.cleanerStepRecords,
    );
    if (deleted > 0) {
      this.counters.steps++;
      this.counters.recordsDeleted += deleted;
    }
    return deleted;
  }
}
