// `@tspaxos/paxos`: the public, sans-IO surface (its API report: api/paxos.api.md). The node is
// built by `createNode` of `@tspaxos/paxos/node` (TCP and SQLite) or `createTestCluster` of
// `@tspaxos/paxos/testing` (virtual time, in memory); the lower-level builder and the codecs are
// in `@tspaxos/paxos/internal`, for the simulator and the reference server, with no promise kept.
export type {
  GroupHandle,
  Machines,
  NodeHandle,
  ProposeArgs,
  ProposeOptions,
  WaitOptions,
} from './facade';
export type { ProposeResult, CommitterCounters } from './committer';
export type { ProposerCounters } from './proposer';
export type { GroupStatus, GroupErrors, ErrorCount, GroupCounters } from './group';
export type { NodeEvents, NodeEventName } from './events';
export { PaxosError, PAXOS_ERROR_CODES, type PaxosErrorCode, type PaxosOutcome } from './errors';
// The shared vocabulary the node API takes, re-exported from @tspaxos/core for its users.
export { InvariantError } from '@tspaxos/core';
export type { Logger, LogLevel, Scheduler, RandomSource, Runtime } from '@tspaxos/core';
export type { PaxosOptions, PaxosOptionsInput } from './options';
export type { StateMachine, ExecuteContext } from './state-machine';
export type { ProposalIdentity } from './value';
export type { MasterInfo, MasterCounters } from './master';
export type { MasterVariables } from './master-variables';
export type { ForwardingCounters } from './forwarding';
export type { QuorumReadCounters } from './quorum-read';
