// CheckpointReceiver (seed: Learner::OnSendCheckpoint, PhxPaxos
// src/algorithm/checkpoint_receiver.cpp): takes one transfer at a time into a staging directory
// per transfer and state machine, checking every chunk (sender, uuid, sequence, offset, CRC, path)
// and acking OK or FAIL. Unlike PhxPaxos it verifies the CRC the sender computes, refuses paths
// that could escape staging, checks free space at BEGIN, and never touches the log or the state
// machines before END: then install.ts makes the new state durable beside the old and switches.
//
// A chunk is acked once it is verified and its write issued: up to receiverWritesInFlight writes
// run while the next chunks are checked (the disk's latency leaves the path from a frame to its
// ack), and a file is fsynced as soon as the next one begins. Nothing counts as durable before
// END: END waits for every write, then fsyncs the staged files and the manifest before its OK; a write that failed fails the transfer at the next frame
// or at END, and a cut leaves staging without an install record, which start-up deletes.
import { crc32, crc32Combine, knownCrc } from '@tspaxos/crc-wasm';
import type { LogStore } from '@tspaxos/storage';
import {
  type CheckpointMsg,
  CheckpointMsgType,
  CheckpointSendFileAckFlag,
  CheckpointSendFileFlag,
  checkpointMsg,
} from '@tspaxos/transport';
import { assert } from '@tspaxos/core';
import { isCodedError } from './errors';
import { type CheckpointFiles, checkRelativePath, isInside, joinPath, parentPath } from './files';
import {
  finishInstall,
  type InstallContext,
  type ManifestFile,
  sealStaging,
  smDir,
  writeInstallRecord,
} from './install';
import type { CheckpointOptions } from './options';
import type { CheckpointStateMachine } from './state-machine';

const textDecoder = new TextDecoder();

export interface CheckpointReceiverPort {
  nodeId: number;
  group: number;
  files: CheckpointFiles;
  store: LogStore;
  machines: readonly CheckpointStateMachine[];
  /** This group's staging root (one directory per transfer below it). */
  stagingRoot: string;
  send(to: number, msg: CheckpointMsg): void;
  /**
   * The lowest checkpoint instance id this node may install: its acceptor's instance id. A
   * checkpoint below it would make the acceptor forget values it accepted at later instances.
   */
  minInstallableInstanceId(): number;
  /** The acceptor's promise, carried across the log reset. */
  promiseBallot(): { proposalId: number; nodeId: number };
  /** The host's stale state made durable before the log reset (InstallContext.beforeLogReset). */
  beforeLogReset?(checkpointInstanceId: number, groupState: string): Promise<void>;
}

/** Why a frame was refused; each is counted in `counters.rejected`. */
export type RejectReason =
  | 'busy'
  | 'stale-checkpoint'
  | 'too-large'
  | 'no-space'
  | 'unknown-transfer'
  | 'stale-transfer'
  | 'sequence-gap'
  | 'bad-path'
  | 'symlink-escape'
  | 'unknown-sm'
  | 'bad-offset'
  | 'bad-crc'
  | 'too-many-files'
  | 'size-mismatch'
  | 'write-error'
  | 'bad-flag';

export type ReceiverEvent =
  | { kind: 'ignored' }
  | { kind: 'rejected'; reason: RejectReason }
  | { kind: 'accepted' }
  | { kind: 'installed'; checkpointInstanceId: number; startInstanceId: number };

interface StagedFile extends ManifestFile {
  key: string;
}

/**
 * A chunk write, or the fsync of a complete file, under way (or done and not yet looked at). Its
 * promise never rejects.
 */
interface ChunkWrite {
  done: Promise<void>;
  settled: boolean;
  /** A coded failure: the transfer is refused with this reason. */
  failure: RejectReason | undefined;
  /** Anything else: a bug, rethrown to the caller. */
  error: unknown;
}

interface Transfer {
  senderNodeId: number;
  uuid: number;
  checkpointInstanceId: number;
  /** The sender's checksum chain at the checkpoint instance (BEGIN's checksum; 0: unknown). */
  chainChecksum: number;
  /** The sender's group state (BEGIN's buffer, UTF-8; '' when none): kept in the manifest. */
  groupState: string;
  announcedBytes: number;
  dir: string;
  /** Sequence of the last frame taken (BEGIN = 0). */
  sequence: number;
  receivedBytes: number;
  files: Map<string, StagedFile>;
  /** The file the last chunk went to: a file's chunks come in a row. */
  current: StagedFile | undefined;
  lastActivityMs: number;
  /** Resolved state machine roots, checked once against the staging root. */
  realRoots: Map<string, string>;
}

