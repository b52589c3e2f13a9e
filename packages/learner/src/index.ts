export { type Ballot, NULL_BALLOT, compareBallots, ballotEquals, isNullBallot } from './ballot';
export {
  type LearnerOptions,
  DEFAULT_LEARNER_OPTIONS,
  LEARNER_OPTION_RANGES,
  resolveLearnerOptions,
} from './options';
export { LearnerError, type LearnerErrorCode } from './errors';
export { LearnerState } from './state';
export {
  LearnerSender,
  type SenderPort,
  type SenderPhase,
  type SenderEndReason,
  type SenderCounters,
} from './sender';
export {
  Learner,
  type LearnerHost,
  type LearnerCounters,
  type LearnerStatus,
  type LearnerFaults,
} from './learner';
