// The closed-loop wait on a fake schedule: a batch settles, its callers come back (or do not),
// and the wait starts the next batch when they are all there, or when its timer runs out, after
// which CLOSED_LOOP_WAIT_PAUSE batches go without waiting.
import { describe, expect, it } from 'vitest';
import { CLOSED_LOOP_WAIT_PAUSE, ClosedLoopWait, type ClosedLoopWaitOptions } from './index';

interface FakeTimer {
  delayMs: number;
  fn: () => void;
  cancelled: boolean;
  fired: boolean;
}

/** A schedule the test runs by hand, and a wait on it that counts what it tells. */
function setUp(waitMs: number, ranOut?: (wait: ClosedLoopWait) => void) {
  const timers: FakeTimer[] = [];
  const told = { waits: 0, filled: 0, ranOut: 0 };
  const options: ClosedLoopWaitOptions = {
    waitMs,
    schedule: (delayMs, fn) => {
      const timer: FakeTimer = { delayMs, fn, cancelled: false, fired: false };
      timers.push(timer);
      return () => {
        timer.cancelled = true;
      };
    },
    ranOut: () => {
      told.ranOut++;
      ranOut?.(wait);
    },
    onWait: () => told.waits++,
    onFilled: () => told.filled++,
  };
  const wait = new ClosedLoopWait(options);
  /** The timers neither cancelled nor fired. */
  const live = () => timers.filter((t) => !t.cancelled && !t.fired);
  /** Runs the one live timer out. */
  const runOut = () => {
    const [timer, ...more] = live();
    expect(timer).toBeDefined();
    expect(more).toEqual([]);
    timer!.fired = true;
    timer!.fn();
  };
  /** One check with `waiting` callers there: its answer and what the wait has told so far. */
  const check = (waiting: number, mayWait?: boolean) => [wait.waits(waiting, mayWait), { ...told }];
  return { wait, timers, told, live, runOut, check };
}

/** Nothing waited: no wait under way, no timer ever scheduled, nothing told. */
function expectNeverWaited({ wait, timers, told }: ReturnType<typeof setUp>): void {
  expect(wait.isWaiting).toBe(false);
  expect(timers).toEqual([]);
  expect(told).toEqual({ waits: 0, filled: 0, ranOut: 0 });
}

