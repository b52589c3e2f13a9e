// CheckpointSender (seed: Learner::OnAskforCheckpoint → CheckpointSender::run; PhxPaxos
// src/algorithm/checkpoint_sender.cpp): copies every state machine's checkpoint files to one
// lagging peer. Sans-IO: the host calls start(), onAck() and tick(); files are read through the
// port in chunks, never whole. PhxPaxos runs a thread that sleeps 20 ms while the window is full
// (CheckpointSender::CheckAck); here the window reopens on each ack.
//
// Wire use (ours, within the CheckpointMsg schema): BEGIN is sequence 0 and announces the total
// byte count in `offset` (the receiver checks its free space against it) and the checksum chain's
// value at the checkpoint instance in `checksum` (the receiver's chain goes on from it, design.md §2;
// 0 when this node does not know it); ING k (k = 1 … n)
// carries one chunk with the CRC-32 of its bytes; END is sequence n+1 with the total in `offset`.
// An empty file is sent as one empty ING so it exists on the other side.
import { crc32, rememberCrc } from '@tspaxos/crc-wasm';
import {
  type CheckpointMsg,
  CheckpointMsgType,
  CheckpointSendFileAckFlag,
  CheckpointSendFileFlag,
  checkpointMsg,
} from '@tspaxos/transport';
import { assert } from '@tspaxos/core';
import { CheckpointError, isCodedError } from './errors';
import { type CheckpointFiles, joinPath } from './files';
import type { CheckpointOptions } from './options';
import { type CheckpointStateMachine, groupCheckpointInstanceId } from './state-machine';

const textEncoder = new TextEncoder();

export interface CheckpointSenderPort {
  nodeId: number;
  group: number;
  files: CheckpointFiles;
  machines: readonly CheckpointStateMachine[];
  /**
   * The checksum chain's value at an instance (install.ts chainChecksumAt over the group's log);
   * without it BEGIN says 0, unknown, and the receiver's chain restarts at 0.
   */
  chainChecksum?(instanceId: number): number;
  /** The host's group state for the receiver's install (CheckpointManagerPort.groupState). */
  groupState?(): string;
  send(to: number, msg: CheckpointMsg): void;
}

export type CheckpointSenderPhase = 'idle' | 'sending' | 'ended';
export type CheckpointSenderEndReason =
  'done' | 'fail-ack' | 'ack-timeout' | 'read-error' | 'lock-error' | 'no-checkpoint' | 'stopped';

export interface CheckpointSenderStatus {
  toNodeId: number;
  uuid: number;
  phase: CheckpointSenderPhase;
  endReason: CheckpointSenderEndReason | undefined;
  checkpointInstanceId: number;
  totalBytes: number;
  sentBytes: number;
  sentChunks: number;
  ackedSequence: number;
  lastError: string | undefined;
}

type ReadResult = { bytes: Uint8Array } | { error: unknown };

interface FileToSend {
  smId: number;
  /** Absolute path to read. */
  source: string;
  /** Path relative to the state machine's checkpoint directory (what the receiver sees). */
  path: string;
  /** Bytes at start (the locked checkpoint's size; what BEGIN announces). */
  size: number;
}

interface PendingRead {
  fileIndex: number;
  offset: number;
  result: Promise<ReadResult>;
}