export interface CheckpointReceiverStatus {
  phase: 'idle' | 'receiving';
  senderNodeId: number | undefined;
  uuid: number | undefined;
  checkpointInstanceId: number | undefined;
  announcedBytes: number | undefined;
  receivedBytes: number | undefined;
  files: number | undefined;
}

export class CheckpointReceiver {
  readonly counters = {
    begins: 0,
    chunks: 0,
    bytes: 0,
    duplicates: 0,
    installs: 0,
    /** Coded write failures of a transfer already dropped for another reason (nothing to ack). */
    writeFailuresAfterDrop: 0,
    rejected: {} as Partial<Record<RejectReason, number>>,
  };
  private transfer: Transfer | undefined;
  /** Writes and fsyncs issued and not yet looked at, oldest first (all of `transfer`, if any). */
  private writes: ChunkWrite[] = [];
  private busy = false;

  constructor(
    private readonly port: CheckpointReceiverPort,
    private readonly options: CheckpointOptions,
  ) {}

  get isReceiving(): boolean {
    return this.transfer !== undefined;
  }

  status(): CheckpointReceiverStatus {
    const t = this.transfer;
    return {
      phase: t === undefined ? 'idle' : 'receiving',
      senderNodeId: t?.senderNodeId,
      uuid: t?.uuid,
      checkpointInstanceId: t?.checkpointInstanceId,
      announcedBytes: t?.announcedBytes,
      receivedBytes: t?.receivedBytes,
      files: t?.files.size,
    };
  }

  /** Last activity of the transfer under way (for the manager's idle timeout). */
  get lastActivityMs(): number | undefined {
    return this.transfer?.lastActivityMs;
  }

  /**
   * One SendFile frame from `from` (the authenticated sender). Calls must not overlap: the
   * host's per-group loop runs them one at a time.
   */
  async handle(from: number, msg: CheckpointMsg, nowMs: number): Promise<ReceiverEvent> {
    assert(!this.busy, 'CheckpointReceiver.handle called while another call runs');
    assert(msg.msgType === CheckpointMsgType.SendFile, 'CheckpointReceiver.handle takes SendFile');
    this.busy = true;
    try {
      switch (msg.flag) {
        case CheckpointSendFileFlag.Begin:
          return await this.onBegin(from, msg, nowMs);
        case CheckpointSendFileFlag.Ing:
          return await this.onChunk(from, msg, nowMs);
        case CheckpointSendFileFlag.End:
          return await this.onEnd(from, msg, nowMs);
        default:
          return this.reject(from, msg, 'bad-flag', false);
      }
    } finally {
      this.busy = false;
    }
  }

  /** Drops the transfer under way and its staged files (idle timeout, group restart). */
  async abandon(): Promise<void> {
    await this.drainWrites();
    if (this.transfer === undefined) return;
    this.transfer = undefined;
    await this.port.files.remove(this.port.stagingRoot);
  }

  /** Waits for the chunk writes under way (node stop); staging stays for start-up to remove. */
  async close(): Promise<void> {
    await this.drainWrites();
  }

