// Every limit of the learner, with PhxPaxos's defaults (src/config/inside_options.cpp, normal
// mode; large-value mode in parentheses where it differs).

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
