// Test helpers: a state machine whose checkpoint is a set of files on a file port, and a
// sender/receiver pair joined by a queue the test delivers by hand.
import { MemoryLogStore } from '@tspaxos/storage';
import type { CheckpointMsg } from '@tspaxos/transport';
import {
  CheckpointReceiver,
  CheckpointSender,
  MemoryFiles,
  resolveCheckpointOptions,
} from '../src';
import type { CheckpointFiles } from '../src/files';
import type { CheckpointOptions } from '../src/options';
import type { CheckpointStateMachine } from '../src/state-machine';

/** A machine whose state is the files under `dir` (a map of path → bytes), checkpointed at `cp`. */
export class FileStateMachine implements CheckpointStateMachine {
  locks = 0;
  unlocks = 0;
  loads = 0;
  loadedFrom: string | undefined;

  constructor(
    readonly smId: number,
    private readonly files: CheckpointFiles,
    public dir: string,
    public paths: string[],
    public cp: number,
  ) {}

  getCheckpointInstanceId(): number {
    return this.cp;
  }
  lockCheckpointState(): void {
    this.locks++;
  }
  unlockCheckpointState(): void {
    this.unlocks++;
  }
  getCheckpointState(): { dir: string; files: string[] } {
    return { dir: this.dir, files: this.paths };
  }
  async loadCheckpointState(_g: number, dir: string, files: string[], cp: number): Promise<void> {
    // Idempotent: copy into a fresh live directory, then switch by rename (README).
    const live = `${this.dir}.next`;
    await this.files.remove(live);
    for (const f of files) {
      const st = await this.files.stat(`${dir}/${f}`);
      await this.files.write(`${live}/${f}`, 0, await this.files.read(`${dir}/${f}`, 0, st!.size));
      await this.files.fsync(`${live}/${f}`);
    }
    await this.files.fsync(live);
    await this.files.remove(this.dir);
    if (files.length > 0) await this.files.rename(live, this.dir);
    await this.files.fsync(this.dir.slice(0, this.dir.lastIndexOf('/')));
    this.paths = files;
    this.cp = cp;
    this.loads++;
    this.loadedFrom = dir;
  }
}

export function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

export interface Pair {
  options: CheckpointOptions;
  senderFiles: MemoryFiles;
  receiverFiles: MemoryFiles;
  store: MemoryLogStore;
  senderSm: FileStateMachine;
  receiverSm: FileStateMachine;
  sender: CheckpointSender;
  receiver: CheckpointReceiver;
  /** Frames sender → receiver not yet delivered. */
  toReceiver: CheckpointMsg[];
  /** Acks receiver → sender not yet delivered. */
  toSender: CheckpointMsg[];
  now: { ms: number };
  /** Delivers until both queues are empty; `tamper` may change or drop a frame. */
  run(tamper?: (msg: CheckpointMsg) => CheckpointMsg | undefined): Promise<void>;
}

export async function makePair(
  fileSizes: number[] = [3 * 1024 + 5, 0, 1024],
  input: Partial<CheckpointOptions> = {},
): Promise<Pair> {
  const options = resolveCheckpointOptions({
    chunkBytes: 1024,
    ackLeadChunks: 3,
    ackLeadBytes: 4 * 1024,
    freeSpaceMarginBytes: 0,
    ...input,
  });
  const senderFiles = new MemoryFiles();
  const receiverFiles = new MemoryFiles();
  const paths = fileSizes.map((_, i) => (i === 1 ? `sub/dir/f${i}` : `f${i}`));
  for (let i = 0; i < fileSizes.length; i++)
    await senderFiles.write(`/a/sm/${paths[i]}`, 0, bytes(fileSizes[i]!, i + 1));
  const senderSm = new FileStateMachine(4, senderFiles, '/a/sm', paths, 99);
  const receiverSm = new FileStateMachine(4, receiverFiles, '/b/sm', [], -1);
  const store = new MemoryLogStore();
  const toReceiver: CheckpointMsg[] = [];
  const toSender: CheckpointMsg[] = [];
  const now = { ms: 1000 };
  const sender = new CheckpointSender(
    {
      nodeId: 1,
      group: 0,
      files: senderFiles,
      machines: [senderSm],
      send: (_to, m) => toReceiver.push(m),
    },
    options,
    2,
    77,
  );
  const receiver = new CheckpointReceiver(
    {
      nodeId: 2,
      group: 0,
      files: receiverFiles,
      store,
      machines: [receiverSm],
      stagingRoot: '/b/staging',
      send: (_to, m) => toSender.push(m),
      minInstallableInstanceId: () => 0,
      promiseBallot: () => ({ proposalId: 5, nodeId: 3 }),
    },
    options,
  );
  const pair: Pair = {
    options,
    senderFiles,
    receiverFiles,
    store,
    senderSm,
    receiverSm,
    sender,
    receiver,
    toReceiver,
    toSender,
    now,
    async run(tamper) {
      while (toReceiver.length > 0 || toSender.length > 0) {
        const frame = toReceiver.shift();
        if (frame !== undefined) {
          const m = tamper ? tamper(frame) : frame;
          if (m !== undefined) await receiver.handle(1, m, now.ms);
        }
        const ack = toSender.shift();
        if (ack !== undefined) await sender.onAck(2, ack, now.ms);
      }
    },
  };
  return pair;
}
