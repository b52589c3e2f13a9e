import { describe, expect, it } from 'vitest';
import { PaxosError } from './errors';
import {
  checkStateMachines,
  decodeSystemVariables,
  encodeSystemVariables,
  MAX_SYSTEM_META_BYTES,
  SystemStateMachine,
} from './state-machine';

const text = (s: string) => new TextEncoder().encode(s);

describe('system variables', () => {
  it('round-trip, sorted and deduplicated', () => {
    expect(
      decodeSystemVariables(encodeSystemVariables({ version: 3, members: [3, 1, 2, 1] })),
    ).toEqual({ version: 3, members: [1, 2, 3] });
  });

  it('reject malformed bytes from peers or disk', () => {
    for (const bad of [
      '',
      'nope',
      '{}',
      '{"version":-1,"members":[1]}',
      '{"version":1,"members":[]}',
      '{"version":1,"members":[0]}',
      '{"version":1.5,"members":[1]}',
      'null',
      '[1]',
    ]) {
      expect(decodeSystemVariables(text(bad)), bad).toBeUndefined();
    }
  });

  it('apply a change only against the current version', () => {
    const persisted: number[] = [];
    const sm = new SystemStateMachine({ version: 0, members: [1, 2, 3] }, (v) =>
      persisted.push(v.version),
    );
    expect(sm.execute(encodeSystemVariables({ version: 0, members: [1, 2] }))).toEqual({
      applied: true,
      version: 1,
    });
    expect(sm.execute(encodeSystemVariables({ version: 0, members: [1, 2, 3, 4] }))).toEqual({
      applied: false,
      version: 1,
    });
    expect(sm.current.members).toEqual([1, 2]);
    expect(sm.adopt({ version: 1, members: [9] })).toBe(false);
    expect(sm.adopt({ version: 5, members: [9] })).toBe(true);
    expect(persisted).toEqual([1, 5]);
  });

  it('carry meta with a change, keep it when a change has none, and adopt it with a newer version', () => {
    const sm = new SystemStateMachine({ version: 0, members: [1, 2, 3] }, () => {});
    sm.execute(encodeSystemVariables({ version: 0, members: [1, 2, 3, 4], meta: 'a' }));
    expect(sm.current).toEqual({ version: 1, members: [1, 2, 3, 4], meta: 'a' });
    sm.execute(encodeSystemVariables({ version: 1, members: [1, 2, 3] }));
    expect(sm.current).toEqual({ version: 2, members: [1, 2, 3], meta: 'a' });
    expect(sm.adopt({ version: 7, members: [1], meta: 'b' })).toBe(true);
    expect(sm.current).toEqual({ version: 7, members: [1], meta: 'b' });
    const bytes = encodeSystemVariables({ version: 2, members: [1], meta: 'x' });
    expect(decodeSystemVariables(bytes)).toEqual({ version: 2, members: [1], meta: 'x' });
    expect(decodeSystemVariables(text('{"version":1,"members":[1],"meta":5}'))).toBeUndefined();
    expect(
      decodeSystemVariables(
        text(
          JSON.stringify({ version: 1, members: [1], meta: 'x'.repeat(MAX_SYSTEM_META_BYTES + 1) }),
        ),
      ),
    ).toBeUndefined();
  });

  it('refuse reserved or duplicate state machine ids', () => {
    const sm = (smId: number) => ({ smId, execute: () => undefined });
    expect(() => checkStateMachines([sm(1)])).toThrow(PaxosError);
    expect(() => checkStateMachines([sm(10), sm(10)])).toThrow(/two state machines/);
    expect(() => checkStateMachines([sm(-1)])).toThrow(/u32/);
    expect(() => checkStateMachines([sm(0)])).toThrow(/reserved/);
    expect(() => checkStateMachines([sm(4), sm(10)])).not.toThrow();
  });
});
