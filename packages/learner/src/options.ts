// Every limit of the learner, with PhxPaxos's defaults (src/config/inside_options.cpp, normal
// mode; large-value mode in parentheses where it differs). Limits PhxPaxos does not have are
// marked "ours", with the measurement that chose them (packages/learner/bench, BENCHMARKS.md).
import { type OptionRange, optionsProblem } from '@tspaxos/crc-wasm';
import { LearnerError } from './errors';

export interface LearnerOptions {
  /** Interval between AskforLearn broadcasts, before jitter (2500 ms). */
  askforLearnIntervalMs: number;
  /** Random extra added to each interval (500 ms). */
  askforLearnJitterMs: number;
  /** A follower's interval and jitter (2000 ms + up to 1000 ms). */
  followerAskforLearnIntervalMs: number;
  followerAskforLearnJitterMs: number;
  /**
   * Instances a peer's stream may run ahead of its last ack (PhxPaxos: 21; large-value mode 5).
   * Ours: 16,384, i.e. 8 batches of 2,048 in flight, so the receiver always has the next batch
   * queued while it stores one and the two never take turns (with PhxPaxos's 21 they did: the
   * issue measured 12.4–13.0 k instances/s). Not tuned finer than that.
   */
  senderAckLead: number;
  /**
   * Bytes of values a peer's stream may have in flight past its last ack (ours: 8 MiB, about
   * 0.15 s of the 50–70 MB/s measured here at 100 KiB values; a single value larger than this
   * still goes alone). Node 3's peak RSS during that catch-up: ~117 MiB.
   */
  senderAckLeadBytes: number;
  /**
   * Bytes of values in flight across every peer and every group of the node (ours: 32 MiB).
   * The node passes one SenderBudget to all its groups; this is its default capacity.
   */
  senderBudgetBytes: number;
  /** Peers served at once by one group's sender (ours: 4; 1 reproduces PhxPaxos). */
  maxConcurrentLearners: number;
  /** Without an ack for this long the sender gives up and cuts its lead (5000 ms; 60000). */
  senderAckTimeoutMs: number;
  /**
   * A prepared stream that is never confirmed frees itself after this long (PhxPaxos 5000 ms;
   * 6000). Ours: 1000 ms, and at once when the asker declines it (it confirmed another peer).
   */
  senderPrepareTimeoutMs: number;
  /**
   * Sender rate limit in instances per second, shared by the node's groups (PhxPaxos 100,000 /
   * groups). Ours: 2,000,000 / groups: 100,000 would cap a catch-up of small values at half the
   * 200,000/s the stream reaches; the byte windows, not the rate, bound memory.
   */
  sendRateInstancesPerSec: number;
  /**
   * Most instances in one SendLearnValue batch (ours: 2,048; 1 is PhxPaxos's one per frame):
   * one putMany, one ack and one frame per 2,048 values; the per-batch costs vanish in the
   * receiver's profile at that size (its putMany rows dominate). A batch is also cut when the
   * sender's turn runs out of time (senderTurnMaxMs).
   */
  batchMaxInstances: number;
  /**
   * Instances in the first batch of a stream; each next batch may be twice as large, up to
   * batchMaxInstances (ours: 32; a small first batch reaches a restarted node in a few ms even
   * while its code is still cold, where a full batch took ~150 ms here).
   */
  firstBatchInstances: number;
  /**
   * Most value bytes in one SendLearnValue batch (ours: 1 MiB); a single larger value goes alone
   * in its own frame.
   */
  batchMaxBytes: number;
  /**
   * Value bytes the sender reads and sends in one turn of the event loop before it yields to
   * the node's own work (ours: 4 MiB); the rest continues on the next turn.
   */
  senderTurnMaxBytes: number;
  /** Instances the sender sends in one turn (ours: 4,096). */
  senderTurnMaxInstances: number;
  /**
   * Milliseconds of sending in one turn (ours: 4 ms): on this shared machine reading and encoding
   * 2,048 records took anywhere from 3 to 40 ms, so a count alone does not bound the turn, and
   * the frames already queued leave only when the turn ends.
   */
  senderTurnMaxMs: number;
  /**
   * Share of the node's event loop a stream may take while the group is busy with Paxos traffic
   * (senderBusyWindowMs) and the stream has more to send (ours: 0.1): after a turn of t ms that
   * stopped at its limit, the next turn starts t × (1 − share) / share ms later (Node's timers
   * round this up to 1 ms), so the group's own work gets the rest of the loop and of the CPU.
   * 1 = no pause. A quiet group's stream does not pause: it runs in the loop's idle time.
   * 0.1, not 0.5: with three processes on two shared cores the stream's CPU (sender and
   * receiver) delays every hop of a commit, not only the serving node's loop; interleaved on
   * the loaded machine (load ~4), 0.5 / 0.2 / 0.1 gave commit ratios 0.50 / 0.67 / 0.72 (median
   * of 6 runs, both servers) and 100 B streams of ~42 k / ~45 k / ~29 k instances/s while
   * node 1 proposes (BENCHMARKS.md, "Catch-up").
   */
  senderLoopShare: number;
  /**
   * Milliseconds of sending in one turn while the group is busy with its own Paxos traffic (a
   * Prepare, Accept or reply handled in the last senderBusyWindowMs).
   * Ours: 0.1 ms (0.05 ms measured within the noise of it). A turn cannot be interrupted, so an Accept that arrives during one waits for
   * its end: with a commit taking ~1 ms here (1 caller, 3 nodes), 4 ms turns cost the group 70–
   * 90 % of its commit rate during a catch-up and short turns about a fifth (paxos bench
   * catchup.mjs; BENCHMARKS.md, "Catch-up"). When the group is quiet, senderTurnMaxMs applies.
   */
  senderBusyTurnMaxMs: number;
  /**
   * Most instances in one batch while the group is busy (ours: 64; batchMaxInstances when
   * quiet). A turn sends at least one batch, and its clock is read only between batches and
   * every 64 records read: with the read-ahead already full, a busy turn used to send a whole
   * ~200-instance batch (encode, checksums, frame: ~0.7 ms here) whatever senderBusyTurnMaxMs
   * said, and an Accept arriving meanwhile waited for it. 64 keeps a busy turn near 0.2 ms; the
   * stream pays more frames and acks per instance only while the group proposes (paxos bench
   * catchup.mjs; BENCHMARKS.md, "Catch-up").
   */
  senderBusyBatchMaxInstances: number;
  /**
   * The group counts as busy this long after its last Paxos message (ours: 50 ms). Longer than
   * a commit's tail latency during a catch-up (p99 5–15 ms on the shared 2-core machine): with
   * 5 ms, one slow commit left a gap in which a full senderTurnMaxMs turn (4 ms) started and
   * delayed the next Accept in turn (node 2 serving: commit p99 12–17 ms, 50 ms: 7–9 ms).
   */
  senderBusyWindowMs: number;
  /**
   * The receiver acks every this many learned instances of one-value frames (4; large-value
   * mode 2). Batches are acked once each.
   */
  receiverAckLead: number;
  /**
   * The receiver also acks once the value bytes it received since its last ack (each value's
   * length plus RECORD_OVERHEAD_BYTES, as the sender counts them) reach this many (ours: 1 MiB,
   * batchMaxBytes, the least the sender cuts its byte window to). Without it, values of 2 MiB
   * and more crawled (issue 17): fewer than receiverAckLead of them fit senderAckLeadBytes, so
   * no ack came until the stall timer, one value per learnerStallMs. The sender holds a value
   * back for its byte window only while this many bytes or receiverAckLead instances are in
   * flight (an ack is then sure to come), so a stream never waits for an ack that is not due.
   */
  receiverAckLeadBytes: number;
  /**
   * While catching up, no value for this long means the sender is gone: ask everyone again
   * (ours: 1000 ms; PhxPaxos waits for the next AskforLearn, 2.5–3 s after the last value).
   */
  learnerStallMs: number;
  /** SendNowInstanceID carries system/master variables when the asker is this far behind (50). */
  variablesGapInstances: number;
  /** Sliding window of the catch-up and per-peer rates in status() (ours: 5000 ms). */
  rateWindowMs: number;
}

