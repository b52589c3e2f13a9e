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
    [{ seed: 1, groups: 0 }, /sim option groups must be an integer in 1 … 3, got 0/],
    [{ seed: 1, groups: 4 }, /sim option groups must be an integer in 1 … 3, got 4/],
    [{ seed: 1, followers: 3 }, /sim option followers must be an integer in 0 … 2, got 3/],
    [{ seed: 1, followers: -1 }, /sim option followers must be an integer in 0 … 2, got -1/],
    [{ seed: 1, longDown: 'yes' }, /sim option longDown must be a boolean, got "yes"/],
    [{ seed: 1, membershipChange: 1 }, /sim option membershipChange must be a boolean, got 1/],
    [{ seed: 1, faults: null }, /sim option faults must be a boolean, got null/],
    [
      { seed: 1, planted: 'nope' },
      /sim option planted must be one of forgetPromises, .*got "nope"/,
    ],
    [{ seed: 1, nodes: 2, longDown: true }, /longDown needs at least 3 nodes .*got nodes 2/],
    [
      { seed: 1, nodes: 2, membershipChange: true },
      /membershipChange needs at least 3 nodes .*got nodes 2/,
    ],
    [
      { seed: 1, faults: false, longDown: true },
      /longDown is a fault-phase event: it needs faults/,
    ],
    [{ seed: 1, longDown: true, faultPhaseMs: 15_999 }, /longDown needs faultPhaseMs ≥ 16000/],
    [{ seed: 1, masterLeaseMs: 999 }, /masterLeaseMs must be an integer in 1000 …/],
  ])('refuses %j with E_BAD_ARGUMENT', async (options, message) => {
    const run = runSeed(options as unknown as SimOptions);
    await expect(run).rejects.toMatchObject({ code: 'E_BAD_ARGUMENT' });
    await expect(run).rejects.toThrow(message);
  });

  it('draws no long-down node or membership change where the topology could not run them', async () => {
    // Seed 1 draws both with the defaults; pinning 2 nodes or a short fault phase turns them off.
    const drawn = await runSeed({ seed: 1, faultPhaseMs: 2000, livenessBoundMs: 30_000 });
    expect(drawn.topology.longDown).toBe(false);
    const two = await runSeed({ seed: 1, nodes: 2, faultPhaseMs: 2000, livenessBoundMs: 30_000 });
    expect(two.topology).toMatchObject({ nodes: 2, longDown: false, membershipChange: false });
  });
});
