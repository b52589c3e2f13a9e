// Every limit of a PhxPaxos group, with PhxPaxos's defaults (src/config/inside_options.cpp,
// normal mode) unless the comment says the number is ours.
import { type OptionRange, optionsProblem } from '@tspaxos/crc-wasm';
import {
  DEFAULT_LEARNER_OPTIONS,
  type LearnerOptions,
  resolveLearnerOptions,
} from '@tspaxos/learner';
import { MAX_FRAME_BYTES, MAX_FRAME_BYTES_CEILING, maxPaxosValueBytes } from '@tspaxos/transport';
import { PaxosError } from './errors';
import { SINGLE_VALUE_OVERHEAD_BYTES } from './value';

/**
 * The largest value (as given to propose) that, packed for its state machine and framed as an
 * Accept, fits a frame of maxFrameBytes. The default maxValueBytes is this for a 10 MiB frame
 * (PhxPaxos MaxBufferSize, normal mode, bounds the whole message the same way).
 */
export function maxValueBytesForFrame(maxFrameBytes: number): number {
  return maxPaxosValueBytes(maxFrameBytes) - SINGLE_VALUE_OVERHEAD_BYTES;
}

/** Shortest master lease accepted (1000 ms: PhxPaxos MasterMgr::SetLeaseTime ignores shorter). */
export const MASTER_LEASE_MIN_MS = 1000;
/** A node tries to become or stay master this many times per (lease - margin), ± half (MasterMgr::run). */
export const MASTER_TRIES_PER_LEASE = 4;
/**
 * When a lease ends, the candidates try one after another, this fraction of the try interval
 * (lease - margin)/MASTER_TRIES_PER_LEASE apart (ours; PhxPaxos waits for each node's next
 * tick): the first's round (milliseconds) is over before the second starts, so they do not
 * duel, and a duel with a dead member costs a prepare timeout (2 s).
 */
export const MASTER_CANDIDATE_STAGGER_OF_TRY = 0.5;
/** After dropMaster() a node skips elections for this many leases (MasterMgr::run). */
export const MASTER_DROP_PAUSE_LEASES = 2;

