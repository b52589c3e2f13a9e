// The master-lease settings of an election seed, drawn from the seed's master stream, and the
// clock bound a lease survives (election seeds keep their clocks within it).
import type { PlantedBug, SimOptions } from './options';
import type { RandomSource } from '@tspaxos/core';
import type { MasterSettings } from './result';

/** Election seeds: the master lease is drawn in this range (ms), several leases in the fault phase. */
const MASTER_LEASE_MS: [number, number] = [2000, 3000];
/** The lease margin as a share of the lease: PhxPaxos's 100 ms of 10 s (1 %), or a wider 4 %. */
const MASTER_MARGIN_SHARES = [0.01, 0.04] as const;
/** Share of the clock-rate bound m/(2L - m) that drift may use; jumps get what remains. */
const MASTER_DRIFT_SHARE = 0.5;

/**
 * The clocks a lease survives (the argument in @tspaxos/paxos master.ts). The holder counts L - m
 * from before it proposed; every other node counts L from when it applied the operation, later.
 * With clock rates within 1 ± ρ of real time and, within any 2 leases, at most one jump of at most
 * J per node (backward on the holder, forward on another node: the unsafe directions), the old
 * lease ends first iff (L - m + J)/(1 - ρ) ≤ (L - J)/(1 + ρ), i.e. 2J ≤ m(1 + ρ) - 2ρL. Drift
 * gets MASTER_DRIFT_SHARE of the bound m/(2L - m) on ρ, jumps the rest. Monotonic clocks
 * (performance.now(), PhxPaxos's steady clock) do not jump; real rates are off by < 0.05 %.
 */
export function masterClockBound(
  leaseMs: number,
  marginMs: number,
): { driftMax: number; jumpMaxMs: number } {
  const driftMax = (MASTER_DRIFT_SHARE * marginMs) / (2 * leaseMs - marginMs);
  const jumpMaxMs = Math.floor((marginMs * (1 + driftMax) - 2 * driftMax * leaseMs) / 2);
  return { driftMax, jumpMaxMs };
}

/**
 * Whether this seed runs elections, with which lease, and whether the nodes forward to the master.
 * The four draws are made whatever is pinned, so pinning an option does not shift the stream.
 */
export function drawMaster(
  masterRng: RandomSource,
  options: SimOptions,
  faults: boolean,
  planted: PlantedBug | undefined,
): MasterSettings | undefined {
  const drawn = masterRng.next() < 0.5;
  const [lo, hi] = MASTER_LEASE_MS;
  const leaseDrawn = lo + masterRng.int(hi - lo + 1);
  const share = MASTER_MARGIN_SHARES[masterRng.int(MASTER_MARGIN_SHARES.length)]!;
  const forwardingDrawn = masterRng.next() < 0.5;
  const masterBug =
    planted === 'lateLeaseStart' ||
    planted === 'renewWithoutVersionCheck' ||
    planted === 'clocksOutsideLeaseBound' ||
    planted === 'electionsNeverRun' ||
    planted === 'leaseReadsWithoutForwarding';
  if (!(options.masterElection ?? (masterBug || (faults && drawn)))) return undefined;
  const leaseMs = options.masterLeaseMs ?? leaseDrawn;
  const marginMs = Math.max(1, Math.round(leaseMs * share));
  // The lateOwnApply script needs another member to propose itself (with forwarding it would
  // send its write to the master instead); the planted precondition breach turns it off too.
  const forwarding =
    planted === 'leaseReadsWithoutForwarding' || options.lateOwnApply === true
      ? false
      : (options.forwarding ?? forwardingDrawn);
  return { leaseMs, marginMs, forwarding, ...masterClockBound(leaseMs, marginMs) };
}