export class CheckpointSender {
  phase: CheckpointSenderPhase = 'idle';
  endReason: CheckpointSenderEndReason | undefined;
  readonly counters = { chunksSent: 0, bytesSent: 0, acks: 0, staleAcks: 0, windowFull: 0 };
  private checkpointInstanceId = -1;
  private files: FileToSend[] = [];
  private totalBytes = 0;
  private locked: CheckpointStateMachine[] = [];
  private fileIndex = 0;
  private fileOffset = 0;
  /** Sequence of the last frame sent (BEGIN = 0). */
  private sentSequence = -1;
  /** Highest sequence acked (cumulative); -1 before BEGIN's ack. */
  private ackedSequence = -1;
  /** Sequence END carries once every chunk is out; undefined before. */
  private endSequence: number | undefined;
  /** Bytes of each unacked ING, by sequence, ascending. */
  private inFlight: Array<{ sequence: number; bytes: number }> = [];
  private inFlightBytes = 0;
  private lastAckMs = 0;
  private pumping = false;
  private lastError: string | undefined;
  /** Reads under way for the next chunks, in sending order (senderReadAheadChunks at most). */
  private readsAhead: PendingRead[] = [];
  private readonly endListeners: Array<(reason: CheckpointSenderEndReason) => void> = [];

  constructor(
    private readonly port: CheckpointSenderPort,
    private readonly options: CheckpointOptions,
    readonly toNodeId: number,
    readonly uuid: number,
  ) {
    assert(Number.isSafeInteger(uuid) && uuid > 0, 'checkpoint uuid must be a positive integer');
  }

  /** Called once when the transfer ends, whatever the reason (after the unlock). */
  onEnd(listener: (reason: CheckpointSenderEndReason) => void): void {
    this.endListeners.push(listener);
  }

  get isEnded(): boolean {
    return this.phase === 'ended';
  }

  /**
   * Locks every machine's checkpoint, lists its files, sends BEGIN and the first window of
   * chunks (PhxPaxos CheckpointSender::run: LockCheckpoint, SendCheckpoint).
   */
  async start(nowMs: number): Promise<void> {
    assert(this.phase === 'idle', 'CheckpointSender.start called twice');
    this.phase = 'sending';
    this.lastAckMs = nowMs;
    const { machines, group } = this.port;
    try {
      for (const sm of machines) {
        await sm.lockCheckpointState?.();
        this.locked.push(sm);
      }
    } catch (error) {
      this.lastError = String(error);
      await this.end('lock-error');
      return;
    }
    const checkpointInstanceId = groupCheckpointInstanceId(machines, group);
    if (checkpointInstanceId === undefined || checkpointInstanceId < 0) {
      await this.end('no-checkpoint');
      return;
    }
    this.checkpointInstanceId = checkpointInstanceId;
    let chainChecksum;
    let groupState;
    try {
      chainChecksum = this.port.chainChecksum?.(checkpointInstanceId) ?? 0;
      // Read with the chain, before any await: it must reflect the log up to the instance the
      // host says it does, not a moment of a later apply.
      groupState = textEncoder.encode(this.port.groupState?.() ?? '');
      for (const sm of machines) {
        const state = sm.getCheckpointState?.(group);
        if (state === undefined) continue;
        for (const path of state.files) {
          const source = joinPath(state.dir, path);
          const stat = await this.port.files.stat(source);
          if (stat === undefined || stat.isDirectory)
            throw new CheckpointError('E_NOT_FOUND', `checkpoint file ${source} is missing`);
          this.files.push({ smId: sm.smId, source, path, size: stat.size });
          this.totalBytes += stat.size;
        }
      }
    } catch (error) {
      await this.failRead(error);
      return;
    }
    this.sentSequence = 0;
    this.port.send(
      this.toNodeId,
      this.frame(CheckpointSendFileFlag.Begin, 0, {
        offset: this.totalBytes,
        checksum: chainChecksum,
        buffer: groupState,
      }),
    );
  }

