// Every limit of the checkpoint package, with PhxPaxos's defaults where one exists (sources under
// src/algorithm/checkpoint_sender.{h,cpp}, src/checkpoint/{cp_mgr,cleaner,replayer}.cpp).

export interface CheckpointOptions {
  /** Bytes of file data per ING chunk (PhxPaxos: 1 MiB, CheckpointSender::m_sTmpBuffer). */
  chunkBytes: number;
  /** Chunks the sender may run ahead of the last ack (PhxPaxos Checkpoint_ACK_LEAD: 10). */
  ackLeadChunks: number;
  /** Bytes the sender may run ahead of the last ack (ours: ackLeadChunks × chunkBytes + 1 chunk). */
  ackLeadBytes: number;
  /**
   * Chunk writes (and fsyncs of complete files) the receiver keeps under way while it checks and
   * acks the next chunks (ours: 4).
   * A chunk is acked once it is verified and its write issued; a failed write fails the transfer
   * at the next frame or at END, which waits for every write before the fsyncs of the install.
   * Each write holds its chunk, so the receiver holds at most this many chunks beyond the window.
   */
  receiverWritesInFlight: number;
  /**
   * Chunks the sender reads ahead of the one it sends (ours: 4): their reads run while it
   * checksums and sends, so a read's latency is off the path from an ack to the next send.
   */
  senderReadAheadChunks: number;
  /**
   * Without the ack of END for this long the sender ends the transfer (PhxPaxos
   * Checkpoint_ACK_TIMEOUT: 120 s, for every frame). END's ack waits for the receiver's fsyncs
   * of every staged file and its install record.
   */
  ackTimeoutMs: number;
  /**
   * Before END, a transfer without an ack (sender) or a frame (receiver) for this long is dead
   * (ours: 10 s; the shorter of this and ackTimeoutMs applies). A chunk is acked once its write
   * is issued, so a live receiver acks within a few writes; with 120 s, one asker that went
   * silent held the only sender and every machine's checkpoint lock for two minutes (issue 17).
   */
  transferIdleTimeoutMs: number;
  /**
   * AskforCheckpoint waits for a majority of peers to say the log is gone, or this long after
   * the first one said so (PhxPaxos CheckpointMgr::PrepareForAskforCheckpoint: 60 s).
   */
  askMajorityWaitMs: number;
  /**
   * A receiver in checkpoint mode that hears nothing of a transfer for this long leaves the mode
   * and learns normally again (PhxPaxos re-arms AskforLearn 120 s after each OK ack,
   * Learner::OnSendCheckpoint; PhxPaxos never leaves the mode, ours does).
   */
  checkpointModeIdleMs: number;
  /** A group that needs a checkpoint at start asks its peers again this often (ours). */
  askRetryMs: number;
  /** Most files one checkpoint may hold (ours). */
  maxFiles: number;
  /** Largest checkpoint a receiver accepts, in bytes (ours: 1 TiB). */
  maxCheckpointBytes: number;
  /** Free bytes a receiver keeps beyond the announced size before it accepts BEGIN (ours: 64 MiB). */
  freeSpaceMarginBytes: number;
  /**
   * Instances the cleaner keeps below the checkpoint when it compacts on its own (PhxPaxos
   * CAN_DELETE_DELTA: 1,000,000; Cleaner::SetHoldPaxosLogCount raises anything below 300 to 300).
   */
  holdCount: number;
  /** Records one cleaner step deletes at most (ours; the store bounds the bytes too). */
  cleanerStepRecords: number;
  /** Delay between cleaner steps while there is work (ours: PhxPaxos sleeps 1 ms per 300 deletes). */
  cleanerStepDelayMs: number;
  /** Instances the replayer executes per step (ours). */
  replayerStepInstances: number;
  /** Period of the host's checkpoint tick when idle (ours; PhxPaxos's threads poll at 0.5–1 s). */
  tickIntervalMs: number;
}

/** Files NodeFiles keeps open for writing at once: one per file being received (ours). */
export const NODE_FILES_MAX_OPEN_WRITERS = 8;

/** Queued writes to one file NodeFiles joins into one writev at most (ours; Linux IOV_MAX: 1024). */
export const NODE_FILES_MAX_WRITEV_BUFFERS = 64;

/** PhxPaxos's smallest hold count (Cleaner::SetHoldPaxosLogCount). */
export const MIN_AUTOMATIC_HOLD_COUNT = 300;

export const DEFAULT_CHECKPOINT_OPTIONS: Readonly<CheckpointOptions> = Object.freeze({
  chunkBytes: 1024 * 1024,
  ackLeadChunks: 10,
  ackLeadBytes: 11 * 1024 * 1024,
  receiverWritesInFlight: 4,
  senderReadAheadChunks: 4,
  ackTimeoutMs: 120_000,
  transferIdleTimeoutMs: 10_000,
  askMajorityWaitMs: 60_000,
  checkpointModeIdleMs: 120_000,
  askRetryMs: 10_000,
  maxFiles: 100_000,
  maxCheckpointBytes: 1024 ** 4,
  freeSpaceMarginBytes: 64 * 1024 * 1024,
  holdCount: 1_000_000,
  cleanerStepRecords: 1000,
  cleanerStepDelayMs: 1,
  replayerStepInstances: 100,
  tickIntervalMs: 1000,
});

export function resolveCheckpointOptions(
  input: Partial<CheckpointOptions> = {},
): CheckpointOptions {
  const o: CheckpointOptions = { ...DEFAULT_CHECKPOINT_OPTIONS, ...input };
  for (const [key, value] of Object.entries(o)) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`checkpoint option ${key} must be a non-negative safe integer`);
    }
  }
  if (o.chunkBytes < 1 || o.ackLeadChunks < 1 || o.ackLeadBytes < o.chunkBytes) {
    throw new RangeError(
      'checkpoint options need chunkBytes ≥ 1, ackLeadChunks ≥ 1, ackLeadBytes ≥ chunkBytes',
    );
  }
  if (
    o.cleanerStepRecords < 1 ||
    o.replayerStepInstances < 1 ||
    o.maxFiles < 1 ||
    o.receiverWritesInFlight < 1 ||
    o.senderReadAheadChunks < 1
  ) {
    throw new RangeError(
      'cleanerStepRecords, replayerStepInstances, maxFiles, receiverWritesInFlight and senderReadAheadChunks must be ≥ 1',
    );
  }
  return o;
}
