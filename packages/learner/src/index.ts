export {
  type LearnerOptions,
  DEFAULT_LEARNER_OPTIONS,
  PHXPAXOS_LEARNER_OPTIONS,
  LEARNER_OPTION_RANGES,
  resolveLearnerOptions,
} from './options';
export {
  LearnerError,
  type LearnerErrorCode,
  EXPECTED_READ_FAILURES,
  isExpectedReadFailure,
} from './errors';
export { LearnerState } from './state';
export { SenderBudget, type SenderBudgetCounters } from './budget';
export { Progress, type ProgressPhase } from './progress';
export { RateWindow } from './rate';
export {
  LearnerSender,
  RECORD_OVERHEAD_BYTES,
  type SenderPort,
  type SenderPhase,
  type SenderEndReason,
  type SenderCounters,
  type SenderPeerStatus,
} from './sender';
export { Learner } from './learner';
export type { LearnerCarry, LearnerCounters, LearnerStatus, ReadFailure } from './status';
export type {
  LearnerPort,
  LearnerAcceptorPort,
  LearnerVariablesPort,
  LearnerMembershipPort,
  LearnerRuntimePort,
} from './port';
export {
  LearnerReceiver,
  type LearnerFaults,
  type ReceiverPort,
  type ReceiverCounters,
} from './receiver';
export {
  CatchUpTracker,
  type LearnerEvent,
  type CatchUpStatus,
  type CatchUpProgress,
  type CatchUpSummary,
} from './catch-up';
