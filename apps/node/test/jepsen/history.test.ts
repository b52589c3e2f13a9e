// The lease-read check of today's contract (a lease read reflects its own node's acknowledged
// writes) and the value check it shares with plain reads, each on a planted history.
import { describe, expect, it } from 'vitest';
import { leaseOwnWriteAnomalies, plainReadAnomalies, type Op } from './history';

const write = (
  id: number,
  node: number,
  value: string,
  at: [number, number],
  instanceId: number,
): Op => ({
  id,
  client: id,
  node,
  key: 'k',
  kind: 'write',
  value,
  invokeMs: at[0],
  completeMs: at[1],
  outcome: 'ok',
  instanceId,
});
const lease = (
  id: number,
  node: number,
  value: string | null,
  at: [number, number],
  instanceId: number,
): Op => ({
  id,
  client: id,
  node,
  key: 'k',
  kind: 'read',
  mode: 'lease',
  value,
  invokeMs: at[0],
  completeMs: at[1],
  outcome: 'ok',
  instanceId,
});

describe('lease reads held to their own node’s writes', () => {
  it('accepts a read that reflects its node’s write, and one that misses another node’s', () => {
    const history = [
      write(1, 1, 'a', [0, 10], 5),
      write(2, 2, 'b', [11, 20], 6), // through node 2: the master (node 1) may not have it yet
      lease(3, 1, 'a', [21, 22], 5),
    ];
    expect(leaseOwnWriteAnomalies(history)).toEqual([]);
    expect(plainReadAnomalies(history)).toEqual([]);
  });

  it('catches a planted lease read below a write its own node acknowledged before it began', () => {
    const history = [
      write(1, 1, 'a', [0, 10], 5),
      write(2, 1, 'b', [11, 20], 6),
      lease(3, 1, 'a', [21, 22], 5),
    ];
    const found = leaseOwnWriteAnomalies(history);
    expect(found).toHaveLength(1);
    expect(found[0]).toContain('missed its own node');
  });

  it('catches a lease read of a value no write produced', () => {
    const history = [write(1, 1, 'a', [0, 10], 5), lease(2, 1, 'zz', [11, 12], 5)];
    expect(plainReadAnomalies(history)).toHaveLength(1);
  });
});
