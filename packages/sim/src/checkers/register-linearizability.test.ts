import { describe, expect, it } from 'vitest';
import { type RegisterEvent, RegisterLinearizabilityChecker } from './register-linearizability';

/** Runs a history through the register checker; returns its failures. */
function check(history: RegisterEvent[]): string[] {
  const failures: string[] = [];
  const c = new RegisterLinearizabilityChecker((m) => failures.push(m));
  for (const e of history) c.observe(e);
  c.finish();
  return failures;
}

const write = (id: number, value: string, beginMs: number, ackMs?: number): RegisterEvent[] => [
  { kind: 'write-begin', id, key: 'k', value, atMs: beginMs },
  ...(ackMs === undefined ? [] : [{ kind: 'write-ok' as const, id, atMs: ackMs }]),
];
const read = (
  id: number,
  value: string | undefined,
  beginMs: number,
  endMs: number,
): RegisterEvent[] => [
  { kind: 'read-begin', id, key: 'k', node: 1, via: 'barrier', atMs: beginMs },
  { kind: 'read-ok', id, value, instanceId: 9, atMs: endMs },
];

describe('RegisterLinearizabilityChecker', () => {
  it('fails the stale read of the issue: v, then w acknowledged, then v acknowledged again, read returns w', () => {
    const failures = check([
      ...write(1, 'k=v', 0, 10),
      ...write(2, 'k=w', 20, 30),
      ...write(3, 'k=v', 40, 50), // acknowledged (falsely) through the node that was behind
      ...read(4, 'k=w', 60, 70),
    ]);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatch(
      /barrier read of k through n1 .* returned "k=w", which no linearization allows/,
    );
  });

  it('fails a barrier read that misses a write acknowledged before it began', () => {
    expect(
      check([...write(1, 'k=v', 0, 10), ...write(2, 'k=w', 20, 30), ...read(3, 'k=v', 40, 50)]),
    ).toHaveLength(1);
    expect(check([...write(1, 'k=v', 0, 10), ...read(2, undefined, 20, 30)])).toHaveLength(1);
  });

  it('passes what a linearization allows: concurrent writes either way, unsettled writes anywhere, reads overlapping writes', () => {
    const histories: RegisterEvent[][] = [
      [...read(1, undefined, 0, 5), ...write(2, 'k=v', 1, 10)],
      [...write(1, 'k=v', 0, 30), ...write(2, 'k=w', 5, 20), ...read(3, 'k=v', 40, 50)],
      [...write(1, 'k=v', 0, 30), ...write(2, 'k=w', 5, 20), ...read(3, 'k=w', 40, 50)],
      [
        ...write(1, 'k=v', 0, 10),
        ...write(2, 'k=w', 20),
        ...read(3, 'k=w', 40, 50),
        ...read(4, 'k=v', 41, 51),
      ],
      [...write(1, 'k=v', 0, 10), ...read(2, 'k=w', 20, 40), ...write(3, 'k=w', 30, 60)],
    ];
    for (const h of histories) expect(check(h)).toEqual([]);
  });
});
