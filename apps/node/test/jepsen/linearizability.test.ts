// The register checker on small histories whose verdict is known by hand, planted anomalies it
// must reject, and random histories made from a real sequential execution it must accept.
import { describe, expect, it } from 'vitest';
import { checkRegister, type RegisterOp } from './linearizability';
import { SeededRandomSource } from '@tspaxos/core';
import { checkKeys, instanceOrderAnomalies, plainReadAnomalies, type Op } from './history';

let nextId = 0;
const w = (value: string, invokeMs: number, returnMs: number): RegisterOp => ({
  id: nextId++,
  kind: 'write',
  value,
  invokeMs,
  returnMs,
});
const r = (value: string | null, invokeMs: number, returnMs: number): RegisterOp => ({
  id: nextId++,
  kind: 'read',
  value,
  invokeMs,
  returnMs,
});

describe('checkRegister', () => {
  it('accepts a sequential history and rejects a planted stale read in it', () => {
    const ok = [w('1', 0, 10), r('1', 20, 30), w('2', 40, 50), r('2', 60, 70)];
    expect(checkRegister(ok).result).toBe('linearizable');
    const stale = r('1', 80, 90);
    const verdict = checkRegister([...ok, stale]);
    expect(verdict.result).toBe('not-linearizable');
    if (verdict.result !== 'not-linearizable') return;
    expect(verdict.stuckAt).toBe(stale);
    expect(verdict.valueThen).toBe('2');
  });

  it('accepts a concurrent history that needs a write to take effect late', () => {
    // w1 is invoked first but takes effect after w2: reads see 2, then 1.
    const ops = [w('1', 0, 100), w('2', 10, 50), r('2', 20, 30), r('1', 60, 70), r('1', 110, 120)];
    expect(checkRegister(ops).result).toBe('linearizable');
    // Seeing 1, then 2, then 1 again needs a second write of 1: rejected.
    const flipFlop = [
      w('1', 0, 100),
      w('2', 10, 100),
      r('1', 20, 30),
      r('2', 35, 45),
      r('1', 60, 70),
    ];
    expect(checkRegister(flipFlop).result).toBe('not-linearizable');
  });

  it('a missing key reads nil until a write takes effect, never after an acknowledged one', () => {
    expect(checkRegister([r(null, 0, 5), w('1', 10, 20), r('1', 30, 40)]).result).toBe(
      'linearizable',
    );
    expect(checkRegister([r(null, 0, 25), w('1', 10, 20)]).result).toBe('linearizable');
    expect(checkRegister([w('1', 10, 20), r(null, 30, 40)]).result).toBe('not-linearizable');
  });

  it('an unknown-outcome write may take effect any time after its invocation, or never', () => {
    const base = () => [w('1', 0, 10), w('2', 20, Infinity)];
    expect(checkRegister([...base(), r('2', 100, 110)]).result).toBe('linearizable');
    expect(checkRegister([...base(), r('1', 100, 110)]).result).toBe('linearizable');
    expect(checkRegister([...base(), r('1', 100, 110), r('2', 5000, 5010)]).result).toBe(
      'linearizable',
    );
    // Once seen it has taken effect: an older value afterwards is stale.
    expect(checkRegister([...base(), r('2', 100, 110), r('1', 120, 130)]).result).toBe(
      'not-linearizable',
    );
    // Not before it was invoked.
    expect(checkRegister([...base(), r('2', 12, 15)]).result).toBe('not-linearizable');
  });

  it('memoization keeps many concurrent writes cheap, and the step budget is honoured', () => {
    const n = 12;
    const writes = Array.from({ length: n }, (_, i) => w(`v${i}`, i, 1000 + i));
    const good = checkRegister([...writes, r('v7', 2000, 2010)]);
    expect(good.result).toBe('linearizable');
    // Without the memo the search tries all 12! (479 M) orders; with it, each (subset, value)
    // state once, and each state scans at most n entries.
    const bad = checkRegister([...writes, r('never-written', 2000, 2010)]);
    expect(bad.result).toBe('not-linearizable');
    expect(bad.steps).toBeLessThan(n * n * 2 ** n);
    expect(
      checkRegister([...writes, r('never-written', 2000, 2010)], { maxSteps: 100 }).result,
    ).toBe('undecided');
  });

  it('accepts 300 random histories made from a sequential execution', () => {
    const rng = new SeededRandomSource(17);
    let ops = 0;
    for (let h = 0; h < 300; h++) {
      // Linearization points in order; each op's interval contains its point.
      const history: RegisterOp[] = [];
      let value: string | null = null;
      let t = 0;
      for (let i = 0; i < 40; i++) {
        t += rng.int(20);
        const invokeMs = t - rng.int(60);
        const returnMs = t + rng.int(60);
        if (rng.next() < 0.4) {
          value = `h${h}-${i}`;
          const unknown = rng.next() < 0.1;
          history.push(w(value, invokeMs, unknown ? Infinity : returnMs));
        } else history.push(r(value, invokeMs, returnMs));
      }
      ops += history.length;
      const verdict = checkRegister(history);
      expect(verdict.result, `history ${h}`).toBe('linearizable');
    }
    expect(ops).toBe(300 * 40);
  });

  it('refuses an op that returns before it is invoked', () => {
    expect(() => checkRegister([w('1', 10, 5)])).toThrow(/returns/);
  });
});

