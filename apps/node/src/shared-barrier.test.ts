// Consistent reads share barriers: N concurrent reads issue at most two, and a read that
// arrives after a barrier started is never answered by that barrier (linearizability).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CLOSED_LOOP_WAIT_PAUSE } from '@tspaxos/core';
import { SharedBarriers } from './shared-barrier';

/** An `issue` whose barriers the test settles one by one, in the order they were issued. */
function controlledIssue() {
  const pending: { group: number; resolve(id: number): void; reject(e: Error): void }[] = [];
  const issue = (group: number) =>
    new Promise<number>((resolve, reject) => pending.push({ group, resolve, reject }));
  return { issue, pending };
}

/** Lets the promise jobs queued now run (no timer involved). */
const drain = () => new Promise<void>((r) => setImmediate(r));

describe('SharedBarriers', () => {
  it('serves N concurrent reads with at most two barriers', async () => {
    const { issue, pending } = controlledIssue();
    const barriers = new SharedBarriers(issue);
    const reads = Array.from({ length: 50 }, () => barriers.through(0));
    await drain();
    expect(pending.length).toBe(1);
    expect(barriers.waiting(0)).toBe(49);
    pending[0]!.resolve(7);
    await drain();
    expect(pending.length).toBe(2); // the next barrier, for the 49 that waited
    pending[1]!.resolve(9);
    const ids = await Promise.all(reads);
    expect(ids[0]).toBe(7);
    expect(ids.slice(1)).toEqual(Array.from({ length: 49 }, () => 9));
    expect(barriers.counters).toEqual({ reads: 50, issued: 2, waits: 0, waitsFilled: 0 });
  });

  it('never answers a read with the barrier that was in flight when it arrived', async () => {
    const { issue, pending } = controlledIssue();
    const barriers = new SharedBarriers(issue);
    const first = barriers.through(0);
    await drain();
    expect(pending.length).toBe(1);
    // Arrives after barrier 1 started: it must wait for a barrier that starts after it.
    let late: number | undefined;
    const lateRead = barriers.through(0).then((id) => (late = id));
    pending[0]!.resolve(1);
    expect(await first).toBe(1);
    await drain();
    expect(late).toBeUndefined(); // barrier 1 returned; the late read still waits
    expect(pending.length).toBe(2);
    pending[1]!.resolve(2);
    await lateRead;
    expect(late).toBe(2);
    // Nothing waits any more: the next read starts its own barrier at once.
    const again = barriers.through(0);
    await drain();
    expect(pending.length).toBe(3);
    pending[2]!.resolve(3);
    expect(await again).toBe(3);
    expect(barriers.counters).toEqual({ reads: 3, issued: 3, waits: 0, waitsFilled: 0 });
  });

  it('keeps groups apart, and hands a failed barrier to exactly the reads that shared it', async () => {
    const { issue, pending } = controlledIssue();
    const barriers = new SharedBarriers(issue);
    const g0 = barriers.through(0);
    const g1 = barriers.through(1); // another group: its own barrier, not a wait
    await drain();
    expect(pending.map((p) => p.group)).toEqual([0, 1]);
    const waiters = [barriers.through(0), barriers.through(0)];
    pending[0]!.reject(new Error('E_TIMEOUT'));
    await expect(g0).rejects.toThrow('E_TIMEOUT');
    await drain();
    expect(pending.length).toBe(3); // the waiters' barrier started after the failed one
    pending[2]!.resolve(5);
    pending[1]!.resolve(4);
    expect(await Promise.all(waiters)).toEqual([5, 5]);
    expect(await g1).toBe(4);
    expect(barriers.counters).toEqual({ reads: 4, issued: 3, waits: 0, waitsFilled: 0 });
  });

  it('rejects the reads of a barrier whose issue throws', async () => {
    const barriers = new SharedBarriers(() => {
      throw new Error('E_STOPPING');
    });
    await expect(barriers.through(0)).rejects.toThrow('E_STOPPING');
    expect(barriers.counters).toEqual({ reads: 1, issued: 1, waits: 0, waitsFilled: 0 });
  });

  describe('with a wait (waitMs)', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('holds the next barrier until the reads the last one served come back', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      const { issue, pending } = controlledIssue();
      const barriers = new SharedBarriers(issue, 5);
      const first = [0, 1, 2, 3].map(() => barriers.through(0));
      await drain();
      expect(pending.length).toBe(1); // the first read's barrier; 3 wait for the next
      pending[0]!.resolve(1);
      expect(await first[0]).toBe(1);
      await drain();
      // Without the wait the next barrier would start now for the 3; it waits for a 4th read.
      expect(pending.length).toBe(1);
      const back = barriers.through(0); // the read barrier 1 served, back a round trip later
      await drain();
      expect(pending.length).toBe(2);
      pending[1]!.resolve(2);
      expect(await Promise.all([...first.slice(1), back])).toEqual([2, 2, 2, 2]);
      // Barrier 2 returned and its 4 reads are answered: the next barrier waits for them again.
      expect(barriers.counters).toEqual({ reads: 5, issued: 2, waits: 2, waitsFilled: 1 });
    });

    it('starts the barrier for whoever waits when the wait runs out, then pauses waiting', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      const { issue, pending } = controlledIssue();
      const barriers = new SharedBarriers(issue, 5);
      const reads = [0, 1, 2].map(() => barriers.through(0));
      await drain();
      pending[0]!.resolve(1);
      await drain();
      expect(pending.length).toBe(1); // waits for a 3rd read that does not come
      await vi.advanceTimersByTimeAsync(5);
      expect(pending.length).toBe(2); // the 2 that waited, after the wait
      pending[1]!.resolve(2);
      expect(await Promise.all(reads)).toEqual([1, 2, 2]);
      // The barriers after it do not wait, whoever comes back (the pause): one read at a time,
      // each barrier serving one read and none waiting when it returns.
      for (let i = 0; i < CLOSED_LOOP_WAIT_PAUSE - 1; i++) {
        const read = barriers.through(0);
        await drain();
        expect(pending.length).toBe(3 + i);
        pending[2 + i]!.resolve(10 + i);
        expect(await read).toBe(10 + i);
      }
      expect(barriers.counters.waits).toBe(1);
      expect(barriers.counters.waitsFilled).toBe(0);
    });
  });
});
