export {
  runSeed,
  masterClockBound,
  addCoverage,
  emptyCoverage,
  PLANTED_BUGS,
  FAULT_KINDS,
  PATH_KINDS,
  type PlantedBug,
  type FaultKind,
  type PathKind,
  type Coverage,
  type SimOptions,
  type SimResult,
  type SimTopology,
  type SimViolation,
  type MasterSettings,
  type Invariant,
} from './simulate';
export { EventQueue } from './event-queue';
export { RecordingStateMachine, RECORDER_SM_ID } from './recorder';
export { checkSimOptions, SIM_MAX_NODES } from './options';
