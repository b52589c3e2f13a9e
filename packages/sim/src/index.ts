export {
  addCoverage,
  emptyCoverage,
  FAULT_KINDS,
  PATH_KINDS,
  type FaultKind,
  type PathKind,
  type Coverage,
} from './coverage';
export {
  checkSimOptions,
  PLANTED_BUGS,
  SIM_MAX_NODES,
  type PlantedBug,
  type SimOptions,
} from './options';
export { runSeed } from './simulate';
export { masterClockBound } from './master';
export type { SimResult, SimTopology, SimViolation, MasterSettings, Invariant } from './result';
export { EventQueue } from './event-queue';
export {
  RecordingStateMachine,
  RECORDER_SM_ID,
  RECORDER_CHECKPOINT_FILE,
  type RecorderCheckpointPort,
  type RecorderEntries,
} from './recorder';
export {
  CHECKPOINT_PATH_KINDS,
  SIM_CHECKPOINT_OPTIONS,
  type CheckpointPathKind,
} from './checkpoint-port';
export type { CutPhase } from './checkpoint-cuts';
