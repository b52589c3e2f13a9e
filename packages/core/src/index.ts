export { TspaxosError, InvariantError, assert } from './errors';
export { type Ballot, NULL_BALLOT, compareBallots, ballotEquals, isNullBallot } from './ballot';
export {
  type Scheduler,
  type RandomSource,
  type LogLevel,
  type Logger,
  type Runtime,
} from './ports';
export { SeededRandomSource } from './seeded-random-source';
export {
  type ClosedLoopWaitOptions,
  ClosedLoopWait,
  CLOSED_LOOP_WAIT_PAUSE,
} from './closed-loop-wait';
