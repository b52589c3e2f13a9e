import { describe, expect, it } from 'vitest';
import { EventStormChecker } from './event-storm';

class Stop extends Error {}

describe('EventStormChecker', () => {
  it('accepts any number of events while time passes, and stops a run stuck at one instant', () => {
    const failures: string[] = [];
    const c = new EventStormChecker(
      (m) => {
        failures.push(m);
        throw new Stop(m);
      },
      () => 'a timer',
    );
    for (let ms = 0; ms < 50_000; ms++) c.observe({ kind: 'event', atMs: ms });
    // 20 000 events at one millisecond are allowed (a big catch-up batch); one more is a storm.
    for (let i = 0; i <= 20_000; i++) c.observe({ kind: 'event', atMs: 50_000 });
    expect(failures).toEqual([]);
    expect(() => c.observe({ kind: 'event', atMs: 50_000 })).toThrow(Stop);
    expect(failures).toEqual([
      'event storm: more than 20000 events at 50000 ms without time passing (last: a timer)',
    ]);
  });
});