export interface PaxosOptions {
  /** First prepare timeout; doubles per retry up to the max (2000 ms). */
  prepareTimeoutMs: number;
  prepareTimeoutMaxMs: number; // 8000 ms
  /** First accept timeout; doubles per retry up to the max (1000 ms). */
  acceptTimeoutMs: number;
  acceptTimeoutMaxMs: number; // 8000 ms
  /**
   * Pause before retrying a lost round, jittered to [⅓, 1⅓) of it: 10–40 ms for the default 30
   * (PhxPaxos Proposer::OnPrepareReply, FastRand() % 30 + 10).
   */
  rejectedRetryDelayMs: number;
  /** Messages queued per group before new ones are dropped (10240 / groups + 1000). */
  ioLoopQueueMaxMessages: number;
  /** Future-instance Prepare/Accept kept for retry (300, RETRY_QUEUE_MAX_LEN). */
  retryQueueMaxMessages: number;
  /**
   * Largest value propose() takes, in bytes: 10 MiB (PhxPaxos MaxBufferSize, normal mode) less
   * the 4 B of packing and the most a frame adds (maxValueBytesForFrame). batchPropose() takes
   * 12 B less (the batch's own header and item header). Checked at construction against the
   * network's maxFrameBytes and the store's maxValueBytes.
   */
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
  /**
   * How long a batch instance may wait for its values (ours; 0: it never waits). When this node
   * may propose and fewer batchPropose values wait than its last batch instance carried, it waits
   * up to this long for as many: the callers that instance answered come back within a round trip
   * (closed-loop clients), and all ride the next instance together instead of half of them
   * missing it by a round trip and riding every other one. A lone writer (last instance: one
   * value) never waits. PhxPaxos BatchPropose waits for 5 values or 20 ms whatever the load
   * (src/node/propose_batch.cpp, ProposeBatch::NeedBatch).
   */
  batchWaitMs: number;
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
    maxValueBytes: maxValueBytesForFrame(MAX_FRAME_BYTES),
    committerQueueMaxProposals: 10_000,
    committerQueueMaxBytes: 64 * 1024 * 1024,
    proposeTimeoutMs: 10_000,
    batchMaxValues: 256,
    batchMaxBytes: 1024 * 1024,
    batchWaitMs: 3,
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

/**
 * A follower that has not asked to learn for this many of its ask intervals (followerAskforLearn
 * IntervalMs + JitterMs: 3 s by default) is forgotten: PhxPaxos, Config::AddFollowerNode,
 * 3 × ASKFORLEARN_NOOP_INTERVAL.
 */
export const FOLLOWER_TIMEOUT_ASK_INTERVALS = 3;

/**
 * Longest stretch of synchronous work a group runs before it lets the event loop run (a log
 * replay at start, a backlog of tasks in the IOLoop), in ms of the scheduler's clock (ours: well
 * under the 10 ms that would delay other groups' timers and I/O noticeably).
 */
export const MAX_SYNC_SLICE_MS = 5;

/** The allowed range of each option (E_BAD_ARGUMENT names the field and its range). */
export const PAXOS_OPTION_RANGES: Readonly<
  Record<keyof Omit<PaxosOptions, 'learner'>, OptionRange>
> = {
  prepareTimeoutMs: { min: 1 },
  prepareTimeoutMaxMs: { min: 1 },
  acceptTimeoutMs: { min: 1 },
  acceptTimeoutMaxMs: { min: 1 },
  rejectedRetryDelayMs: { min: 0 },
  ioLoopQueueMaxMessages: { min: 1 },
  retryQueueMaxMessages: { min: 1 },
  maxValueBytes: { min: 1, max: maxValueBytesForFrame(MAX_FRAME_BYTES_CEILING) },
  committerQueueMaxProposals: { min: 1 },
  committerQueueMaxBytes: { min: 1 },
  proposeTimeoutMs: { min: 1 },
  batchMaxValues: { min: 1 },
  batchMaxBytes: { min: 1 },
  batchWaitMs: { min: 0, max: 1000 },
  executeRetryDelayMs: { min: 1 },
  masterLeaseMs: { min: MASTER_LEASE_MIN_MS },
  masterLeaseMarginMs: { min: 0 },
};

function bad(message: string): PaxosError {
  return new PaxosError('E_BAD_ARGUMENT', message);
}

/**
 * Merges caller options over the defaults and checks them (PaxosError E_BAD_ARGUMENT naming the
 * field and its range): each field in its range, no unknown field, the learner's options as the
 * learner checks them, and the pairs that must agree.
 */
export function resolveOptions(groupCount: number, input: PaxosOptionsInput = {}): PaxosOptions {
  const base = defaultPaxosOptions(groupCount);
  const { learner: learnerInput, ...rest } = input ?? {};
  const problem = optionsProblem('paxos', rest, PAXOS_OPTION_RANGES);
  if (problem !== undefined) throw bad(problem);
  if (learnerInput !== undefined && (typeof learnerInput !== 'object' || learnerInput === null))
    throw bad('paxos option learner must be an object of learner options');
  let learner: LearnerOptions;
  try {
    learner = resolveLearnerOptions({ ...base.learner, ...learnerInput });
  } catch (error) {
    throw bad((error as Error).message);
  }
  const given = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
  const options: PaxosOptions = { ...base, ...given, learner };
  for (const [first, max] of [
    ['prepareTimeoutMs', 'prepareTimeoutMaxMs'],
    ['acceptTimeoutMs', 'acceptTimeoutMaxMs'],
  ] as const) {
    if (options[first] > options[max])
      throw bad(
        `paxos option ${first} (${options[first]}) must be at most ${max} (${options[max]})`,
      );
  }
  if (options.committerQueueMaxBytes < options.maxValueBytes)
    throw bad(
      `paxos option committerQueueMaxBytes (${options.committerQueueMaxBytes}) must be at least maxValueBytes (${options.maxValueBytes}): the largest value could never be queued`,
    );
  return options;
}

/**
 * Checks that a value of maxValueBytes, packed and framed, fits what the network sends and what
 * the store keeps: otherwise its Accept would be dropped as too large and the caller would wait
 * for E_TIMEOUT.
 */
export function checkValueLimits(
  options: PaxosOptions,
  networkMaxFrameBytes: number = MAX_FRAME_BYTES,
  storeMaxValueBytes: number = Number.POSITIVE_INFINITY,
): void {
  const fitsFrame = maxValueBytesForFrame(networkMaxFrameBytes);
  if (options.maxValueBytes > fitsFrame)
    throw bad(
      `paxos option maxValueBytes (${options.maxValueBytes}) must be at most ${fitsFrame}: the network's maxFrameBytes (${networkMaxFrameBytes}) less packing and framing`,
    );
  const fitsStore = storeMaxValueBytes - SINGLE_VALUE_OVERHEAD_BYTES;
  if (options.maxValueBytes > fitsStore)
    throw bad(
      `paxos option maxValueBytes (${options.maxValueBytes}) must be at most ${fitsStore}: the store's maxValueBytes (${storeMaxValueBytes}) less ${SINGLE_VALUE_OVERHEAD_BYTES} B of packing`,
    );
}
