// The reference server as a library (tests, benchmarks): a KvServer runs one node in-process.
export { KvServer, type ServerConfig } from './server';
export type { NodeStatus, GroupView, MasterView, MemberView } from './status';
export { KvStateMachine, encodeOp, decodeOp, OP_PUT, OP_DELETE, KV_FILE } from './kv-state-machine';
export { checkKey, groupOfKey } from './keys';
export { ServerError, type ServerErrorCode } from './errors';
export * from './options';
