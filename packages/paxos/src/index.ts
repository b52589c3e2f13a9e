export {
  createNode,
  PaxosNode,
  type NodeOptions,
  type ProposeOptions,
  type NodeCounters,
} from './node';
export type { ProposeResult } from './committer';
export type { GroupStatus, GroupErrors, ErrorCount, GroupCounters, GroupEvent } from './group';
export { NodeEventEmitter, type NodeEvents, type NodeEventName } from './events';
export { PaxosError, type PaxosErrorCode } from './errors';
export {
  type PaxosOptions,
  type PaxosOptionsInput,
  defaultPaxosOptions,
  resolveOptions,
  maxValueBytesForFrame,
  PAXOS_OPTION_RANGES,
  MAX_SYNC_SLICE_MS,
  MASTER_LEASE_MIN_MS,
} from './options';
// The ports NodeOptions takes, re-exported from @tspaxos/core for users of the node API.
export type { Scheduler, RandomSource, Logger, LogLevel, Runtime } from '@tspaxos/core';
export {
  type StateMachine,
  type ExecuteContext,
  type SystemVariables,
  encodeSystemVariables,
  decodeSystemVariables,
  MAX_SYSTEM_META_BYTES,
} from './state-machine';
export {
  packValue,
  packBatch,
  unpackValue,
  SYSTEM_SM_ID,
  MASTER_SM_ID,
  BATCH_SM_ID,
  NO_SM_ID,
  SINGLE_VALUE_OVERHEAD_BYTES,
  BATCH_HEADER_BYTES,
  BATCH_ITEM_OVERHEAD_BYTES,
  IDENTIFIED_SM_ID,
  IDENTITY_HEADER_BYTES,
  hasIdentity,
  valueIdentity,
  withoutIdentity,
  type ProposalIdentity,
} from './value';
export type { AcceptorFaults, UnsafeFaults } from './faults';
export {
  type MasterInfo,
  type MasterVariables,
  type MasterCounters,
  type MasterFaults,
  NO_MASTER_VERSION,
} from './master';
