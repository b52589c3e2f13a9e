// `@tspaxos/paxos/internal`: what the simulator, the reference server and this package's tests
// use below the public API: the lower-level node (every port injected, the group index passed
// to each method), value packing, the system-variable codec, option ranges, planted faults.
// No compatibility promise: it changes with the code (and has no API report).
export * from './index';
export {
  startNode,
  PaxosNode,
  type NodeOptions,
  type ProposeOptions as NodeProposeOptions,
  type NodeCounters,
} from './node';
export { nodeHandle, type HandleConfig } from './facade';
export type { GroupEvent } from './group';
export { NodeEventEmitter } from './events';
export {
  defaultPaxosOptions,
  resolveOptions,
  maxValueBytesForFrame,
  PAXOS_OPTION_RANGES,
  MAX_SYNC_SLICE_MS,
  MASTER_LEASE_MIN_MS,
} from './options';
export {
  encodeSystemVariables,
  decodeSystemVariables,
  MAX_SYSTEM_META_BYTES,
  type SystemVariables,
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
} from './value';
export type { AcceptorFaults, UnsafeFaults } from './faults';
export type { MasterFaults } from './master';
export { NO_MASTER_VERSION } from './master-variables';
