// Part of liveness: time passes. More than MAX_EVENTS_PER_MS events at one virtual millisecond
// means a loop that never yields to time (the run would never reach the heal).
export interface EventRunEvent {
  kind: 'event';
  /** The virtual time the event runs at. */
  atMs: number;
}

/** More events than this at one virtual millisecond means a loop that never yields to time. */
const MAX_EVENTS_PER_MS = 20_000;

export class EventStormChecker {
  private stormAtMs = -1;
  private stormEvents = 0;

  /** `fail` records the violation and throws (the run stops at once). */
  constructor(
    private readonly fail: (message: string) => never,
    private readonly eventName: () => string,
  ) {}

  /** Every event, before it runs. */
  observe(e: EventRunEvent): void {
    if (e.atMs > this.stormAtMs) {
      this.stormAtMs = e.atMs;
      this.stormEvents = 0;
    } else if (++this.stormEvents > MAX_EVENTS_PER_MS) {
      this.fail(
        `event storm: more than ${MAX_EVENTS_PER_MS} events at ${e.atMs} ms without time passing (last: ${this.eventName()})`,
      );
    }
  }

  finish(): void {}
}