  /** An ack from the receiver (PhxPaxos Learner::OnSendCheckpointAck → CheckpointSender::Ack). */
  async onAck(from: number, msg: CheckpointMsg, nowMs: number): Promise<void> {
    if (this.phase !== 'sending' || from !== this.toNodeId || msg.uuid !== this.uuid) {
      this.counters.staleAcks++;
      return;
    }
    if (msg.flag !== CheckpointSendFileAckFlag.Ok) {
      this.lastError = msg.filePath.length > 0 ? `peer refused: ${msg.filePath}` : 'peer refused';
      await this.end('fail-ack');
      return;
    }
    if (msg.sequence <= this.ackedSequence || msg.sequence > this.sentSequence) {
      this.counters.staleAcks++;
      return;
    }
    this.counters.acks++;
    this.ackedSequence = msg.sequence;
    this.lastAckMs = nowMs;
    while (this.inFlight.length > 0 && this.inFlight[0]!.sequence <= msg.sequence)
      this.inFlightBytes -= this.inFlight.shift()!.bytes;
    if (this.endSequence !== undefined && msg.sequence === this.endSequence) {
      await this.end('done');
      return;
    }
    await this.pump();
  }

  /**
   * Ends the transfer when no ack came for transferIdleTimeoutMs, or for ackTimeoutMs once END is
   * out (PhxPaxos CheckpointSender::CheckAck: 120 s for every frame).
   */
  async tick(nowMs: number): Promise<void> {
    const o = this.options;
    const timeoutMs =
      this.endSequence === undefined
        ? Math.min(o.transferIdleTimeoutMs, o.ackTimeoutMs)
        : o.ackTimeoutMs;
    if (this.phase === 'sending' && nowMs - this.lastAckMs >= timeoutMs)
      await this.end('ack-timeout');
  }

  /** Stops a transfer under way (peer gone, node stopping); unlocks. */
  async stop(): Promise<void> {
    if (this.phase !== 'ended') await this.end('stopped');
  }

  status(): CheckpointSenderStatus {
    return {
      toNodeId: this.toNodeId,
      uuid: this.uuid,
      phase: this.phase,
      endReason: this.endReason,
      checkpointInstanceId: this.checkpointInstanceId,
      totalBytes: this.totalBytes,
      sentBytes: this.counters.bytesSent,
      sentChunks: this.counters.chunksSent,
      ackedSequence: this.ackedSequence,
      lastError: this.lastError,
    };
  }

  /** Sends chunks while the window (chunks and bytes past the last ack) has room, then END. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.phase === 'sending' && this.endSequence === undefined) {
        if (
          this.sentSequence + 1 - this.ackedSequence > this.options.ackLeadChunks ||
          this.inFlightBytes + this.options.chunkBytes > this.options.ackLeadBytes
        ) {
          this.counters.windowFull++;
          return;
        }
        if (this.fileIndex >= this.files.length) {
          this.endSequence = this.sentSequence + 1;
          this.sentSequence = this.endSequence;
          this.port.send(
            this.toNodeId,
            this.frame(CheckpointSendFileFlag.End, this.endSequence, {
              offset: this.counters.bytesSent,
            }),
          );
          return;
        }
        await this.sendChunk(this.files[this.fileIndex]!);
      }
    } finally {
      this.pumping = false;
    }
  }

  private async sendChunk(file: FileToSend): Promise<void> {
    // The next chunks are read while this one is awaited, checksummed and sent: the reads'
    // latency leaves the path from an ack to the next send.
    if (this.readsAhead.length === 0) this.fillReadsAhead(undefined);
    const ahead = this.readsAhead.shift();
    assert(
      ahead !== undefined && ahead.fileIndex === this.fileIndex && ahead.offset === this.fileOffset,
      'CheckpointSender: the read ahead is not the next chunk',
    );
    this.fillReadsAhead(ahead);
    const result = await ahead.result;
    if ('error' in result) {
      await this.failRead(result.error);
      return;
    }
    const bytes = result.bytes;
    if (this.phase !== 'sending') return;
    const offset = this.fileOffset;
    if (bytes.length === 0 && offset > 0) {
      // The file shrank to a multiple of the chunk size since start: nothing more to send.
      this.nextFile();
      return;
    }
    const sequence = this.sentSequence + 1;
    this.sentSequence = sequence;
    this.inFlight.push({ sequence, bytes: bytes.length });
    this.inFlightBytes += bytes.length;
    this.counters.chunksSent++;
    this.counters.bytesSent += bytes.length;
    // The transport combines this CRC into the frame's instead of a second pass over the bytes.
    const checksum = crc32(bytes);
    rememberCrc(bytes, checksum);
    this.port.send(
      this.toNodeId,
      this.frame(CheckpointSendFileFlag.Ing, sequence, {
        smId: file.smId,
        filePath: file.path,
        offset,
        checksum,
        buffer: bytes,
      }),
    );
    // A file ends at its size at start (or earlier if it shrank: a short read).
    if (bytes.length < this.options.chunkBytes || offset + bytes.length >= file.size)
      this.nextFile();
    else this.fileOffset += bytes.length;
  }

  /**
   * Starts reads of the chunks after the last one under way (or after `current`, the chunk being
   * sent; from the current position with neither), up to senderReadAheadChunks of them.
   */
  private fillReadsAhead(current: PendingRead | undefined): void {
    const last = this.readsAhead.at(-1) ?? current;
    let [fileIndex, offset] =
      last === undefined ? [this.fileIndex, this.fileOffset] : this.after(last);
    while (
      this.readsAhead.length < this.options.senderReadAheadChunks &&
      fileIndex < this.files.length
    ) {
      const file = this.files[fileIndex]!;
      this.readsAhead.push({ fileIndex, offset, result: this.readChunk(file.source, offset) });
      [fileIndex, offset] = this.after({ fileIndex, offset });
    }
  }