describe('ClosedLoopWait', () => {
  it.each([
    { when: 'before a batch settled (no target yet)', waitMs: 5, target: undefined },
    { when: 'with waitMs 0, whatever the target', waitMs: 0, target: 4 },
  ])('never waits $when', ({ waitMs, target }) => {
    const fixture = setUp(waitMs);
    if (target !== undefined) fixture.wait.settled(target);
    expect(fixture.wait.target).toBe(target ?? 0);
    expect([fixture.wait.waits(0), fixture.wait.waits(3)]).toEqual([false, false]);
    expectNeverWaited(fixture);
  });

  it('does not wait when the target is already there, or is 0 (nobody to wait for)', () => {
    const fixture = setUp(5);
    fixture.wait.settled(4);
    expect([fixture.wait.waits(4), fixture.wait.waits(9)]).toEqual([false, false]);
    fixture.wait.settled(0);
    expect(fixture.wait.waits(0)).toBe(false);
    expectNeverWaited(fixture);
  });

  it('waits for the target, one timer however many checks, and ends filled when it is reached', () => {
    const { wait, timers, told, live, check } = setUp(5);
    wait.settled(4);
    expect(wait.waits(1)).toBe(true);
    expect(wait.isWaiting).toBe(true);
    expect(timers.map((t) => t.delayMs)).toEqual([5]);
    // The callers come back one by one: still waiting, still the one timer, one wait counted.
    expect(wait.waits(2)).toBe(true);
    expect(wait.waits(3)).toBe(true);
    expect(timers.length).toBe(1);
    expect(told).toEqual({ waits: 1, filled: 0, ranOut: 0 });
    // The 4th: the wait ends filled, its timer cancelled, and the batch starts.
    expect(wait.waits(4)).toBe(false);
    expect(wait.isWaiting).toBe(false);
    expect(live()).toEqual([]);
    expect(timers[0]!.cancelled).toBe(true);
    expect(told).toEqual({ waits: 1, filled: 1, ranOut: 0 });
    wait.started();
    // The batch settles; the next one waits again (a closed loop, no pause after a filled wait).
    wait.settled(4);
    expect(check(0)).toEqual([true, { waits: 2, filled: 1, ranOut: 0 }]);
    expect(check(5)).toEqual([false, { waits: 2, filled: 2, ranOut: 0 }]);
  });

  it('keeps the target until the next batch settles', () => {
    const { wait, check } = setUp(5);
    wait.settled(3);
    expect(wait.waits(2)).toBe(true);
    expect(wait.waits(3)).toBe(false);
    wait.started();
    // Not settled yet: the next check (say the batch in flight was lost and retried) still
    // compares with 3.
    expect(wait.target).toBe(3);
    expect(check(1)).toEqual([true, { waits: 2, filled: 1, ranOut: 0 }]);
  });

  it('starts with whoever waits when the timer runs out, then pauses for CLOSED_LOOP_WAIT_PAUSE batches', () => {
    expect(CLOSED_LOOP_WAIT_PAUSE).toBe(8);
    const { wait, told, runOut, check } = setUp(5);
    wait.settled(4);
    expect(wait.waits(2)).toBe(true);
    runOut();
    expect(told).toEqual({ waits: 1, filled: 0, ranOut: 1 });
    expect(wait.isWaiting).toBe(false);
    // Checks before the batch starts (the ran-out wait's own) do not wait and use up no pause.
    expect(wait.waits(2)).toBe(false);
    expect(wait.waits(0)).toBe(false);
    wait.started(); // the batch the ran-out wait started
    for (let i = 0; i < CLOSED_LOOP_WAIT_PAUSE; i++) {
      wait.settled(4);
      expect(wait.waits(1)).toBe(false);
      wait.started();
    }
    expect(told).toEqual({ waits: 1, filled: 0, ranOut: 1 });
    // The pause is over: the next batch waits again.
    wait.settled(4);
    expect(check(1)).toEqual([true, { waits: 2, filled: 0, ranOut: 1 }]);
    expect(check(4)).toEqual([false, { waits: 2, filled: 1, ranOut: 1 }]);
  });

  it('does not wait again when the user checks from ranOut (the check that starts the batch)', () => {
    const answers: boolean[] = [];
    const { wait, timers, told, runOut } = setUp(5, (w) => answers.push(w.waits(1)));
    wait.settled(4);
    expect(wait.waits(1)).toBe(true);
    runOut();
    expect(answers).toEqual([false]);
    expect(timers.length).toBe(1);
    expect(told).toEqual({ waits: 1, filled: 0, ranOut: 1 });
  });

  it('ends a wait under way when the batch at hand may not wait, filled only at the target', () => {
    const { wait, timers, told, check } = setUp(5);
    wait.settled(4);
    // A batch that may not wait never begins a wait.
    expect(wait.waits(1, false)).toBe(false);
    expect(timers).toEqual([]);
    expect(wait.waits(1)).toBe(true);
    expect(wait.waits(1, false)).toBe(false);
    expect(wait.isWaiting).toBe(false);
    expect(timers[0]!.cancelled).toBe(true);
    expect(told).toEqual({ waits: 1, filled: 0, ranOut: 0 });
    expect(wait.waits(1)).toBe(true);
    expect(check(4, false)).toEqual([false, { waits: 2, filled: 1, ranOut: 0 }]);
  });

  it('cancel ends a wait without counting it or running it out, and a later check waits anew', () => {
    const { wait, timers, told, live } = setUp(5);
    wait.cancel(); // nothing under way: nothing happens
    wait.settled(4);
    expect(wait.waits(1)).toBe(true);
    wait.cancel();
    expect(wait.isWaiting).toBe(false);
    expect(live()).toEqual([]);
    expect(told).toEqual({ waits: 1, filled: 0, ranOut: 0 });
    // No pause after a cancelled wait.
    expect(wait.waits(1)).toBe(true);
    expect(timers.length).toBe(2);
    expect(told).toEqual({ waits: 2, filled: 0, ranOut: 0 });
  });

  it('works without the counting callbacks', () => {
    let ranOut = 0;
    let fire: (() => void) | undefined;
    const wait = new ClosedLoopWait({
      waitMs: 1,
      schedule: (_delayMs, fn) => {
        fire = fn;
        return () => (fire = undefined);
      },
      ranOut: () => ranOut++,
    });
    wait.settled(2);
    expect(wait.waits(1)).toBe(true);
    expect(wait.waits(2)).toBe(false);
    expect(fire).toBeUndefined();
    expect(wait.waits(0)).toBe(true);
    fire!();
    expect(ranOut).toBe(1);
  });
});
