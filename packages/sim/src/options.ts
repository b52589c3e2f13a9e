// SimOptions are checked before a run (TspaxosError E_BAD_ARGUMENT naming the field and its
// range), so a test that pins a topology or a time bound never runs a meaningless simulation.
import { TspaxosError, rangeProblem, type OptionRange } from '@tspaxos/crc-wasm';
import { MASTER_LEASE_MIN_MS } from '@tspaxos/paxos';
import type { SimOptions } from './simulate';

/** Most voting nodes a simulation runs (ours: the sim's network ids are single bytes). */
export const SIM_MAX_NODES = 9;

const NUMBER_RANGES: Partial<Record<keyof SimOptions, OptionRange>> = {
  seed: { min: 0, max: 0xffff_ffff },
  nodes: { min: 1, max: SIM_MAX_NODES },
  faultPhaseMs: { min: 0 },
  livenessBoundMs: { min: 1 },
  partitionNode: { min: 1, max: SIM_MAX_NODES },
  masterLeaseMs: { min: MASTER_LEASE_MIN_MS },
};

function bad(message: string): TspaxosError {
  return new TspaxosError('E_BAD_ARGUMENT', `sim option ${message}`);
}

/** Throws E_BAD_ARGUMENT for the first field of `options` out of its range. */
export function checkSimOptions(options: SimOptions): void {
  if (typeof options !== 'object' || options === null) throw bad('options must be an object');
  if (options.seed === undefined) throw bad('seed is required');
  for (const [key, range] of Object.entries(NUMBER_RANGES)) {
    const value = (options as unknown as Record<string, unknown>)[key];
    if (value === undefined) continue;
    const problem = rangeProblem(value, range!);
    if (problem !== undefined) throw bad(`${key} ${problem}`);
  }
  if (options.partitionNode !== undefined && options.nodes !== undefined) {
    if (options.partitionNode > options.nodes)
      throw bad(
        `partitionNode (${options.partitionNode}) must be one of the ${options.nodes} nodes`,
      );
  }
  if ((options.partitionNode === undefined) !== (options.partitionMs === undefined))
    throw bad('partitionNode and partitionMs go together');
  if (options.partitionMs !== undefined) {
    const [from, to] = Array.isArray(options.partitionMs) ? options.partitionMs : [];
    const ok =
      options.partitionMs.length === 2 &&
      rangeProblem(from, { min: 0 }) === undefined &&
      rangeProblem(to, { min: 0 }) === undefined &&
      from! <= to!;
    if (!ok)
      throw bad(
        `partitionMs must be [from, to] with 0 ≤ from ≤ to ms, got ${JSON.stringify(options.partitionMs)}`,
      );
  }
}
