// The reference server as a library (tests, benchmarks): a KvServer runs one node in-process.
export { KvServer, type ServerConfig } from './server';
export type { NodeStatus, GroupView, MasterView, MemberView } from './status';
export {
  KvStateMachine,
  KV_FILE,
  type KvEntry,
  type KvResult,
  type WriteOutcome,
} from './kv-state-machine';
export {
  encodeWrite,
  decodeWrite,
  KvCommandError,
  OP_PUT,
  OP_DELETE,
  OP_WRITE,
  type KvWrite,
  type Precondition,
  type IdempotencyWindow,
} from './kv-command';
export { checkKey, groupOfKey } from './keys';
export { ServerError, type ServerErrorCode } from './errors';
export * from './options';
