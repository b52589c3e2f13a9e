// What the checkpoint cores need of a state machine: the checkpoint hooks of PhxPaxos's
// StateMachine (include/phxpaxos/sm.h). @tspaxos/paxos's StateMachine has the same shape, so a
// paxos state machine is passed here as it is.

export interface CheckpointStateMachine {
  readonly smId: number;
  /** Highest instance in this machine's durable checkpoint; -1 when none. */
  getCheckpointInstanceId?(group: number): number;
  /** Freezes the checkpoint files while they are copied (PhxPaxos LockCheckpointState). */
  lockCheckpointState?(): void | Promise<void>;
  /** The checkpoint's directory (absolute) and its files, relative to it. */
  getCheckpointState?(group: number): { dir: string; files: string[] };
  unlockCheckpointState?(): void | Promise<void>;
  /**
   * Replaces the state with a received checkpoint. Must be idempotent: after a crash the
   * install calls it again with the same files (write beside the old state, then rename).
   */
  loadCheckpointState?(
    group: number,
    dir: string,
    files: string[],
    checkpointInstanceId: number,
  ): void | Promise<void>;
  /** Applies a chosen value to the checkpoint only (PhxPaxos ExecuteForCheckpoint); false: retry. */
  executeForCheckpoint?(group: number, instanceId: number, value: Uint8Array): boolean;
}

/**
 * The group's checkpoint instance id: the lowest of its machines' (PhxPaxos
 * SMFac::GetCheckpointInstanceID); a machine without the hook counts as -1 (no checkpoint, as
 * PhxPaxos's default StateMachine::GetCheckpointInstanceID), so it blocks compaction. With no
 * machine at all, undefined.
 */
export function groupCheckpointInstanceId(
  machines: readonly CheckpointStateMachine[],
  group: number,
): number | undefined {
  let min: number | undefined;
  for (const sm of machines) {
    const id = sm.getCheckpointInstanceId?.(group) ?? -1;
    min = min === undefined ? id : Math.min(min, id);
  }
  return min;
}
