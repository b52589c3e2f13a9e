// The harness's own invariants: no promise rejected with no handler during the run
// ('unhandled-rejection'), and the simulation itself does not throw ('crash').
import { Violation } from '../result';
import { describeError } from '../trace';

export interface ThrewEvent {
  kind: 'threw';
  error: unknown;
}

export class HarnessChecker {
  private readonly onUnhandled = (reason: unknown): void =>
    this.note(
      'unhandled-rejection',
      `a promise rejected with no handler (during event "${this.eventName()}"): ${describeError(reason)}`,
    );

  /** `note` records a violation without throwing. */
  constructor(
    private readonly note: (invariant: 'unhandled-rejection' | 'crash', message: string) => void,
    private readonly eventName: () => string,
  ) {}

  /** Watches the process for rejections nobody handles, until finish(). */
  start(): void {
    process.on('unhandledRejection', this.onUnhandled);
  }

  /** The run threw: a Violation is how a checker stops it; anything else is a crash. */
  observe(e: ThrewEvent): void {
    if (!(e.error instanceof Violation))
      this.note('crash', `the simulation threw: ${describeError(e.error)}`);
  }

  finish(): void {
    process.off('unhandledRejection', this.onUnhandled);
  }
}
