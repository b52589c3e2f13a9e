import { InvariantError, TspaxosError, assert } from '@tspaxos/core';
import { describe, expect, it } from 'vitest';
import { CheckpointError, isCodedError } from './errors';

describe('checkpoint errors', () => {
  it('a coded error of any package is an expected condition', () => {
    expect(isCodedError(new CheckpointError('E_IO', 'disk'))).toBe(true);
    expect(isCodedError(new TspaxosError('E_BAD_ARGUMENT', 'other package'))).toBe(true);
    expect(isCodedError(new Error('plain'))).toBe(false);
  });

  it('a broken invariant is coded (E_INVARIANT, the group stops on it) but never an expected condition', () => {
    let thrown: unknown;
    try {
      assert(false, 'planted');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvariantError);
    expect((thrown as InvariantError).code).toBe('E_INVARIANT');
    expect(isCodedError(thrown)).toBe(false);
  });
});
