// The one file that imports the tspaxos packages, so their entry points can move (subpath exports
// such as @tspaxos/paxos/node, @tspaxos/transport/tcp) by editing only here.
export { createNode } from '@tspaxos/paxos/node';
export {
  PaxosNode,
  PaxosError,
  type PaxosErrorCode,
  type ProposeResult,
  defaultPaxosOptions,
  MASTER_LEASE_MIN_MS,
  NO_SM_ID,
  type StateMachine,
  type ExecuteContext,
  type GroupStatus,
  type NodeCounters,
  type ForwardingCounters,
  type Logger as PaxosLogger,
} from '@tspaxos/paxos';
export { TcpNetwork, type PeerAddress, type TcpCounters } from '@tspaxos/transport/tcp';
export { encodeHello } from '@tspaxos/transport';
export { NodeFiles } from '@tspaxos/checkpoint/fs';
