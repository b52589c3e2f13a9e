import { InvariantError } from '@tspaxos/core';
import { describe, expect, it } from 'vitest';
import { SenderBudget } from './budget';

describe('SenderBudget', () => {
  it('takes what fits, refuses (and counts) what does not, and wakes waiters on release', () => {
    const b = new SenderBudget(1000);
    expect(b.tryTake(600)).toBe(true);
    expect(b.tryTake(500)).toBe(false);
    expect(b.counters.exhausted).toBe(1);
    let woken = 0;
    const wake = () => woken++;
    b.waitForRelease(wake);
    b.waitForRelease(wake); // once per release, however often it asked
    b.release(100);
    expect(woken).toBe(1);
    b.release(100);
    expect(woken).toBe(1); // a waiter is called once, then must ask again
    expect(b.availableBytes).toBe(600);
  });

  it('lets one value larger than the budget go when nothing is in flight', () => {
    const b = new SenderBudget(1000);
    expect(b.tryTake(5000)).toBe(true);
    expect(b.tryTake(1)).toBe(false);
    b.release(5000);
    expect(b.usedBytes).toBe(0);
  });

  it('refuses a bad capacity with a code, and a release of more than was taken is a bug', () => {
    expect(() => new SenderBudget(0)).toThrow(expect.objectContaining({ code: 'E_BAD_ARGUMENT' }));
    expect(() => new SenderBudget(1.5)).toThrow(
      expect.objectContaining({ code: 'E_BAD_ARGUMENT' }),
    );
    const b = new SenderBudget(10);
    b.tryTake(5);
    expect(() => b.release(6)).toThrow(/invariant/);
  });

  it('a release of more than is in use is a broken invariant: core InvariantError, E_INVARIANT (the group stops on it)', () => {
    const b = new SenderBudget(1000);
    b.tryTake(100);
    let thrown: unknown;
    try {
      b.release(200);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvariantError);
    expect((thrown as InvariantError).code).toBe('E_INVARIANT');
  });
});
