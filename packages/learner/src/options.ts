// Every limit of the learner, with PhxPaxos's defaults (src/config/inside_options.cpp, normal
// mode; large-value mode in parentheses where it differs).
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
  /** Instances the sender may run ahead of the last ack (21; large-value mode 5). */
  senderAckLead: number;
  /** Without an ack for this long the sender gives up and cuts its lead (5000 ms; 60000). */
  senderAckTimeoutMs: number;
  /** A prepared sender that is never confirmed frees itself after this long (5000 ms; 6000). */
  senderPrepareTimeoutMs: number;
  /** Sender rate limit in instances per second, shared by the node's groups (100000 / groups). */
  sendRateInstancesPerSec: number;
  /** The receiver acks every this many learned instances (4; large-value mode 2). */
  receiverAckLead: number;
  /** SendNowInstanceID carries system/master variables when the asker is this far behind (50). */
  variablesGapInstances: number;
}

export const DEFAULT_LEARNER_OPTIONS: Readonly<LearnerOptions> = Object.freeze({
  askforLearnIntervalMs: 2500,
  askforLearnJitterMs: 500,
  followerAskforLearnIntervalMs: 2000,
  followerAskforLearnJitterMs: 1000,
  senderAckLead: 21,
  senderAckTimeoutMs: 5000,
  senderPrepareTimeoutMs: 5000,
  sendRateInstancesPerSec: 100_000,
  receiverAckLead: 4,
  variablesGapInstances: 50,
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
  variablesGapInstances: { min: 0 },
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
