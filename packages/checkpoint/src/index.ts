export {
  type CheckpointOptions,
  DEFAULT_CHECKPOINT_OPTIONS,
  MIN_AUTOMATIC_HOLD_COUNT,
  resolveCheckpointOptions,
} from './options';
export { CheckpointError, type CheckpointErrorCode } from './errors';
export { type CheckpointFiles, type FileStat, joinPath, checkRelativePath } from './files';
export { MemoryFiles, type MemoryFilesOptions, type FileOp } from './memory-files';
export { type CheckpointStateMachine, groupCheckpointInstanceId } from './state-machine';
export {
  CheckpointSender,
  type CheckpointSenderPort,
  type CheckpointSenderPhase,
  type CheckpointSenderEndReason,
  type CheckpointSenderStatus,
} from './sender';
export {
  CheckpointReceiver,
  type CheckpointReceiverPort,
  type CheckpointReceiverStatus,
  type RejectReason,
  type ReceiverEvent,
} from './receiver';
export {
  CHAIN_META_KEY,
  type ChainAnchor,
  chainChecksumAt,
  INSTALL_META_KEY,
  MANIFEST_NAME,
  type InstallRecord,
  type Manifest,
  type RecoveryOutcome,
  readChainAnchor,
  readInstallRecord,
  recoverInstall,
} from './install';
export { Cleaner, type CleanerPort } from './cleaner';
export { Replayer, type ReplayerPort } from './replayer';
export {
  CheckpointManager,
  checkReplayable,
  type CheckpointManagerPort,
  type CheckpointManagerCounters,
  type CheckpointStatus,
} from './manager';