describe('history checks', () => {
  const op = (o: Partial<Op> & Pick<Op, 'id' | 'kind' | 'value' | 'invokeMs'>): Op => ({
    client: 0,
    node: 1,
    key: 'k',
    completeMs: o.invokeMs + 10,
    outcome: 'ok',
    ...o,
  });

  it('a read of a write answered 503 (a definite failure) is never linearizable', () => {
    const history = [
      op({ id: 1, kind: 'write', value: 'a', invokeMs: 0 }),
      op({ id: 2, kind: 'write', value: 'b', invokeMs: 20, outcome: 'fail', detail: '503' }),
      op({ id: 3, kind: 'read', mode: 'consistent', value: 'b', invokeMs: 40 }),
      op({ id: 4, kind: 'read', mode: 'plain', value: 'b', invokeMs: 40 }),
    ];
    const [verdict] = checkKeys(history, ['k'], ['consistent']);
    expect(verdict!.verdict.result).toBe('not-linearizable');
    expect(verdict!.anomalies).toEqual([expect.stringMatching(/^read of a value never applied/)]);
    expect(plainReadAnomalies(history)).toEqual([expect.stringMatching(/#4 .*plain/)]);
  });

  it('checks only the read modes asked for: a stale lease read fails the lease check', () => {
    const history = [
      op({ id: 1, kind: 'write', value: 'a', invokeMs: 0 }),
      op({ id: 2, kind: 'write', value: 'b', invokeMs: 20 }),
      op({ id: 3, kind: 'read', mode: 'lease', value: 'a', invokeMs: 40 }),
      op({ id: 4, kind: 'read', mode: 'consistent', value: 'b', invokeMs: 40 }),
      op({ id: 5, kind: 'read', mode: 'plain', value: 'a', invokeMs: 40 }),
      op({ id: 6, kind: 'read', mode: 'lease', value: 'a', invokeMs: 60, outcome: 'fail' }),
    ];
    expect(checkKeys(history, ['k'], ['consistent'])[0]!.verdict.result).toBe('linearizable');
    const lease = checkKeys(history, ['k'], ['consistent', 'lease'])[0]!;
    expect(lease.verdict.result).toBe('not-linearizable');
    expect(lease.anomalies).toEqual([expect.stringMatching(/^stale read: #3 /)]);
    expect(plainReadAnomalies(history)).toEqual([]);
  });

  it('an op answered at an instance chosen before it began is flagged, whatever its key', () => {
    const history = [
      op({ id: 1, kind: 'write', value: 'a', invokeMs: 0, instanceId: 4 }),
      op({ id: 2, kind: 'write', value: 'b', key: 'other', invokeMs: 20, instanceId: 5 }),
      // Concurrent with #2: batched with it at 5.
      op({ id: 3, kind: 'read', mode: 'consistent', value: 'a', invokeMs: 25, instanceId: 5 }),
      // Began after #2 was acknowledged at 5, answered at 4: a barrier that claimed instance 4.
      op({ id: 4, kind: 'read', mode: 'consistent', value: 'a', invokeMs: 40, instanceId: 4 }),
      op({ id: 5, kind: 'read', mode: 'consistent', value: 'a', invokeMs: 60, instanceId: 6 }),
      // Lease and plain reads do not go through the log.
      op({ id: 6, kind: 'read', mode: 'lease', value: 'a', invokeMs: 80, instanceId: 2 }),
      // A quorum read reflects the applied instance: the one #5 was answered at is no anomaly,
      op({ id: 7, kind: 'read', mode: 'consistent', value: 'a', invokeMs: 100, instanceId: 6 }),
      // but a write's own instance is new: one at #5's was claimed from another proposal.
      op({ id: 8, kind: 'write', value: 'c', invokeMs: 120, instanceId: 6 }),
    ];
    expect(instanceOrderAnomalies(history)).toEqual([
      expect.stringMatching(/^answered .*: #4 .*#2 /),
      expect.stringMatching(/^answered .*: #8 .*#(5|7) /),
    ]);
  });
});
