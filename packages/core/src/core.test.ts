import { describe, expect, it } from 'vitest';
import {
  assert,
  ballotEquals,
  compareBallots,
  InvariantError,
  isNullBallot,
  NULL_BALLOT,
  SeededRandomSource,
  TspaxosError,
} from './index';

describe('assert', () => {
  it('throws a coded InvariantError (E_INVARIANT) when the condition fails', () => {
    let thrown: unknown;
    try {
      assert(1 + 1 === 3, 'arithmetic');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvariantError);
    expect(thrown).toBeInstanceOf(TspaxosError);
    expect((thrown as InvariantError).code).toBe('E_INVARIANT');
    expect((thrown as InvariantError).name).toBe('InvariantError');
    expect((thrown as InvariantError).message).toBe('tspaxos invariant violated: arithmetic');
  });

  it('returns when the condition holds', () => {
    expect(() => assert(true, 'holds')).not.toThrow();
  });
});

describe('TspaxosError', () => {
  it('keeps the code, the cause and the subclass name', () => {
    class SomeError extends TspaxosError {}
    const cause = new Error('disk');
    const e = new SomeError('E_IO', 'read failed', { cause });
    expect([e.code, e.name, e.cause]).toEqual(['E_IO', 'SomeError', cause]);
  });
});

describe('Ballot', () => {
  it('orders by proposalId, then nodeId; (0, 0) is null', () => {
    const a = { proposalId: 1, nodeId: 2 };
    const b = { proposalId: 1, nodeId: 3 };
    const c = { proposalId: 2, nodeId: 1 };
    expect(compareBallots(a, b)).toBeLessThan(0);
    expect(compareBallots(c, b)).toBeGreaterThan(0);
    expect(compareBallots(a, { ...a })).toBe(0);
    expect(ballotEquals(a, { ...a })).toBe(true);
    expect(ballotEquals(a, b)).toBe(false);
    expect(isNullBallot(NULL_BALLOT)).toBe(true);
    expect(isNullBallot(a)).toBe(false);
  });
});

describe('SeededRandomSource', () => {
  it('gives the same sequence for a seed as before it moved here from transport (SeededRng)', () => {
    // Pinned: the simulator's seeds replay only while this sequence stays the same.
    const r = new SeededRandomSource(42);
    expect([r.next(), r.next(), r.next(), r.next()]).toEqual([
      0.6606157226487994, 0.12688010395504534, 0.11170196393504739, 0.8149394164793193,
    ]);
    expect([r.int(1000), r.int(1000), r.int(1000), r.int(1000)]).toEqual([79, 26, 15, 258]);
    expect(new SeededRandomSource(2 ** 40 + 7).int(1_000_000)).toBe(400935);
  });
});
