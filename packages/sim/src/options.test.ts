import { describe, expect, it } from 'vitest';
import { runSeed, type SimOptions } from './index';

describe('SimOptions', () => {
  it.each<[Record<string, unknown>, RegExp]>([
    [{ seed: Number.NaN }, /sim option seed must be an integer in 0 … 4294967295, got NaN/],
    [{ seed: 1, nodes: 0 }, /sim option nodes must be an integer in 1 … 9, got 0/],
    [{ seed: 1, nodes: 2.5 }, /nodes must be an integer in 1 … 9, got 2.5/],
    [{ seed: 1, faultPhaseMs: -1 }, /faultPhaseMs must be an integer in 0 …/],
    [{ seed: 1, livenessBoundMs: 0 }, /livenessBoundMs must be an integer in 1 …/],
    [
      { seed: 1, nodes: 3, partitionNode: 4, partitionMs: [0, 1] },
      /partitionNode \(4\) must be one of the 3 nodes/,
    ],
    [{ seed: 1, partitionNode: 1 }, /partitionNode and partitionMs go together/],
    [{ seed: 1, partitionNode: 1, partitionMs: [5, 1] }, /partitionMs must be \[from, to\]/],
    [{ seed: 1, masterLeaseMs: 999 }, /masterLeaseMs must be an integer in 1000 …/],
  ])('refuses %j with E_BAD_ARGUMENT', async (options, message) => {
    const run = runSeed(options as unknown as SimOptions);
    await expect(run).rejects.toMatchObject({ code: 'E_BAD_ARGUMENT' });
    await expect(run).rejects.toThrow(message);
  });
});