/**
 * While the sender reads ahead, it reads the clock at least once per this many value bytes (ours:
 * 64 KiB, tens of µs of reading here), so a turn of large values ends on time (senderTurnMaxMs,
 * senderBusyTurnMaxMs) and not one 1 MiB batch later.
 */
export const SENDER_CLOCK_CHECK_BYTES = 64 * 1024;

export const DEFAULT_LEARNER_OPTIONS: Readonly<LearnerOptions> = Object.freeze({
  askforLearnIntervalMs: 2500,
  askforLearnJitterMs: 500,
  followerAskforLearnIntervalMs: 2000,
  followerAskforLearnJitterMs: 1000,
  senderAckLead: 16_384,
  senderAckLeadBytes: 8 * 1024 * 1024,
  senderBudgetBytes: 32 * 1024 * 1024,
  maxConcurrentLearners: 4,
  senderAckTimeoutMs: 5000,
  senderPrepareTimeoutMs: 1000,
  sendRateInstancesPerSec: 2_000_000,
  batchMaxInstances: 2048,
  firstBatchInstances: 32,
  batchMaxBytes: 1024 * 1024,
  senderTurnMaxBytes: 4 * 1024 * 1024,
  senderTurnMaxInstances: 4096,
  senderTurnMaxMs: 4,
  senderLoopShare: 0.1,
  senderBusyTurnMaxMs: 0.1,
  senderBusyBatchMaxInstances: 64,
  senderBusyWindowMs: 50,
  receiverAckLead: 4,
  receiverAckLeadBytes: 1024 * 1024,
  learnerStallMs: 1000,
  variablesGapInstances: 50,
  rateWindowMs: 5000,
});

