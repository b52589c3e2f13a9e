// Replayer (PhxPaxos src/checkpoint/replayer.cpp): feeds chosen values to state machines that
// build their checkpoint from the log (the optional executeForCheckpoint hook), a bounded number
// per step, and not while a checkpoint is being sent (CheckpointSender::run pauses it).
import type { LogStore } from '@tspaxos/storage';
import type { CheckpointOptions } from './options';
import type { CheckpointStateMachine } from './state-machine';

export interface ReplayerPort {
  group: number;
  store: LogStore;
  machines: readonly CheckpointStateMachine[];
  nowInstanceId(): number;
  /** Applies one chosen value to the machines' checkpoints; false: not now, retry later. */
  apply(instanceId: number, value: Uint8Array): boolean;
}

export class Replayer {
  readonly counters = { played: 0, failed: 0, missing: 0 };
  private paused = false;
  private next: number | undefined;

  constructor(
    private readonly port: ReplayerPort,
    private readonly options: CheckpointOptions,
  ) {}

  /** True when some machine has executeForCheckpoint (else the replayer never runs). */
  get isUsed(): boolean {
    return this.port.machines.some((sm) => sm.executeForCheckpoint !== undefined);
  }

  get isPaused(): boolean {
    return this.paused;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  /** Forgets its position (after a checkpoint install the machines start over). */
  reset(): void {
    this.next = undefined;
  }

  /** The next instance to play (PhxPaxos: the lowest checkpoint instance id + 1). */
  get nextInstanceId(): number | undefined {
    return this.next;
  }

  /** Plays up to replayerStepInstances chosen instances; returns how many. */
  step(): number {
    if (this.paused || !this.isUsed) return 0;
    const { group, store, machines } = this.port;
    if (this.next === undefined) {
      let from = Number.POSITIVE_INFINITY;
      for (const sm of machines)
        if (sm.executeForCheckpoint !== undefined)
          from = Math.min(from, (sm.getCheckpointInstanceId?.(group) ?? -1) + 1);
      this.next = from;
    }
    const end = Math.min(this.port.nowInstanceId(), this.next + this.options.replayerStepInstances);
    let played = 0;
    for (let id = this.next; id < end; id++) {
      const record = store.get(group, id);
      if (record === undefined) {
        this.counters.missing++; // below min chosen: the log no longer has it
        return played;
      }
      if (!this.port.apply(id, record.value)) {
        this.counters.failed++;
        return played;
      }
      this.next = id + 1;
      this.counters.played++;
      played++;
    }
    return played;
  }
}
