export {
  createNode,
  PaxosNode,
  type NodeOptions,
  type ProposeOptions,
  type NodeCounters,
  type Logger,
  type LogLevel,
} from './node';
export type { ProposeResult } from './committer';
export type { GroupStatus, InstanceCounters } from './instance';
export { PaxosError, type PaxosErrorCode } from './errors';
export {
  type PaxosOptions,
  type PaxosOptionsInput,
  defaultPaxosOptions,
  MASTER_LEASE_MIN_MS,
} from './options';
export type { Scheduler, RandomSource } from './scheduler';
export { realScheduler, realRandom } from './adapters/real-scheduler';
export {
  type StateMachine,
  type ExecuteContext,
  type SystemVariables,
  encodeSystemVariables,
  decodeSystemVariables,
} from './state-machine';
export {
  packValue,
  packBatch,
  unpackValue,
  SYSTEM_SM_ID,
  MASTER_SM_ID,
  BATCH_SM_ID,
  NO_SM_ID,
} from './value';
export type { AcceptorFaults } from './acceptor';
export {
  type MasterInfo,
  type MasterVariables,
  type MasterCounters,
  type MasterFaults,
  NO_MASTER_VERSION,
} from './master';
