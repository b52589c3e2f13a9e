export {
  runSeed,
  type SimOptions,
  type SimResult,
  type SimViolation,
  type Invariant,
} from './simulate';
export { EventQueue } from './event-queue';
export { RecordingStateMachine, RECORDER_SM_ID } from './recorder';
export { checkSimOptions, SIM_MAX_NODES } from './options';
