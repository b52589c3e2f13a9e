// The node's status, typed: built once per request or scrape (KvServer.status) and read by
// GET /status, the metrics and the dashboard, so a new field is written here and nowhere else.
// Always one entry per group under `groups`, whatever --groups is.
import type { KvStateMachine } from './kv-state-machine';
import type { MasterWaitCounters } from './master-wait';
import type {
  ForwardingCounters,
  GroupStatus,
  NodeCounters,
  QuorumReadCounters,
  TcpCounters,
} from './stack';

/** The master with a live lease in this node's view. */
export interface MasterView {
  nodeId: number;
  version: number;
  /** On this node's monotonic clock (the paxos Scheduler's `performance.now()`). */
  expiresAtMs: number;
  /** What is left of the lease here. */
  remainingMs: number;
  /** Its HTTP API (null when this node does not know it). */
  http: string | null;
  /** True only on the node that holds the lease on its own clock. */
  self: boolean;
}

/** This node's view of a member, polled over HTTP (--http-peers). */
export interface MemberView {
  nodeId: number;
  http: string | null;
  self: boolean;
  /** Null when this node does not know the member's HTTP address. */
  reachable: boolean | null;
  /** Group 0's now instance id on that member. */
  instanceId: number | null;
  lastSeenMs: number | null;
  error?: string;
}

export type KvStatus = ReturnType<KvStateMachine['status']>;

/** One group as this node sees it: the paxos group, its KV state machine, its master. */
export interface GroupView extends Pick<
  GroupStatus,
  | 'nodeId'
  | 'group'
  | 'instanceId'
  | 'minChosenInstanceId'
  | 'checkpointInstanceId'
  | 'lastChecksum'
  | 'isFollower'
  | 'members'
  | 'membershipVersion'
  | 'followers'
  | 'proposer'
  | 'committer'
  | 'counters'
> {
  stopped: NonNullable<GroupStatus['stopped']> | null;
  /**
   * False when a majority of the group's members is unreachable from this node (its transport's
   * connections to them failed): writes and consistent reads answer 503 E_NO_QUORUM at once.
   */
  quorum: boolean;
  /** Null: no master with a live lease in this node's view. */
  master: MasterView | null;
  /** The election here: the recorded master variables and the counters (attempts, expiries …). */
  masterElection: GroupStatus['masterElection'];
  /** The learner and its catch-up (from whom, target, rates, ETA: @tspaxos/learner README). */
  learner: Omit<GroupStatus['learner'], 'sender'>;
  /** The learner sender, one entry per peer it streams to. */
  sender: GroupStatus['sender'];
  /** The KV state machine's own checkpoint file (--checkpoint-every, POST /admin/checkpoint). */
  kv: {
    checkpointInstanceId: number;
    appliedInstanceId: number;
    lastCheckpointAtMs: number | null;
    locked: boolean;
    /** Idempotency keys the group holds (at most the window's count). */
    idempotencyKeys: number;
    counters: KvStatus['counters'];
    /** Syncs of the KV file's WAL on the thread pool since it was opened (kv-wal-sync.ts). */
    walSyncs: number;
  };
  /** The checkpoint package: mode, transfers, cleaner, replayer (@tspaxos/checkpoint README). */
  checkpoint: NonNullable<GroupStatus['checkpoint']> | null;
}

export interface NodeStatus {
  nodeId: number;
  httpUrl: string;
  paxosAddress: string | null;
  groupCount: number;
  /** This node's view of every member. */
  members: MemberView[];
  network: TcpCounters;
  nodeCounters: NodeCounters;
  /** Writes, barriers and read indexes forwarded to or served for the masters (paxos forwarding). */
  forwarding: ForwardingCounters;
  /** `?consistent=true` reads: rounds to a majority, positions served, fallback barriers. */
  quorumReads: QuorumReadCounters;
  /** Writes and barriers that waited for a master this node could send them to (master-wait.ts). */
  masterWait: MasterWaitCounters;
  /** The last unexpected errors raised inside the server (all are counted in the metric). */
  taskErrors: { code: string; message: string }[];
  stopping: boolean;
  groups: GroupView[];
}

export function groupView(
  paxos: GroupStatus,
  kv: KvStatus,
  master: MasterView | null,
  quorum: boolean,
): GroupView {
  const { sender, ...learner } = paxos.learner;
  return {
    nodeId: paxos.nodeId,
    group: paxos.group,
    instanceId: paxos.instanceId,
    minChosenInstanceId: paxos.minChosenInstanceId,
    checkpointInstanceId: paxos.checkpointInstanceId,
    lastChecksum: paxos.lastChecksum,
    isFollower: paxos.isFollower,
    members: paxos.members,
    membershipVersion: paxos.membershipVersion,
    followers: paxos.followers,
    stopped: paxos.stopped ?? null,
    quorum,
    master,
    masterElection: paxos.masterElection,
    learner,
    sender,
    kv: {
      checkpointInstanceId: kv.checkpointInstanceId,
      appliedInstanceId: kv.appliedInstanceId,
      lastCheckpointAtMs: kv.lastCheckpointAtMs ?? null,
      locked: kv.locked,
      idempotencyKeys: kv.idempotencyKeys,
      counters: kv.counters,
      walSyncs: kv.walSyncs,
    },
    checkpoint: paxos.checkpoint ?? null,
    proposer: paxos.proposer,
    committer: paxos.committer,
    counters: paxos.counters,
  };
}
