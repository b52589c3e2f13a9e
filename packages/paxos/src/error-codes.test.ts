// Errors callers branch on (issue 20): every code, its outcome and whether a retry may succeed,
// listed here so that a change to either is a visible change of this table; and no code is
// declared that no source file throws (E_GROUP_STOPPED and E_MEMBERSHIP_CONFLICT were).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { invariantStop } from './errors';
import { InvariantError, PAXOS_ERROR_CODES, PaxosError, type PaxosErrorCode } from './index';

const EXPECTED: Record<PaxosErrorCode, [outcome: 'rejected' | 'unknown', retryable: boolean]> = {
  E_TIMEOUT: ['unknown', true],
  E_STOPPED: ['unknown', false],
  E_BAD_GROUP: ['rejected', false],
  E_BAD_ARGUMENT: ['rejected', false],
  E_VALUE_TOO_LARGE: ['rejected', false],
  E_QUEUE_FULL: ['rejected', true],
  E_FOLLOWER: ['rejected', false],
  E_NOT_MEMBER: ['rejected', false],
  E_UNKNOWN_STATE_MACHINE: ['rejected', false],
  E_EXECUTE_FAILED: ['unknown', false],
  E_CHECKSUM_MISMATCH: ['unknown', false],
  E_STORAGE: ['unknown', false],
  E_MEMBERSHIP_CONFLICT: ['rejected', true],
  E_NEEDS_CHECKPOINT: ['unknown', true],
  E_CHECKPOINT_INSTALLED: ['unknown', true],
  E_CHECKPOINT_INSTALL_FAILED: ['unknown', false],
  E_ABORTED: ['unknown', true],
  E_INVARIANT: ['unknown', false],
  E_NOT_MASTER: ['rejected', true],
  E_MASTER_UNREACHABLE: ['rejected', true],
  E_NO_QUORUM: ['rejected', true],
  E_OUTCOME_UNKNOWN: ['unknown', true],
};

/** The non-test sources of this package. */
function sources(dir = join(import.meta.dirname)): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')
      ? [readFileSync(path, 'utf8')]
      : [];
  });
}

describe('PaxosError codes', () => {
  it.each(Object.entries(EXPECTED))('%s: outcome %s by default', (code, [outcome, retryable]) => {
    const error = new PaxosError(code as PaxosErrorCode, 'x');
    expect({ outcome: error.outcome, retryable: error.retryable }).toEqual({ outcome, retryable });
    expect(PAXOS_ERROR_CODES[code as PaxosErrorCode]).toEqual({ outcome, retryable });
  });

  it('lists every declared code (a new code needs its row here)', () => {
    expect(Object.keys(PAXOS_ERROR_CODES).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it('declares no code that nothing throws', () => {
    const code = sources().join('\n');
    const thrown = new Set(
      [...code.matchAll(/(?:PaxosError\(\s*|super\()\s*'(E_[A-Z_]+)'/g)].map((m) => m[1]!),
    );
    const never = Object.keys(PAXOS_ERROR_CODES).filter((c) => !thrown.has(c));
    expect(never).toEqual([]);
  });

  it('a call site that knows the value was never proposed says rejected; asRejected() keeps the code', () => {
    const e = new PaxosError('E_STOPPED', 'stopping', { outcome: 'rejected' });
    expect(e.outcome).toBe('rejected');
    const stopped = new PaxosError('E_STORAGE', 'disk');
    const rejected = stopped.asRejected();
    expect(rejected).toMatchObject({ code: 'E_STORAGE', outcome: 'rejected', cause: stopped });
    // A broken invariant reaches callers as the group's stop reason: E_INVARIANT, outcome unknown.
    const invariant = new InvariantError('x');
    expect(invariantStop(invariant)).toMatchObject({
      code: 'E_INVARIANT',
      outcome: 'unknown',
      cause: invariant,
    });
  });
});