/** PhxPaxos's learner, as exactly as the options allow: one peer, one value per frame. */
export const PHXPAXOS_LEARNER_OPTIONS: Readonly<Partial<LearnerOptions>> = Object.freeze({
  senderAckLead: 21,
  maxConcurrentLearners: 1,
  senderPrepareTimeoutMs: 5000,
  sendRateInstancesPerSec: 100_000,
  batchMaxInstances: 1,
  learnerStallMs: 3000,
});

/** The allowed range of each option (E_BAD_ARGUMENT names the field and its range). */
export const LEARNER_OPTION_RANGES: Readonly<Record<keyof LearnerOptions, OptionRange>> = {
  askforLearnIntervalMs: { min: 1 },
  askforLearnJitterMs: { min: 0 },
  followerAskforLearnIntervalMs: { min: 1 },
  followerAskforLearnJitterMs: { min: 0 },
  senderAckLead: { min: 1 },
  senderAckTimeoutMs: { min: 1 },
  senderPrepareTimeoutMs: { min: 1 },
  // 0 would re-arm a 0 ms timer forever.
  sendRateInstancesPerSec: { min: 1 },
  receiverAckLead: { min: 1 },
  receiverAckLeadBytes: { min: 1 },
  variablesGapInstances: { min: 0 },
  senderAckLeadBytes: { min: 1 },
  senderBudgetBytes: { min: 1 },
  maxConcurrentLearners: { min: 1, max: 1024 },
  batchMaxInstances: { min: 1 },
  firstBatchInstances: { min: 1 },
  batchMaxBytes: { min: 1 },
  senderTurnMaxBytes: { min: 1 },
  senderTurnMaxInstances: { min: 1 },
  senderTurnMaxMs: { min: 1 },
  // A share of the event loop: 1 = never pause, near 0 = almost never send.
  senderLoopShare: { min: 0.01, max: 1, integer: false },
  // Fractions of a millisecond: a turn checks the clock every 64 records (sender.ts).
  senderBusyTurnMaxMs: { min: 0.01, integer: false },
  senderBusyBatchMaxInstances: { min: 1 },
  senderBusyWindowMs: { min: 0, integer: false },
  learnerStallMs: { min: 1 },
  rateWindowMs: { min: 1 },
};

/**
 * Merges caller options over the defaults and checks them: each field in its range, no unknown
 * field, and receiverAckLead ≤ senderAckLead + 1 (the sender sends at most senderAckLead + 1
 * instances past the last ack; a receiver waiting for more would never ack, and the sender would
 * stall until its ack timeout every time).
 */
export function resolveLearnerOptions(input: Partial<LearnerOptions> = {}): LearnerOptions {
  const problem = optionsProblem('learner', input, LEARNER_OPTION_RANGES);
  if (problem !== undefined) throw new LearnerError('E_BAD_ARGUMENT', problem);
  const given = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  const options: LearnerOptions = { ...DEFAULT_LEARNER_OPTIONS, ...given };
  if (options.receiverAckLead > options.senderAckLead + 1) {
    throw new LearnerError(
      'E_BAD_ARGUMENT',
      `learner option receiverAckLead (${options.receiverAckLead}) must be at most senderAckLead + 1 (${options.senderAckLead + 1}): the receiver would never ack`,
    );
  }
  return options;
}