  /** The position of the chunk after the one at (fileIndex, offset), by the sizes at start. */
  private after(at: { fileIndex: number; offset: number }): [number, number] {
    const next = at.offset + this.options.chunkBytes;
    return next < this.files[at.fileIndex]!.size ? [at.fileIndex, next] : [at.fileIndex + 1, 0];
  }

  /** A read as a value: a read-ahead whose transfer ends first is dropped with its outcome. */
  private readChunk(source: string, offset: number): Promise<ReadResult> {
    return this.port.files.read(source, offset, this.options.chunkBytes).then(
      (bytes) => ({ bytes }),
      (error: unknown) => ({ error }),
    );
  }

  private nextFile(): void {
    this.fileIndex++;
    this.fileOffset = 0;
    // Reads planned past the end of a file that shrank since start are at the wrong positions:
    // dropped (their outcomes are values, never unhandled), the next ones are read again.
    const head = this.readsAhead[0];
    if (head !== undefined && (head.fileIndex !== this.fileIndex || head.offset !== 0))
      this.readsAhead = [];
  }

  private frame(flag: number, sequence: number, fields: Partial<CheckpointMsg>): CheckpointMsg {
    return checkpointMsg({
      msgType: CheckpointMsgType.SendFile,
      nodeId: this.port.nodeId,
      flag,
      uuid: this.uuid,
      sequence,
      checkpointInstanceId: this.checkpointInstanceId,
      ...fields,
    });
  }

  /** A read failed: coded port errors end the transfer; anything else is a bug and is rethrown. */
  private async failRead(error: unknown): Promise<void> {
    this.lastError = String(error);
    await this.end('read-error');
    if (!isCodedError(error)) throw error;
  }

  /** Unlocks in every outcome (PhxPaxos CheckpointSender::run: UnLockCheckpoint, Continue). */
  private async end(reason: CheckpointSenderEndReason): Promise<void> {
    if (this.phase === 'ended') return;
    this.phase = 'ended';
    this.endReason = reason;
    const locked = this.locked;
    this.locked = [];
    let unlockError: unknown;
    for (const sm of locked) {
      try {
        await sm.unlockCheckpointState?.();
      } catch (error) {
        unlockError ??= error; // every machine is unlocked first; the first failure is rethrown
      }
    }
    for (const listener of this.endListeners) listener(reason);
    if (unlockError !== undefined) throw unlockError;
  }
}