  private async onBegin(from: number, msg: CheckpointMsg, nowMs: number): Promise<ReceiverEvent> {
    const current = this.transfer;
    if (current !== undefined && current.senderNodeId === from && current.uuid === msg.uuid) {
      this.counters.duplicates++;
      this.ack(from, msg, CheckpointSendFileAckFlag.Ok);
      return { kind: 'accepted' };
    }
    // A transfer that took no frame for this long is dead: its sender gave up on it as well.
    const alive =
      current !== undefined &&
      nowMs - current.lastActivityMs <
        Math.min(this.options.transferIdleTimeoutMs, this.options.ackTimeoutMs);
    if (alive && current.senderNodeId !== from) return this.reject(from, msg, 'busy', false);
    if (alive && msg.uuid < current.uuid) {
      // A sender's uuids increase (CheckpointManager): this BEGIN of an older transfer of the
      // same sender was delayed on the way, and must not replace the newer one under way. A
      // restarted sender draws a new base: its BEGIN is taken once the old transfer went quiet.
      return this.reject(from, msg, 'stale-transfer', false);
    }
    if (msg.checkpointInstanceId < this.port.minInstallableInstanceId())
      return this.reject(from, msg, 'stale-checkpoint', false);
    if (msg.offset > this.options.maxCheckpointBytes)
      return this.reject(from, msg, 'too-large', false);
    // A new transfer replaces whatever was staged before (a restarted sender, a dead one).
    this.transfer = undefined;
    await this.drainWrites();
    await this.port.files.remove(this.port.stagingRoot);
    const free = await this.port.files.freeBytes(parentPath(this.port.stagingRoot));
    if (free < msg.offset + this.options.freeSpaceMarginBytes)
      return this.reject(from, msg, 'no-space', false);
    this.counters.begins++;
    this.transfer = {
      senderNodeId: from,
      uuid: msg.uuid,
      checkpointInstanceId: msg.checkpointInstanceId,
      chainChecksum: msg.checksum,
      groupState: textDecoder.decode(msg.buffer),
      announcedBytes: msg.offset,
      dir: joinPath(this.port.stagingRoot, `t${msg.uuid}`),
      sequence: 0,
      receivedBytes: 0,
      files: new Map(),
      current: undefined,
      lastActivityMs: nowMs,
      realRoots: new Map(),
    };
    this.ack(from, msg, CheckpointSendFileAckFlag.Ok);
    return { kind: 'accepted' };
  }

  private async onChunk(from: number, msg: CheckpointMsg, nowMs: number): Promise<ReceiverEvent> {
    const t = this.transfer;
    if (t === undefined || t.senderNodeId !== from || t.uuid !== msg.uuid) {
      // A stray frame (another sender, or an older transfer of the same one whose frames were
      // still in flight): refused, and the transfer under way is kept.
      return this.reject(from, msg, 'unknown-transfer', false);
    }
    const failed = this.finishedWriteFailure();
    if (failed !== undefined) return this.reject(from, msg, failed, true);
    if (msg.sequence <= t.sequence) {
      // Already taken (a resend or a duplicated frame): acked again, not written twice.
      this.counters.duplicates++;
      this.ack(from, msg, CheckpointSendFileAckFlag.Ok);
      return { kind: 'accepted' };
    }
    if (msg.sequence !== t.sequence + 1) return this.reject(from, msg, 'sequence-gap', true);
    if (checkRelativePath(msg.filePath) !== undefined)
      return this.reject(from, msg, 'bad-path', true);
    if (!this.port.machines.some((sm) => sm.smId === msg.smId))
      return this.reject(from, msg, 'unknown-sm', true);
    const key = `${msg.smId}/${msg.filePath}`;
    let file = t.files.get(key);
    // A file's chunks come in a row, at increasing offsets: once the next file has begun, the
    // last one is complete (its fsync may be under way).
    if (msg.offset !== (file?.size ?? 0) || (file !== undefined && file !== t.current))
      return this.reject(from, msg, 'bad-offset', true);
    // The transport's frame check already made one pass over a large chunk and kept its CRC.
    const chunkCrc = knownCrc(msg.buffer) ?? crc32(msg.buffer);
    if (chunkCrc !== msg.checksum) return this.reject(from, msg, 'bad-crc', true);
    if (t.receivedBytes + msg.buffer.length > t.announcedBytes)
      return this.reject(from, msg, 'too-large', true);
    if (file === undefined && t.files.size >= this.options.maxFiles)
      return this.reject(from, msg, 'too-many-files', true);
    const root = smDir(t.dir, msg.smId);
    const target = joinPath(root, msg.filePath);
    // A file's first chunk is not acked before its path is checked; the path of every later
    // chunk is checked again before its write, off the path to the ack (a symlink planted
    // meanwhile fails the transfer at the next frame, and the write is not made).
    if (file === undefined && !(await this.staysInside(t, target, root)))
      return this.reject(from, msg, 'symlink-escape', true);
    while (this.writes.length >= this.options.receiverWritesInFlight) {
      await this.writes[0]!.done;
      const failure = this.finishedWriteFailure();
      if (failure !== undefined) return this.reject(from, msg, failure, true);
    }
    if (file === undefined && t.current !== undefined) {
      // The last file is complete: its fsync starts now, behind its writes, so END's fsync of
      // every staged file finds it clean instead of writing it back then.
      this.startSync(joinPath(smDir(t.dir, t.current.smId), t.current.path));
    }
    this.startWrite(t, root, target, msg.offset, msg.buffer, file !== undefined);
    if (file === undefined) {
      file = { key, smId: msg.smId, path: msg.filePath, size: 0, crc: 0 };
      t.files.set(key, file);
    }
    t.current = file;
    file.size += msg.buffer.length;
    file.crc = crc32Combine(file.crc, chunkCrc, msg.buffer.length);
    t.receivedBytes += msg.buffer.length;
    t.sequence = msg.sequence;
    t.lastActivityMs = nowMs;
    this.counters.chunks++;
    this.counters.bytes += msg.buffer.length;
    this.ack(from, msg, CheckpointSendFileAckFlag.Ok);
    return { kind: 'accepted' };
  }

