// Every limit of a PhxPaxos group, with PhxPaxos's defaults (src/config/inside_options.cpp,
// normal mode) unless the comment says the number is ours.
import { DEFAULT_LEARNER_OPTIONS, type LearnerOptions } from '@tspaxos/learner';

/** Shortest master lease accepted (1000 ms: PhxPaxos MasterMgr::SetLeaseTime ignores shorter). */
export const MASTER_LEASE_MIN_MS = 1000;
/** A node tries to become or stay master this many times per (lease - margin), ± half (MasterMgr::run). */
export const MASTER_TRIES_PER_LEASE = 4;
/** After dropMaster() a node skips elections for this many leases (MasterMgr::run). */
export const MASTER_DROP_PAUSE_LEASES = 2;

export interface PaxosOptions {
  /** First prepare timeout; doubles per retry up to the max (2000 ms). */
  prepareTimeoutMs: number;
  prepareTimeoutMaxMs: number; // 8000 ms
  /** First accept timeout; doubles per retry up to the max (1000 ms). */
  acceptTimeoutMs: number;
  acceptTimeoutMaxMs: number; // 8000 ms
  /** Pause before retrying a round that a majority rejected (30 ms, Proposer::OnPrepareReply). */
  rejectedRetryDelayMs: number;
  /** Messages queued per group before new ones are dropped (10240 / groups + 1000). */
  ioLoopQueueMaxMessages: number;
  /** Future-instance Prepare/Accept kept for retry (300, RETRY_QUEUE_MAX_LEN). */
  retryQueueMaxMessages: number;
  /** Largest value a proposal may carry (10 MiB: MaxBufferSize in normal mode). */
  maxValueBytes: number;
  /** Proposals waiting per group (ours: bounded so a stalled group cannot eat memory). */
  committerQueueMaxProposals: number;
  /** Bytes of values waiting per group (ours). */
  committerQueueMaxBytes: number;
  /** Default time a propose() waits before it rejects with E_TIMEOUT (ours). */
  proposeTimeoutMs: number;
  /** Most values packed into one instance by batchPropose (ours; PhxPaxos BatchPropose packs by count too). */
  batchMaxValues: number;
  /** Most bytes packed into one instance by batchPropose (ours). */
  batchMaxBytes: number;
  /** Delay before re-running a state machine that threw (ours). */
  executeRetryDelayMs: number;
  /** Master lease (10000 ms: PhxPaxos MasterMgr's m_iLeaseTime; leases below 1000 ms refused). */
  masterLeaseMs: number;
  /**
   * The holder ends its own lease this much early, against clock-rate drift (100 ms: PhxPaxos
   * MasterMgr::TryBeMaster uses lease - 100). Safe while every clock's rate is within
   * margin / (2 × lease - margin) of real time (master.ts).
   */
  masterLeaseMarginMs: number;
  learner: LearnerOptions;
}

export function defaultPaxosOptions(groupCount = 1): PaxosOptions {
  return {
    prepareTimeoutMs: 2000,
    prepareTimeoutMaxMs: 8000,
    acceptTimeoutMs: 1000,
    acceptTimeoutMaxMs: 8000,
    rejectedRetryDelayMs: 30,
    ioLoopQueueMaxMessages: Math.floor(10240 / groupCount) + 1000,
    retryQueueMaxMessages: 300,
    maxValueBytes: 10 * 1024 * 1024,
    committerQueueMaxProposals: 10_000,
    committerQueueMaxBytes: 64 * 1024 * 1024,
    proposeTimeoutMs: 10_000,
    batchMaxValues: 256,
    batchMaxBytes: 1024 * 1024,
    executeRetryDelayMs: 1000,
    masterLeaseMs: 10_000,
    masterLeaseMarginMs: 100,
    learner: {
      ...DEFAULT_LEARNER_OPTIONS,
      sendRateInstancesPerSec: Math.max(
        1,
        Math.floor(DEFAULT_LEARNER_OPTIONS.sendRateInstancesPerSec / groupCount),
      ),
    },
  };
}

export type PaxosOptionsInput = Partial<Omit<PaxosOptions, 'learner'>> & {
  learner?: Partial<LearnerOptions>;
};

export function resolveOptions(groupCount: number, input: PaxosOptionsInput = {}): PaxosOptions {
  const base = defaultPaxosOptions(groupCount);
  return { ...base, ...input, learner: { ...base.learner, ...input.learner } };
}
