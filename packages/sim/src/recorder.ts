// A state machine that records what it executes, so the simulator can compare nodes. With a
// checkpoint config it also implements the checkpoint hooks of @tspaxos/paxos's StateMachine: its
// state (instance → values executed there) is written as one file on the node's simulated disk
// (MemoryFiles: unsynced bytes and names are lost on a crash), sent to lagging peers, and loaded
// from a received checkpoint idempotently (write beside, fsync, rename, fsync the directory).
import type { CheckpointFiles } from '@tspaxos/checkpoint';
import type { ExecuteContext, StateMachine } from '@tspaxos/paxos/internal';

export const RECORDER_SM_ID = 10;

/** The recorder's checkpoint file, relative to its checkpoint directory. */
export const RECORDER_CHECKPOINT_FILE = 'state';

/** Instance → values of the recorder's smId executed there, in batch order. */
export type RecorderEntries = Array<[number, string[]]>;

export interface RecorderCheckpointPort {
  files: CheckpointFiles;
  /** Reads a file's visible bytes synchronously (MemoryFiles.peek): the state at construction. */
  peek(path: string): Uint8Array | undefined;
  /** This machine's directory for this group (absolute); the checkpoint lives in `<dir>/checkpoint`. */
  dir: string;
  /**
   * The state was replaced by a checkpoint: read from disk at construction ('disk'), or a received
   * one loaded by the install ('install').
   */
  onLoaded(checkpointInstanceId: number, entries: RecorderEntries, how: 'disk' | 'install'): void;
  /** Called inside loadCheckpointState, between writing the new state and switching to it. */
  duringLoad?(): void;
  /** Planted bug: the checkpoint instance id reported is one above what the state holds. */
  plantedIdTooHigh?: boolean;
}

interface CheckpointFile {
  checkpointInstanceId: number;
  entries: RecorderEntries;
}

export class RecordingStateMachine implements StateMachine {
  readonly smId = RECORDER_SM_ID;
  private readonly state = new Map<number, string[]>();
  /** Highest instance whose values are in `state` (executed or loaded). */
  private lastInstanceId = -1;
  /** Highest instance of the durable checkpoint on disk; -1: none. */
  private checkpointId = -1;
  private locks = 0;
  private writing: Promise<void> | undefined;

  constructor(
    private readonly onExecute: (instanceId: number, value: string) => void,
    private readonly checkpoint?: RecorderCheckpointPort,
  ) {
    if (checkpoint === undefined) return;
    const bytes = checkpoint.peek(`${this.checkpointDir}/${RECORDER_CHECKPOINT_FILE}`);
    if (bytes === undefined) return;
    const file = decodeCheckpoint(bytes);
    this.replaceState(file);
    checkpoint.onLoaded(file.checkpointInstanceId, file.entries, 'disk');
  }

  private get checkpointDir(): string {
    return `${this.checkpoint!.dir}/checkpoint`;
  }

  execute(value: Uint8Array, ctx: ExecuteContext): string {
    const text = new TextDecoder().decode(value);
    if (this.checkpoint !== undefined) {
      const values = this.state.get(ctx.instanceId) ?? [];
      values.push(text);
      this.state.set(ctx.instanceId, values);
      this.lastInstanceId = Math.max(this.lastInstanceId, ctx.instanceId);
    }
    this.onExecute(ctx.instanceId, text);
    return `applied ${text}`;
  }

  /**
   * Writes the state executed so far as the new durable checkpoint. Resolves false when there is
   * nothing new, a write is under way, or a sender holds the checkpoint locked.
   */
  async writeCheckpoint(): Promise<boolean> {
    if (this.checkpoint === undefined) return false;
    if (this.locks > 0 || this.writing !== undefined) return false;
    const id = this.lastInstanceId;
    if (id <= this.checkpointId) return false;
    const entries = [...this.state.entries()]
      .filter(([i]) => i <= id)
      .map(([i, v]): [number, string[]] => [i, [...v]]);
    const write = this.install({ checkpointInstanceId: id, entries });
    this.writing = write;
    try {
      await write;
    } finally {
      this.writing = undefined;
    }
    this.checkpointId = Math.max(this.checkpointId, id);
    return true;
  }

  getCheckpointInstanceId(): number {
    if (this.checkpoint === undefined) return -1;
    return this.checkpoint.plantedIdTooHigh && this.checkpointId >= 0
      ? this.checkpointId + 1
      : this.checkpointId;
  }

  lockCheckpointState(): Promise<void> | undefined {
    this.locks++;
    // A write under way finishes before the sender reads the files.
    return this.writing;
  }

  getCheckpointState(): { dir: string; files: string[] } {
    return { dir: this.checkpointDir, files: [RECORDER_CHECKPOINT_FILE] };
  }

  unlockCheckpointState(): void {
    if (this.locks === 0) throw new Error('recorder: unlock without lock');
    this.locks--;
  }

  async loadCheckpointState(
    _group: number,
    dir: string,
    files: string[],
    checkpointInstanceId: number,
  ): Promise<void> {
    const cp = this.checkpoint;
    if (cp === undefined) throw new Error('recorder: no checkpoint config');
    if (files.length !== 1 || files[0] !== RECORDER_CHECKPOINT_FILE)
      throw new Error(`recorder: unexpected checkpoint files ${JSON.stringify(files)}`);
    const path = `${dir}/${RECORDER_CHECKPOINT_FILE}`;
    const stat = await cp.files.stat(path);
    if (stat === undefined) throw new Error(`recorder: no staged ${path}`);
    const file = decodeCheckpoint(await cp.files.read(path, 0, stat.size));
    if (file.checkpointInstanceId > checkpointInstanceId)
      throw new Error(
        `recorder: staged checkpoint of ${file.checkpointInstanceId}, install says ${checkpointInstanceId}`,
      );
    const loaded = { checkpointInstanceId, entries: file.entries };
    const write = this.install(loaded, cp.duringLoad);
    this.writing = write;
    try {
      await write;
    } finally {
      this.writing = undefined;
    }
    this.replaceState(loaded);
    cp.onLoaded(checkpointInstanceId, file.entries, 'install');
  }

  /** Writes `file` beside the live checkpoint, makes it durable, then switches with a rename. */
  private async install(file: CheckpointFile, beforeSwitch?: () => void): Promise<void> {
    const { files, dir } = this.checkpoint!;
    const tmp = `${dir}/checkpoint.tmp`;
    await files.remove(tmp);
    await files.write(tmp, 0, new TextEncoder().encode(JSON.stringify(file)));
    await files.fsync(tmp);
    beforeSwitch?.();
    await files.rename(tmp, `${this.checkpointDir}/${RECORDER_CHECKPOINT_FILE}`);
    await files.fsync(dir);
  }

  private replaceState(file: CheckpointFile): void {
    this.state.clear();
    for (const [i, values] of file.entries) this.state.set(i, [...values]);
    this.lastInstanceId = file.checkpointInstanceId;
    this.checkpointId = file.checkpointInstanceId;
  }
}

function decodeCheckpoint(bytes: Uint8Array): CheckpointFile {
  const parsed = JSON.parse(new TextDecoder().decode(bytes)) as CheckpointFile;
  if (
    typeof parsed !== 'object' ||
    parsed === null ||
    !Number.isSafeInteger(parsed.checkpointInstanceId) ||
    !Array.isArray(parsed.entries)
  )
    throw new Error('recorder: malformed checkpoint file');
  return parsed;
}