  private async onEnd(from: number, msg: CheckpointMsg, nowMs: number): Promise<ReceiverEvent> {
    const t = this.transfer;
    if (t === undefined || t.senderNodeId !== from || t.uuid !== msg.uuid)
      return this.reject(from, msg, 'unknown-transfer', false);
    if (msg.sequence !== t.sequence + 1) return this.reject(from, msg, 'sequence-gap', true);
    if (msg.offset !== t.receivedBytes) return this.reject(from, msg, 'size-mismatch', true);
    t.lastActivityMs = nowMs;
    // Every chunk written (or its failure known) before anything is fsynced.
    while (this.writes.length > 0) {
      await this.writes[0]!.done;
      const failure = this.finishedWriteFailure();
      if (failure !== undefined) return this.reject(from, msg, failure, true);
    }
    const ctx = this.installContext();
    const record = {
      uuid: t.uuid,
      checkpointInstanceId: t.checkpointInstanceId,
      dir: t.dir,
      promise: this.port.promiseBallot(),
    };
    try {
      await sealStaging(ctx, t.dir, {
        uuid: t.uuid,
        senderNodeId: t.senderNodeId,
        checkpointInstanceId: t.checkpointInstanceId,
        chainChecksum: t.chainChecksum,
        groupState: t.groupState,
        files: [...t.files.values()].map(({ smId, path, size, crc }) => ({
          smId,
          path,
          size,
          crc,
        })),
      });
      await writeInstallRecord(ctx, record);
    } catch (error) {
      // Before the install record is durable nothing of the old state changed: a full or failing
      // disk here fails the transfer cleanly. Anything not coded is a bug and goes up.
      if (!isCodedError(error)) throw error;
      return this.reject(from, msg, error.code === 'E_NO_SPACE' ? 'no-space' : 'write-error', true);
    }
    // From here the new state wins, whatever happens: the sender may stop.
    this.ack(from, msg, CheckpointSendFileAckFlag.Ok);
    this.transfer = undefined;
    const startInstanceId = await finishInstall(ctx, record);
    this.counters.installs++;
    return { kind: 'installed', checkpointInstanceId: t.checkpointInstanceId, startInstanceId };
  }

  /**
   * Issues one chunk's write (after a check of its path when `checkPath`) without waiting for it;
   * its outcome is looked at by finishedWriteFailure().
   */
  private startWrite(
    t: Transfer,
    root: string,
    target: string,
    offset: number,
    bytes: Uint8Array,
    checkPath: boolean,
  ): void {
    const w: ChunkWrite = {
      done: Promise.resolve(),
      settled: false,
      failure: undefined,
      error: undefined,
    };
    const run = async (): Promise<void> => {
      if (checkPath && !(await this.staysInside(t, target, root))) {
        w.failure = 'symlink-escape';
        return;
      }
      await this.port.files.write(target, offset, bytes);
    };
    this.track(run(), w);
  }

  /** Queues a write or fsync under way; its outcome is kept as a value for later. */
  private track(
    work: Promise<void>,
    w: ChunkWrite = {
      done: Promise.resolve(),
      settled: false,
      failure: undefined,
      error: undefined,
    },
  ): void {
    w.done = work.then(
      () => {
        w.settled = true;
      },
      (error: unknown) => {
        w.settled = true;
        if (isCodedError(error))
          w.failure = error.code === 'E_NO_SPACE' ? 'no-space' : 'write-error';
        else w.error = error;
      },
    );
    this.writes.push(w);
  }

  /** Queues the fsync of a complete staged file behind every write issued before it. */
  private startSync(path: string): void {
    const before = this.writes.map((w) => w.done);
    this.track(Promise.all(before).then(() => this.port.files.fsync(path)));
  }

  /**
   * Forgets the finished writes at the head of the queue; the first failure among them, if any.
   * A write that failed with something other than a coded error is a bug: it is rethrown.
   */
  private finishedWriteFailure(): RejectReason | undefined {
    while (this.writes.length > 0 && this.writes[0]!.settled) {
      const w = this.writes.shift()!;
      if (w.error !== undefined) throw w.error;
      if (w.failure !== undefined) return w.failure;
    }
    return undefined;
  }

  /** Waits for every write under way (their transfer is being dropped); rethrows bugs. */
  private async drainWrites(): Promise<void> {
    const writes = this.writes;
    this.writes = [];
    let bug: unknown;
    for (const w of writes) {
      await w.done;
      if (w.error !== undefined) bug ??= w.error;
      else if (w.failure !== undefined) this.counters.writeFailuresAfterDrop++;
    }
    if (bug !== undefined) throw bug;
  }

  installContext(): InstallContext {
    const { group, files, store, machines, stagingRoot } = this.port;
    const ctx: InstallContext = { group, files, store, machines, stagingRoot };
    const hook = this.port.beforeLogReset?.bind(this.port);
    if (hook !== undefined) ctx.beforeLogReset = hook;
    return ctx;
  }

  /**
   * True when `target` (and every existing directory on its way) resolves inside `root`: a
   * symlink planted in staging cannot redirect a write outside it.
   */
  private async staysInside(t: Transfer, target: string, root: string): Promise<boolean> {
    const files = this.port.files;
    let rootReal = t.realRoots.get(root);
    if (rootReal === undefined) {
      // Once per transfer and machine (once the root exists): the roots are ours; what is below
      // them is checked at every chunk.
      const stagingReal = await this.resolveExisting(this.port.stagingRoot);
      rootReal = await this.resolveExisting(root);
      if (!isInside(rootReal, stagingReal)) return false;
      if ((await files.realpath(root)) !== undefined) t.realRoots.set(root, rootReal);
    }
    let probe = target;
    while (isInside(probe, root) && probe !== root) {
      const real = await files.realpath(probe);
      if (real !== undefined) return isInside(real, rootReal);
      probe = parentPath(probe);
    }
    return true;
  }

  /** `path` with its longest existing prefix resolved (symlinks above a missing part). */
  private async resolveExisting(path: string): Promise<string> {
    let probe = path;
    let suffix = '';
    for (;;) {
      const real = await this.port.files.realpath(probe);
      if (real !== undefined) return suffix === '' ? real : joinPath(real, suffix);
      const parent = parentPath(probe);
      if (parent === probe) return path;
      const name = probe.slice(parent === '/' ? 1 : parent.length + 1);
      suffix = suffix === '' ? name : `${name}/${suffix}`;
      probe = parent;
    }
  }

  private reject(
    from: number,
    msg: CheckpointMsg,
    reason: RejectReason,
    resetTransfer: boolean,
  ): ReceiverEvent {
    this.counters.rejected[reason] = (this.counters.rejected[reason] ?? 0) + 1;
    if (resetTransfer) this.transfer = undefined; // staging is removed at the next BEGIN or start
    this.ack(from, msg, CheckpointSendFileAckFlag.Fail, reason);
    return { kind: 'rejected', reason };
  }

  private ack(to: number, msg: CheckpointMsg, flag: number, reason = ''): void {
    this.port.send(
      to,
      checkpointMsg({
        msgType: CheckpointMsgType.SendFileAck,
        nodeId: this.port.nodeId,
        flag,
        uuid: msg.uuid,
        sequence: msg.sequence,
        // Ours: a FAIL ack names its reason in filePath (PhxPaxos sends none).
        filePath: reason,
      }),
    );
  }
}
