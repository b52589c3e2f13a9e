// One simulated run: voting nodes and followers in one process on a virtual clock, a seeded RNG
// deciding every delivery, fault, fsync latency and proposal, MemoryNetwork and MemoryLogStore
// (with a simulated fsync) underneath, and the invariants of consensus checked after every event.
// A seed replays exactly, trace included.
import {
  createNode,
  type GroupStatus,
  type MasterFaults,
  type PaxosErrorCode,
  NO_SM_ID,
  type ProposeResult,
  type UnsafeFaults,
  valueIdentity,
} from '@tspaxos/paxos';
import { type DurabilityPort, MemoryLogStore } from '@tspaxos/storage';
import {
  type LinkConfig,
  type Message,
  MemoryNetwork,
  PaxosMsgType,
  SeededRng,
} from '@tspaxos/transport';
import { CheckpointSim } from './checkpoints';
import { AcknowledgedIdentityChecker } from './checkers/acknowledged-identity';
import { RegisterLinearizabilityChecker } from './checkers/register-linearizability';
import { StaleLeaseChecker } from './checkers/stale-lease';
import { EventQueue } from './event-queue';
import {
  checkSimOptions,
  type PlantedBug,
  plantedFaults,
  type SimOptions,
  LONG_DOWN_AT_MS,
  LONG_DOWN_FOR_MS,
  LONG_DOWN_LATEST_RETURN_MS,
  SIM_MIN_NODES_FOR_LONG_DOWN,
  SIM_MIN_NODES_FOR_MEMBERSHIP_CHANGE,
} from './options';
import { RECORDER_SM_ID } from './recorder';
import { type Coverage, emptyCoverage, type FaultKind } from './coverage';
import { AgreementChecker } from './checkers/agreement';
import { ChainChecker } from './checkers/chain';
import { DurabilityChecker } from './checkers/durability';
import { ReplyDurabilityChecker } from './checkers/reply-durability';
import { SingleMasterChecker } from './checkers/single-master';
import { SimNode } from './sim-node';

export type Invariant =
  | 'agreement'
  | 'validity'
  | 'chain'
  | 'durability'
  /** An acceptor's promise or accept, sent in a reply, was not on its disk when it crashed. */
  | 'reply-durability'
  | 'liveness'
  /** An unexpected error inside a node: a task, execute() or a write failed (status().errors). */
  | 'error'
  /** An assertion in a node's code failed (E_INVARIANT): a bug; the group stopped. */
  | 'invariant'
  | 'unhandled-rejection'
  /** The simulation itself threw. */
  | 'crash'
  /** Two live nodes believe, at the same virtual instant, that they hold a group's master lease. */
  | 'single-master'
  /** After healing, no member held a group's master lease within 2 lease periods. */
  | 'master-liveness'

  /** A checkpoint (own or installed) differs from what the log says (checkpoints.ts). */
  | 'checkpoint'
  /** A proposal was acknowledged at an instance whose chosen value is another proposal's. */
  | 'acknowledged-identity'
  /** A barrier read returned what no linearization of the writes clients were told about allows. */
  | 'linearizable';

/** What a failed assertion in @tspaxos/paxos throws and stops its group with (InvariantError). */
const INVARIANT_CODE: PaxosErrorCode = 'E_INVARIANT';

export interface SimViolation {
  invariant: Invariant;
  message: string;
  atMs: number;
}

export interface SimTopology {
  nodes: number;
  groups: number;
  followers: number;
  membershipChange: boolean;
  longDown: boolean;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  violation?: SimViolation;
  nodes: number;
  topology: SimTopology;
  stats: {
    events: number;
    virtualMs: number;
    proposals: number;
    acknowledged: number;
    rejected: Record<string, number>;
    instances: number;
    crashes: number;
    delivered: number;
  };
  coverage: Coverage;
  /**
   * With a long-down node: what it learned from its peers after it came back (every incarnation
   * from its return on, the heal included). Undefined when the topology has none.
   */
  longDownCatchUp: LongDownCatchUp | undefined;
  /** The master-election settings of an election seed (undefined: no elections). */
  master?: MasterSettings;
  trace: string[];
}

export interface LongDownCatchUp {
  /** Virtual time it came back; undefined when the run ended before that. */
  backAtMs: number | undefined;
  /**
   * How far it was behind when it came back: the most instances, in any group, executed
   * somewhere past the end of its durable log.
   */
  behindAtReturn: number;
  /** Instances it learned from peers' streams (status().learner.counters.valuesLearnedFromPeers). */
  valuesLearnedFromPeers: number;
  catchUpsStarted: number;
  catchUpsFinished: number;
  /** Checkpoints it installed from a peer (its peers had compacted past its log). */
  checkpointInstalls: number;
}

/** What an election seed runs with, and the clock bound it keeps (see masterClockBound). */
export interface MasterSettings {
  leaseMs: number;
  marginMs: number;
  /** Largest |rate - 1| a clock-drift fault draws. */
  driftMax: number;
  /** Largest clock jump (either way), at most one per node per 2 leases. */
  jumpMaxMs: number;
}

/** More events than this at one virtual millisecond means a loop that never yields to time. */
const MAX_EVENTS_PER_MS = 20_000;
/** Simulated fsync latency: uniform in this range (ms), or SLOW_FSYNC_MS with SLOW_FSYNC_RATE. */
const FSYNC_MS: [number, number] = [0.1, 5];
const SLOW_FSYNC_MS = 50;
const SLOW_FSYNC_RATE = 0.02;
/** Chance that an fsync during the fault phase is interrupted by a crash of its node. */
const CRASH_IN_FSYNC_RATE = 0.004;
/** At most one crash-in-fsync per this many virtual ms (so the cluster keeps making progress). */
const CRASH_IN_FSYNC_GAP_MS = 1500;
/** Each node's clock starts at an offset drawn up to this (ms): machines' clocks disagree. */
const CLOCK_OFFSET_MAX_MS = 3 * 3600_000;
/** The long-down node returns only when the others have chosen this many instances past its log. */
const LONG_DOWN_MIN_BEHIND = 2;
/** …else it stays down this much longer (ms), the network healed, … */
const LONG_DOWN_POSTPONE_MS = 1000;
/** …but comes back at the latest this long before the end of the fault phase (ms). */
const LONG_DOWN_POSTPONE_LIMIT_MS = 1000;
/** While the long-down node is down, a working majority of the others is restored this often (ms). */
const LONG_DOWN_MAJORITY_CHECK_MS = 1000;
/** The links into a node that comes back to catch up are lossy for this long (ms). */
const CATCH_UP_LOSS_MS = 3000;
/** Workload shares (from their own stream): register writes, barrier reads; the rest unique values. */
const REGISTER_WRITE_SHARE = 0.3;
const BARRIER_READ_SHARE = 0.2;
/** Register keys per group, and the values written: few, so equal bytes are written often. */
const REGISTER_KEYS = 2;
const REGISTER_VALUES = ['a', 'b', 'c'] as const;
/** Proposals wait this long before E_TIMEOUT. */
const PROPOSE_TIMEOUT_MS = 8000;
/** Election seeds: the master lease is drawn in this range (ms), several leases in the fault phase. */
const MASTER_LEASE_MS: [number, number] = [2000, 3000];
/** The lease margin as a share of the lease: PhxPaxos's 100 ms of 10 s (1 %), or a wider 4 %. */
const MASTER_MARGIN_SHARES = [0.01, 0.04] as const;
/** Share of the clock-rate bound m/(2L - m) that drift may use; jumps get what remains. */
const MASTER_DRIFT_SHARE = 0.5;
/** In election seeds the simulator calls dropMaster on a holder every so many ms (uniform). */
const MASTER_DROP_EVERY_MS: [number, number] = [1500, 4500];
/** After healing, a member must hold each group's lease within this many lease periods. */
const MASTER_LIVENESS_LEASES = 2;
const MSG_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(PaxosMsgType).map(([k, v]) => [v, k]),
);

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

class Violation extends Error {
  constructor(
    readonly invariant: Invariant,
    message: string,
  ) {
    super(message);
  }
}

export async function runSeed(options: SimOptions): Promise<SimResult> {
  checkSimOptions(options);
  const sim = new Simulation(options);
  return sim.run();
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return `${typeof code === 'string' ? `${code}: ` : ''}${error.stack ?? error.message}`;
  }
  return String(error);
}

class Simulation {
  private readonly rng: SeededRng;
  /** Fsync latencies and failures: their own stream, so storage timing does not shift the workload. */
  private readonly diskRng: SeededRng;
  /** Initial clock offsets: their own stream (the workload's draws stay as they were). */
  private readonly clockRng: SeededRng;
  private readonly queue = new EventQueue();
  private readonly net: MemoryNetwork;
  private readonly nodes: SimNode[] = [];
  private readonly votingIds: number[];
  private readonly topology: SimTopology;
  private readonly trace: string[] = [];
  private readonly faults: boolean;
  private readonly faultPhaseMs: number;
  private readonly livenessBoundMs: number;
  private readonly unsafeFaults: (UnsafeFaults & MasterFaults) | undefined;
  private readonly proposed = new Set<string>();
  private readonly rejected: Record<string, number> = {};
  private readonly coverage = emptyCoverage();
  /** Peers each node's group streams to now, by node/group/incarnation (coverage). */
  private violation: Violation | undefined;
  /** The event being run (a function for deliveries: described only when a message needs it). */
  private currentEvent: string | (() => string) = 'start';
  private events = 0;
  private crashes = 0;
  private delivered = 0;
  private proposalSeq = 0;
  private stopProposals = false;
  private inFaultPhase = true;
  private stormAtMs = -1;
  private stormEvents = 0;
  private nextCrashInFsyncAtMs = 0;
  private lastPartition: number[][] | undefined;
  /** Set once the long-down node is back (its catch-up is counted from then on). */
  private longDownCatchUp: LongDownCatchUp | undefined;
  /** Master elections of this seed (undefined: none). Its draws come from their own stream. */
  private readonly master: MasterSettings | undefined;
  private readonly masterRng: SeededRng;
  /** False only with the planted 'clocksOutsideLeaseBound': election seeds keep the usual clocks. */
  private readonly masterClocksBounded: boolean;
  /** node id → virtual time of its last clock jump (election seeds: one per 2 leases). */
  private readonly lastClockJumpAtMs = new Map<number, number>();
  private healedAtMs: number | undefined;
  /** Workload proposals not yet settled (a dead incarnation's never settle). */
  private readonly proposalsPending = new Set<{ n: SimNode; incarnation: number; group: number }>();
  /** group → when master liveness is judged (2 leases after its barrier and backlog). */
  private readonly masterLivenessDeadlineMs: number[] = [];
  /** Disks, checkpoint writes, compactions, transfer cuts and the checkpoint invariant. */
  private readonly checkpoints: CheckpointSim;
  /** Which workload operation each proposal is: its own stream (the other draws stay as they were). */
  private readonly workloadRng: SeededRng;
  /** What clients were told, checked (checkers/). */
  private readonly identities = new AcknowledgedIdentityChecker((m) =>
    this.note('acknowledged-identity', `${m} (after event "${this.eventName()}")`),
  );
  private readonly registers = new RegisterLinearizabilityChecker((m) =>
    this.note('linearizable', m),
  );
  private operationSeq = 0;
  /** Single master, extended: no lease under a version an applied election superseded. */
  private readonly staleLease = new StaleLeaseChecker((m) =>
    this.note('single-master', `${m} (after event "${this.eventName()}")`),
  );

  /** One checker per invariant (checkers/), fed by the harness. */
  private readonly agreement: AgreementChecker;
  private readonly chain: ChainChecker;
  private readonly durability: DurabilityChecker;
  private readonly replyDurability = new ReplyDurabilityChecker((m) =>
    this.fail('reply-durability', m),
  );
  private readonly singleMaster: SingleMasterChecker;

  constructor(private readonly options: SimOptions) {
    this.rng = new SeededRng(options.seed);
    this.diskRng = new SeededRng(options.seed ^ 0xd15c);
    this.clockRng = new SeededRng(options.seed ^ 0xc10c);
    this.faults = options.faults ?? true;
    // The topology is drawn first, in a fixed order, whatever is pinned (pinning one option does
    // not change the draws of the others).
    const drawn = {
      nodes: this.rng.next() < 0.6 ? 3 : 5,
      groups: 1 + this.rng.int(3),
      followers: this.rng.int(3),
      membershipChange: this.rng.next() < 0.5,
      longDown: this.rng.next() < 0.5,
    };
    const nodes = options.nodes ?? drawn.nodes;
    const faultPhaseMs = options.faultPhaseMs ?? 20_000;
    this.topology = {
      nodes,
      groups: options.groups ?? (this.faults ? drawn.groups : 1),
      followers: options.followers ?? (this.faults ? drawn.followers : 0),
      membershipChange:
        options.membershipChange ??
        (this.faults && nodes >= SIM_MIN_NODES_FOR_MEMBERSHIP_CHANGE && drawn.membershipChange),
      longDown:
        options.longDown ??
        (this.faults &&
          nodes >= SIM_MIN_NODES_FOR_LONG_DOWN &&
          faultPhaseMs >= LONG_DOWN_LATEST_RETURN_MS &&
          drawn.longDown),
    };
    const planted = options.brokenAcceptor ? 'forgetPromises' : options.planted;
    this.unsafeFaults = plantedFaults(planted);
    this.masterRng = new SeededRng(options.seed ^ 0x3a57e5);
    this.workloadRng = new SeededRng(options.seed ^ 0x4ead);
    this.master = this.drawMaster(planted);
    this.masterClocksBounded = planted !== 'clocksOutsideLeaseBound';
    this.votingIds = Array.from({ length: this.topology.nodes }, (_, i) => i + 1);
    this.faultPhaseMs = faultPhaseMs;
    this.livenessBoundMs = options.livenessBoundMs ?? 60_000;
    this.net = new MemoryNetwork({ rng: new SeededRng(options.seed ^ 0x5eed) });
    // The first follower follows the node that dies (the long-down node, or node 1, which is
    // crashed on schedule); the second follows a node drawn from the seed.
    const followTo = [1, 1 + this.rng.int(this.topology.nodes)];
    const ids = [...this.votingIds];
    for (let f = 0; f < this.topology.followers; f++) ids.push(this.topology.nodes + 1 + f);
    for (const id of ids) {
      const voting = id <= this.topology.nodes;
      const sim: SimNode = new SimNode(
        id,
        voting,
        voting ? undefined : followTo[id - this.topology.nodes - 1],
        new MemoryLogStore(
          {},
          this.durabilityPort(() => sim),
        ),
        this.net.endpoint(id),
      );
      // Clocks of different machines do not agree: each starts at its own offset (up to 3 h).
      if (this.faults) sim.clock.jump(this.clockRng.int(CLOCK_OFFSET_MAX_MS), 0);
      this.nodes.push(sim);
    }
    const groups = this.topology.groups;
    this.agreement = new AgreementChecker(groups, this.proposed, (i, m) => this.note(i, m));
    this.chain = new ChainChecker(groups, (m) => this.fail('chain', m));
    this.durability = new DurabilityChecker(this.nodes, (m) => this.fail('durability', m));
    this.singleMaster = new SingleMasterChecker({
      nodes: this.nodes,
      groups,
      nowMs: () => this.queue.nowMs,
      healedAtMs: () => this.healedAtMs,
      staleLease: this.staleLease,
      paths: this.coverage.paths,
      log: (line) => this.log(line),
      fail: (m) => this.fail('single-master', m),
      eventName: () => this.eventName(),
    });
    this.net.setDefaultLink({ delayMs: [1, 10] });
    this.checkpoints = this.checkpointSim(planted);
  }

  private checkpointSim(planted: PlantedBug | undefined): CheckpointSim {
    return new CheckpointSim({
      seed: this.options.seed,
      queue: this.queue,
      net: this.net,
      nodes: this.nodes,
      groups: this.topology.groups,
      faultPhaseMs: this.faultPhaseMs,
      faults: this.faults,
      nodeCount: this.topology.nodes,
      longDown: this.topology.longDown,
      membershipChange: this.topology.membershipChange,
      compaction: this.options.compaction,
      planted:
        planted === 'checkpointIdTooHigh' || planted === 'checkpointChunkCorruptValidCrc'
          ? planted
          : undefined,
      paths: this.coverage.paths,
      masterLeaseMs: this.master?.leaseMs,
      installCrashStep: this.options.installCrashStep,
      chosen: this.agreement.chosen,
      proposed: this.proposed,
      inFaultPhase: () => this.inFaultPhase,
      storeFailed: (n) => (n as SimNode).store.failedWith !== undefined,
      crash: (n, why) => this.crash(n as SimNode, why),
      start: (n) => this.start(n as SimNode),
      note: (invariant, message) => this.note(invariant, message),
      log: (line) => this.log(line),
    });
  }

  /** The simulated fsync of one node's store: latency and failures from the seed. */
  private durabilityPort(node: () => SimNode): DurabilityPort {
    return {
      schedule: (delayMs, fn) => {
        const n = node();
        this.queue.at(this.queue.nowMs + delayMs, fn, `n${n.id} fsync done`);
        if (
          this.faults &&
          this.inFaultPhase &&
          n.alive &&
          n.downUntilMs < 0 &&
          this.queue.nowMs >= this.nextCrashInFsyncAtMs &&
          this.diskRng.next() < CRASH_IN_FSYNC_RATE
        ) {
          // A crash between a write call and its resolution: the write must be lost.
          this.nextCrashInFsyncAtMs = this.queue.nowMs + CRASH_IN_FSYNC_GAP_MS;
          const at = this.queue.nowMs + delayMs * this.diskRng.next() * 0.9;
          const incarnation = n.incarnation;
          this.queue.at(
            at,
            () => {
              // An fsync begun just before the heal completes after it: no crash then (every
              // node must stay up from the heal on).
              if (!n.isLive(incarnation) || !this.inFaultPhase) return;
              this.coverage.faults['crash-in-fsync']++;
              this.crash(n, 'in the middle of an fsync');
            },
            `n${n.id} crash in fsync`,
          );
        }
      },
      fsyncDelayMs: () => {
        if (this.diskRng.next() < SLOW_FSYNC_RATE) {
          this.coverage.faults['slow-fsync']++;
          return SLOW_FSYNC_MS;
        }
        const [lo, hi] = FSYNC_MS;
        return Math.round((lo + this.diskRng.next() * (hi - lo)) * 10) / 10;
      },
      fsyncFails: () => {
        const n = node();
        if (!n.failNextFsync) return false;
        n.failNextFsync = false;
        this.log(`n${n.id} fsync FAILS: its store refuses writes from now on`);
        return true;
      },
    };
  }

  private log(line: string): void {
    if (this.options.trace)
      this.trace.push(`[${this.queue.nowMs.toFixed(1).padStart(9)}ms] ${line}`);
  }

  /** Records a violation without throwing (safe inside node callbacks); the loop stops on it. */
  private note(invariant: Invariant, message: string): void {
    this.violation ??= new Violation(invariant, message);
  }

  private fail(invariant: Invariant, message: string): never {
    this.note(invariant, message);
    throw this.violation!;
  }

  async run(): Promise<SimResult> {
    const onUnhandled = (reason: unknown): void =>
      this.note(
        'unhandled-rejection',
        `a promise rejected with no handler (during event "${this.eventName()}"): ${describeError(reason)}`,
      );
    process.on('unhandledRejection', onUnhandled);
    try {
      for (const n of this.nodes) this.start(n);
      await this.awaitStarts();
      this.scheduleProposals();
      if (this.faults) {
        this.scheduleFaults();
        this.scheduleTopologyEvents();
      }
      this.checkpoints.schedule();
      this.scheduleScript();
      if (this.master) this.scheduleMasterDrops();
      if (this.options.planted === 'unhandledRejection') this.plantUnhandledRejection();
      await this.runUntil(this.faultPhaseMs);
      this.stopProposals = true;
      this.inFaultPhase = false;
      this.currentEvent = 'heal';
      this.log('heal: network healed, links reset, crashed and faulted nodes restart');
      this.net.heal();
      this.net.clearLinks();
      if (this.master) this.healedAtMs = this.queue.nowMs;
      for (const n of this.nodes) {
        n.downUntilMs = -1;
        n.failNextFsync = false;
        if (n.store.failedWith !== undefined) this.replaceDisk(n);
        if (!n.alive) this.start(n);
      }
      await this.awaitStarts();
      for (let g = 0; g < this.topology.groups; g++) await this.barrier(g);
      await this.awaitConvergence();
      if (this.master) await this.awaitMasterLiveness();
      for (const n of this.nodes) {
        this.checkNodeErrors(n);
        this.harvestCounters(n);
      }
      this.durability.finish();
      this.identities.finish();
      this.registers.finish();
      // A rejection raised by the last event surfaces on the next turn of the event loop.
      await settle();
      if (this.violation) throw this.violation;
    } catch (error) {
      if (!(error instanceof Violation)) {
        this.note('crash', `the simulation threw: ${describeError(error)}`);
      }
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    for (const n of this.nodes) if (n.alive) n.kill();
    const v = this.violation;
    this.coverage.paths['corrupted-frames-dropped'] = Object.entries(this.net.drops)
      .filter(([reason]) => reason.startsWith('E_') && reason !== 'E_FRAME_TOO_LARGE')
      .reduce((sum, [, count]) => sum + count, 0);
    this.coverage.paths.proposals = this.proposalSeq;
    this.coverage.paths.acknowledged = this.durability.acknowledged.length;
    this.coverage.paths.rejected = Object.values(this.rejected).reduce((a, b) => a + b, 0);
    this.coverage.paths['instances-chosen'] = this.agreement.finish();
    this.coverage.paths['identities-checked'] = this.identities.counts.checked;
    Object.assign(this.coverage.paths, this.staleLease.finish());
    return {
      seed: this.options.seed,
      ok: v === undefined,
      ...(v
        ? { violation: { invariant: v.invariant, message: v.message, atMs: this.queue.nowMs } }
        : {}),
      nodes: this.topology.nodes,
      topology: this.topology,
      stats: {
        events: this.events,
        virtualMs: this.queue.nowMs,
        proposals: this.proposalSeq,
        acknowledged: this.durability.acknowledged.length,
        rejected: this.rejected,
        instances: this.coverage.paths['instances-chosen'],
        crashes: this.crashes,
        delivered: this.delivered,
      },
      coverage: this.coverage,
      longDownCatchUp: this.longDownCatchUp,
      ...(this.master ? { master: this.master } : {}),
      trace: this.trace,
    };
  }

  // ---- nodes ------------------------------------------------------------------------------

  /** Starts (or restarts) a node over its store, in the background (replay may write). */
  private start(n: SimNode): void {
    n.kill(); // a fresh incarnation
    const incarnation = n.incarnation;
    n.alive = true;
    for (let g = 0; g < this.topology.groups; g++) {
      n.executed.push(new Map());
      n.checkedUpTo.push(0);
    }
    this.log(`start n${n.id} (incarnation ${incarnation})`);
    createNode({
      nodeId: n.id,
      cluster: this.votingIds,
      groups: this.topology.groups,
      store: this.checkpoints.wrapStore(n, incarnation, n.fencedStore(incarnation)),
      network: this.checkpoints.wrapNetwork(n, incarnation, n.network(incarnation)),
      checkpoint: this.checkpoints.nodeOptions(n, incarnation),
      scheduler: n.scheduler(this.queue, incarnation),
      random: new SeededRng(this.options.seed * 7919 + n.id * 131 + incarnation),
      stateMachines: (group) => [
        this.checkpoints.recorder(n, incarnation, group, (instanceId, value) =>
          this.onExecute(n, incarnation, group, instanceId, value),
        ),
      ],
      ...(n.followTo !== undefined ? { followTo: n.followTo } : {}),
      logger: (level, event, fields) => this.onNodeLog(n, incarnation, level, event, fields),
      ...(this.unsafeFaults ? { unsafeFaults: this.unsafeFaults } : {}),
      ...(this.master
        ? {
            onMasterChange: (group: number, m: { masterNodeId: number; version: number }) => {
              if (n.isLive(incarnation))
                this.staleLease.observe({ kind: 'master-changed', group, nodeId: n.id, ...m });
            },
            masterElection: this.options.planted !== 'electionsNeverRun',
            options: {
              masterLeaseMs: this.master.leaseMs,
              masterLeaseMarginMs: this.master.marginMs,
            },
          }
        : {}),
    }).then(
      (node) => {
        if (n.isLive(incarnation)) n.node = node;
      },
      (error: unknown) => {
        if (!n.isLive(incarnation)) return;
        // A start that writes (a checkpoint install finished, a log reset) on a disk whose fsync
        // was made to fail: the node is faulted, its disk is replaced later.
        if ((error as { code?: string }).code === 'E_IO' && n.store.failedWith !== undefined) {
          this.log(`n${n.id} could not start: its fsync failed (the disk will be replaced)`);
          return;
        }
        this.note('error', `n${n.id} failed to start: ${describeError(error)}`);
      },
    );
  }

  /** Runs the clock until every started node is up (a replay may wait for fsyncs). */
  private async awaitStarts(): Promise<void> {
    await settle();
    const deadline = this.queue.nowMs + this.livenessBoundMs;
    for (;;) {
      if (this.violation) throw this.violation;
      const pending = this.nodes.filter((n) => n.alive && n.node === undefined);
      if (pending.length === 0) return;
      if (this.queue.nowMs >= deadline)
        this.fail(
          'liveness',
          `n${pending[0]!.id} did not finish starting within ${this.livenessBoundMs} ms`,
        );
      await this.runUntil(this.queue.nowMs + 10);
    }
  }

  private eventName(): string {
    return typeof this.currentEvent === 'string' ? this.currentEvent : this.currentEvent();
  }

  private crash(n: SimNode, why: string): void {
    this.checkNodeErrors(n);
    this.harvestCounters(n);
    this.crashes++;
    this.log(`crash n${n.id} ${why} (writes not yet durable are lost)`);
    const replies = n.replies;
    n.kill();
    n.store.crash();
    this.replyDurability.observe({
      kind: 'crashed',
      node: n.id,
      replies,
      store: n.store,
      during: this.eventName(),
    });
    this.checkpoints.onCrash(n);
  }

  /** A node whose fsync failed: its process is stopped, the disk replaced, the durable log kept. */
  private replaceDisk(n: SimNode): void {
    if (n.alive) this.crash(n, 'after its fsync failed');
    n.store.repair();
    this.coverage.paths['disks-replaced']++;
    this.log(`n${n.id} disk replaced (its durable log kept)`);
  }

  /**
   * Adds one incarnation's learner and sender counters (every group) to the coverage; called
   * once per incarnation, when it crashes or at the end of the run (counters start at zero in
   * each incarnation).
   */
  private harvestCounters(n: SimNode): void {
    if (!n.alive || n.node === undefined) return;
    const paths = this.coverage.paths;
    const longDown = n.id === 1 && this.longDownCatchUp?.backAtMs !== undefined;
    for (let g = 0; g < this.topology.groups; g++) {
      const { counters, sender } = n.node.status(g).learner;
      paths['gap-nacks-sent'] += counters.nacksSent;
      paths['gap-nacks-received'] += sender.counters.nacks;
      paths['concurrent-streams'] += sender.counters.concurrentStreamsStarted;
      paths['stall-re-asks'] += counters.stalls;
      paths['prepares-declined'] += sender.counters.declined;
      paths['prepare-timeouts'] += sender.counters.prepareTimeouts;
      if (longDown) {
        const c = this.longDownCatchUp!;
        c.valuesLearnedFromPeers += counters.valuesLearnedFromPeers;
        c.catchUpsStarted += counters.catchUpsStarted;
        c.catchUpsFinished += counters.catchUpsFinished;
        c.checkpointInstalls += n.node.status(g).counters.checkpointRestarts;
      }
    }
  }

  /** status().errors of a live node: task errors and execute failures are always bugs. */
  private checkNodeErrors(n: SimNode): void {
    if (!n.alive || n.node === undefined) return;
    for (let g = 0; g < this.topology.groups; g++) {
      const { errors } = n.node.status(g);
      for (const kind of ['taskErrors', 'executeFailures', 'persistFailures'] as const) {
        const e = errors[kind];
        if (e.count === 0) continue;
        // A write fails only after an injected fsync failure (the group then stopped).
        if (kind === 'persistFailures' && n.store.fsyncFailures > 0) continue;
        this.note(
          e.last?.code === INVARIANT_CODE ? 'invariant' : 'error',
          `n${n.id} group ${g}: status().errors.${kind} = ${e.count}, last ${e.last?.code}: ${e.last?.message}`,
        );
      }
    }
  }

  private onNodeLog(
    n: SimNode,
    incarnation: number,
    level: string,
    event: string,
    fields: Record<string, unknown>,
  ): void {
    if (this.options.trace) this.log(`n${n.id} ${level} ${event} ${JSON.stringify(fields)}`);
    if (!n.isLive(incarnation)) return; // a dead process's late tasks are not the system's
    this.checkpoints.onNodeLog(n, level, event);
    switch (event) {
      case 'task-failed':
        this.note(
          fields.code === INVARIANT_CODE ? 'invariant' : 'error',
          `n${n.id} group ${String(fields.group)}: a task threw ${String(fields.code)}: ${String(fields.message)} (during event "${this.eventName()}")`,
        );
        return;
      case 'execute-failed':
        this.note(
          'error',
          `n${n.id} group ${String(fields.group)}: execute() failed at instance ${String(fields.instanceId)}: ${String(fields.error)} (during event "${this.eventName()}")`,
        );
        return;
      case 'group-stopped':
        if (fields.code === 'E_STORAGE' && n.store.failedWith !== undefined) {
          this.coverage.paths['groups-stopped-by-fsync-failure']++;
          return; // the node is faulted: its disk is replaced later
        }
        this.note(
          fields.code === 'E_CHECKSUM_MISMATCH'
            ? 'chain'
            : fields.code === INVARIANT_CODE
              ? 'invariant'
              : 'error',
          `n${n.id} group ${String(fields.group)} stopped: ${String(fields.message)} (during event "${this.eventName()}")`,
        );
        return;
      case 'sender-confirmed': {
        this.coverage.paths['catch-up-streams-started']++;
        const to = this.nodes[Number(fields.to) - 1];
        if (
          to?.followTo !== undefined &&
          to.followTo !== n.id &&
          !this.nodes[to.followTo - 1]!.alive
        )
          this.coverage.paths['follower-fallback-streams']++;
        return;
      }
      case 'sender-ended':
        if (fields.reason === 'done') this.coverage.paths['catch-up-streams-finished']++;
        return;
      default:
    }
  }

  private onExecute(
    n: SimNode,
    incarnation: number,
    group: number,
    instanceId: number,
    value: string,
  ): void {
    if (n.incarnation !== incarnation) return;
    const executed = n.executed[group]!;
    const mine = executed.get(instanceId) ?? [];
    this.agreement.observe({
      kind: 'executed',
      node: n.id,
      group,
      instanceId,
      value,
      before: mine,
      during: this.eventName(),
    });
    mine.push(value);
    executed.set(instanceId, mine);
    if (!n.voting) this.coverage.paths['follower-values-learned']++;
  }

  /**
   * The chain invariant, incrementally: every instance a node has learned since the last check
   * must carry the checksum the first node to learn it had.
   */
  private checkChain(): void {
    for (const n of this.nodes) {
      if (!n.alive || n.node === undefined) continue;
      for (let g = 0; g < this.topology.groups; g++) {
        const now = n.node.instanceId(g);
        const from = n.checkedUpTo[g]!;
        if (now <= from) continue;
        for (let i = from; i < now; i++) {
          const record = n.store.get(g, i);
          if (record === undefined) continue;
          this.identities.observe({
            kind: 'chosen',
            group: g,
            instanceId: i,
            identity: valueIdentity(record.value),
            node: n.id,
          });
          this.chain.observe({
            kind: 'learned',
            node: n.id,
            group: g,
            instanceId: i,
            checksum: record.checksum,
            // Read only where the chain may restart (a 0 checksum): the store read is not free.
            previousChecksum:
              record.checksum === 0 && i > 0 ? n.store.get(g, i - 1)?.checksum : undefined,
            during: () => this.eventName(),
          });
        }
        n.checkedUpTo[g] = now;
      }
    }
  }

  // ---- the event loop ---------------------------------------------------------------------

  private async runUntil(endMs: number): Promise<void> {
    for (;;) {
      const nextTimer = this.queue.peekTime();
      const nextDelivery = this.net.nextDeliveryAt();
      const next = Math.min(nextTimer ?? Infinity, nextDelivery ?? Infinity);
      if (!Number.isFinite(next) || next > endMs) {
        this.queue.nowMs = Math.max(this.queue.nowMs, endMs);
        return;
      }
      this.events++;
      if (next > this.stormAtMs) {
        this.stormAtMs = next;
        this.stormEvents = 0;
      } else if (++this.stormEvents > MAX_EVENTS_PER_MS) {
        this.fail(
          'liveness',
          `event storm: more than ${MAX_EVENTS_PER_MS} events at ${next} ms without time passing (last: ${this.eventName()})`,
        );
      }
      this.queue.nowMs = Math.max(this.queue.nowMs, next);
      this.net.setTime(this.queue.nowMs);
      if (nextDelivery !== undefined && nextDelivery <= (nextTimer ?? Infinity)) {
        const d = this.net.deliverNext(this.queue.nowMs);
        this.currentEvent = 'a dropped delivery';
        if (d !== undefined) {
          this.delivered++;
          if (
            d.message.kind === 'paxos' &&
            d.message.msg.msgType === PaxosMsgType.SendLearnValue &&
            d.message.msg.batch.length > 1 &&
            this.nodes[d.to - 1]!.alive
          )
            this.coverage.paths['batches-streamed']++;
          this.currentEvent = () => `deliver ${describe(d.from, d.to, d.group, d.message)}`;
          if (this.options.trace) this.log(this.eventName());
        }
      } else {
        this.queue.runNext();
        this.currentEvent = this.queue.lastLabel;
      }
      await settle();
      if (this.violation) throw this.violation;
      this.checkChain();
      if (this.master) this.singleMaster.observe({ kind: 'event' });
    }
  }

  /**
   * After healing, one more value must get chosen in each group: liveness of proposing, not only
   * of learning. It also drives a value that was chosen but learned by nobody before the crashes
   * (the acceptors hold it; the next instance's prepare finds it) to be learned everywhere.
   */
  private async barrier(group: number): Promise<void> {
    const deadline = this.queue.nowMs + this.livenessBoundMs;
    const failures: string[] = [];
    for (let attempt = 0; this.queue.nowMs < deadline; attempt++) {
      // The members as the most up-to-date node knows them (a membership change may be recent).
      const views = this.nodes.filter((n) => n.voting).map((n) => n.node!.status(group));
      const newest = views.reduce((a, b) => (b.membershipVersion > a.membershipVersion ? b : a));
      const candidates = this.nodes.filter((n) => n.voting && newest.members.includes(n.id));
      const n = candidates[this.rng.int(candidates.length)]!;
      const value = `g${group}.barrier${attempt}`;
      this.proposed.add(value);
      this.log(`n${n.id} propose "${value}" (after healing)`);
      let done = false;
      let failure: string | undefined;
      n.node!.propose(group, new TextEncoder().encode(value), {
        smId: RECORDER_SM_ID,
        timeoutMs: Math.max(1, Math.min(PROPOSE_TIMEOUT_MS * 2, deadline - this.queue.nowMs)),
      }).then(
        (r) => {
          done = true;
          this.identities.observe({
            kind: 'acknowledged',
            group,
            instanceId: r.instanceId,
            identity: r.identity,
            node: n.id,
            what: `"${value}"`,
          });
          this.durability.observe({
            kind: 'acknowledged',
            group,
            instanceId: r.instanceId,
            value,
            node: n.id,
          });
          this.log(`n${n.id} "${value}" chosen at instance ${r.instanceId}`);
        },
        (e: { code?: string }) => {
          done = true;
          failure = e.code ?? String(e);
        },
      );
      while (!done && this.queue.nowMs < deadline)
        await this.runUntil(Math.min(deadline, this.queue.nowMs + 100));
      if (done && failure === undefined) {
        if (this.master) this.scheduleMasterLivenessCheck(group);
        return;
      }
      failures.push(`n${n.id}: ${failure ?? 'still pending'}`);
    }
    this.fail(
      'liveness',
      `group ${group}: no value could be chosen within ${this.livenessBoundMs} ms of healing (${failures.join(', ')})`,
    );
  }

  private async awaitConvergence(): Promise<void> {
    const deadline = this.queue.nowMs + this.livenessBoundMs;
    const converged = (statuses: GroupStatus[]): boolean => {
      const ids = statuses.map((s) => s.instanceId);
      return (
        ids.every((id) => id === ids[0]) &&
        statuses.every(
          (s) => s.committer.queued === 0 && s.committer.inFlightInstanceId === undefined,
        )
      );
    };
    while (this.queue.nowMs < deadline) {
      await this.runUntil(Math.min(deadline, this.queue.nowMs + 500));
      let all = true;
      for (let g = 0; g < this.topology.groups; g++) {
        const statuses = this.nodes.map((n) => n.node!.status(g));
        // A group waiting for a checkpoint (E_NEEDS_CHECKPOINT) is on its way, not stopped.
        const stopped = statuses.find(
          (s) => s.stopped !== undefined && s.stopped.code !== 'E_NEEDS_CHECKPOINT',
        );
        if (stopped)
          this.fail(
            'liveness',
            `n${stopped.nodeId} stopped group ${g}: ${stopped.stopped!.message}`,
          );
        if (!converged(statuses) && !(this.master && this.convergedUnderRenewals(g, statuses)))
          all = false;
      }
      if (all) {
        this.log('converged');
        return;
      }
    }
    const summary = [];
    for (let g = 0; g < this.topology.groups; g++)
      summary.push(
        `g${g}: ` + this.nodes.map((n) => `n${n.id}@${n.node!.status(g).instanceId}`).join(' '),
      );
    this.fail(
      'liveness',
      `no convergence ${this.livenessBoundMs} ms after healing: ${summary.join('; ')}`,
    );
  }

  // ---- workload ---------------------------------------------------------------------------

  private scheduleProposals(): void {
    const next = (): void => {
      if (this.stopProposals) return;
      const delay = this.rng.int(150);
      this.queue.at(
        this.queue.nowMs + delay,
        () => {
          this.propose();
          next();
        },
        'propose',
      );
    };
    next();
  }

  private propose(): void {
    const alive = this.nodes.filter((n) => n.alive && n.node && n.voting);
    if (alive.length === 0 || this.stopProposals) return;
    const n = alive[this.rng.int(alive.length)]!;
    const group = this.rng.int(this.topology.groups);
    const value = `g${group}.v${++this.proposalSeq}`;
    const batch = this.rng.next() < 0.5;
    const kind = this.workloadRng.next();
    if (kind < BARRIER_READ_SHARE) return this.barrierRead(n, group);
    if (kind < BARRIER_READ_SHARE + REGISTER_WRITE_SHARE) return this.registerWrite(n, group);
    this.proposed.add(value);
    this.log(`n${n.id} ${batch ? 'batchPropose' : 'propose'} "${value}"`);
    const bytes = new TextEncoder().encode(value);
    const opts = { smId: RECORDER_SM_ID, timeoutMs: PROPOSE_TIMEOUT_MS };
    const p: Promise<ProposeResult> = batch
      ? n.node!.batchPropose(group, bytes, opts)
      : n.node!.propose(group, bytes, opts);
    this.settleWorkload(n, group, value, p, (r) => {
      this.durability.observe({
        kind: 'acknowledged',
        group,
        instanceId: r.instanceId,
        value,
        node: n.id,
      });
      this.log(`n${n.id} "${value}" chosen at instance ${r.instanceId}`);
    });
  }

  /**
   * A workload proposal's outcome: acknowledged (its identity goes to the identity checker), or
   * rejected and counted by code. A dead incarnation's late answers are not the system's.
   */
  private settleWorkload(
    n: SimNode,
    group: number,
    what: string,
    p: Promise<ProposeResult>,
    acknowledged: (r: ProposeResult) => void,
  ): void {
    const incarnation = n.incarnation;
    const pending = { n, incarnation, group };
    this.proposalsPending.add(pending);
    p.finally(() => this.proposalsPending.delete(pending)).then(
      (r) => {
        if (n.incarnation !== incarnation) return;
        this.identities.observe({
          kind: 'acknowledged',
          group,
          instanceId: r.instanceId,
          identity: r.identity,
          node: n.id,
          what,
        });
        acknowledged(r);
      },
      (e: { code?: string }) => {
        const code = e.code ?? 'ERROR';
        this.rejected[code] = (this.rejected[code] ?? 0) + 1;
        this.log(`n${n.id} ${what} rejected: ${code}`);
      },
    );
  }

  /**
   * A register write: few keys and values, so different clients write equal bytes (issue 17).
   * Never batched: one write per instance keeps the recorder's "executed twice" check exact.
   */
  private registerWrite(n: SimNode, group: number): void {
    const key = `g${group}.r${this.workloadRng.int(REGISTER_KEYS)}`;
    const value = `${key}=${REGISTER_VALUES[this.workloadRng.int(REGISTER_VALUES.length)]!}`;
    const id = ++this.operationSeq;
    this.proposed.add(value);
    this.log(`n${n.id} write "${value}"`);
    this.registers.observe({ kind: 'write-begin', id, key, value, atMs: this.queue.nowMs });
    const p = n.node!.propose(group, new TextEncoder().encode(value), {
      smId: RECORDER_SM_ID,
      timeoutMs: PROPOSE_TIMEOUT_MS,
    });
    this.settleWorkload(n, group, `write "${value}"`, p, (r) => {
      this.durability.observe({
        kind: 'acknowledged',
        group,
        instanceId: r.instanceId,
        value,
        node: n.id,
      });
      this.registers.observe({ kind: 'write-ok', id, atMs: this.queue.nowMs });
      this.coverage.paths['register-writes-acknowledged']++;
      this.log(`n${n.id} write "${value}" chosen at instance ${r.instanceId}`);
    });
  }

  /**
   * A barrier read, as apps/node serves `?consistent=true`: an empty batch value for no state
   * machine (every barrier packs to the same user bytes), then the node's own state.
   */
  private barrierRead(n: SimNode, group: number): void {
    const key = `g${group}.r${this.workloadRng.int(REGISTER_KEYS)}`;
    const id = ++this.operationSeq;
    const learned = n.node!.instanceId(group);
    const behind = this.nodes.some(
      (m) => m.alive && m.node !== undefined && m.node.instanceId(group) > learned,
    );
    this.log(`n${n.id} barrier read of ${key}${behind ? ' (behind a peer)' : ''}`);
    this.registers.observe({ kind: 'read-begin', id, key, node: n.id, atMs: this.queue.nowMs });
    const p = n.node!.batchPropose(group, new Uint8Array(0), {
      smId: NO_SM_ID,
      timeoutMs: PROPOSE_TIMEOUT_MS,
    });
    this.settleWorkload(n, group, `barrier read of ${key}`, p, (r) => {
      const now = n.node!.instanceId(group);
      const value = this.registerValue(group, key, now);
      this.registers.observe({
        kind: 'read-ok',
        id,
        value,
        instanceId: r.instanceId,
        atMs: this.queue.nowMs,
      });
      this.coverage.paths['barrier-reads']++;
      if (behind) this.coverage.paths['barrier-reads-behind']++;
      this.log(
        `n${n.id} barrier read of ${key} at instance ${r.instanceId} (learned up to ${now - 1}): ${value ?? 'nothing'}`,
      );
    });
  }

  /**
   * The register `key` as a node that has executed every instance below `now` holds it: the last
   * write to it chosen below `now` (agreement and the checkpoint checks hold the node to the log).
   */
  private registerValue(group: number, key: string, now: number): string | undefined {
    let at = -1;
    let value: string | undefined;
    const prefix = `${key}=`;
    for (const [instanceId, values] of this.agreement.chosen[group]!) {
      if (instanceId >= now || instanceId < at) continue;
      for (const v of values) {
        if (!v.startsWith(prefix)) continue;
        at = instanceId;
        value = v;
      }
    }
    return value;
  }

  // ---- faults -----------------------------------------------------------------------------

  private scheduleFaults(): void {
    const next = (): void => {
      const delay = 300 + this.rng.int(1500);
      if (this.queue.nowMs + delay >= this.faultPhaseMs) return;
      this.queue.at(
        this.queue.nowMs + delay,
        () => {
          this.injectFault();
          next();
        },
        'fault',
      );
    };
    next();
  }

  /** Shuffles with the seeded RNG (Fisher–Yates), never with a random comparator. */
  private shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.rng.int(i + 1);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  private injectFault(): void {
    const r = this.rng.int(100);
    const ids = this.nodes.map((n) => n.id);
    const pick = (): SimNode => this.nodes[this.rng.int(this.nodes.length)]!;
    const link = (): [number, number] | undefined => {
      const from = pick().id;
      const to = pick().id;
      return from === to ? undefined : [from, to];
    };
    const setLink = (kind: FaultKind, pair: [number, number], config: LinkConfig): void => {
      this.coverage.faults[kind]++;
      this.log(`${kind} n${pair[0]}→n${pair[1]} ${JSON.stringify(config)}`);
      this.net.setLink(pair[0], pair[1], config);
    };
    if (r < 10) {
      const pair = link();
      if (pair === undefined) return;
      setLink('link-fault', pair, {
        dropRate: this.rng.next() * 0.3,
        delayMs: [1, 1 + this.rng.int(80)],
        duplicateRate: this.rng.next() * 0.1,
        reorderRate: this.rng.next() * 0.3,
      });
    } else if (r < 16) {
      // Heavy loss one way only: the other direction works.
      const pair = link();
      if (pair === undefined) return;
      setLink('asymmetric-loss', pair, { dropRate: 0.5 + this.rng.next() * 0.5 });
    } else if (r < 21) {
      const pair = link();
      if (pair === undefined) return;
      setLink('corrupting-link', pair, { corruptRate: 0.05 + this.rng.next() * 0.3 });
    } else if (r < 29) {
      const shuffled = this.shuffle(ids);
      const cut = 1 + this.rng.int(shuffled.length - 1);
      this.lastPartition = [shuffled.slice(0, cut), shuffled.slice(cut)];
      this.coverage.faults.partition++;
      this.log(`partition ${JSON.stringify(this.lastPartition)}`);
      this.net.partition(this.lastPartition);
    } else if (r < 35) {
      const pair = link();
      if (pair === undefined) return;
      this.coverage.faults['one-way-partition']++;
      this.log(`one-way partition n${pair[0]}→n${pair[1]} cut`);
      this.net.cutOneWay(pair[0], pair[1]);
    } else if (r < 44) {
      this.coverage.faults.heal++;
      this.log('heal partition');
      this.net.heal();
    } else if (r < 48) {
      if (this.lastPartition === undefined) return;
      this.coverage.faults['fault-returns-after-heal']++;
      this.log(`partition returns ${JSON.stringify(this.lastPartition)}`);
      this.net.partition(this.lastPartition);
    } else if (r < 60) {
      const n = pick();
      if (!n.alive) return;
      this.coverage.faults.crash++;
      this.crash(n, 'at a fault event');
    } else if (r < 76) {
      const dead = this.nodes.filter((n) => !n.alive && n.downUntilMs < 0);
      if (dead.length === 0) return;
      const n = dead[this.rng.int(dead.length)]!;
      this.coverage.faults.restart++;
      if (n.store.failedWith !== undefined) n.store.repair();
      this.start(n);
    } else if (r < 80) {
      const n = pick();
      const jump = 500 + this.rng.int(5000);
      if (this.master && this.masterClocksBounded) return this.boundedClockJump(n, 1);
      n.clock.jump(jump, this.queue.nowMs);
      this.coverage.faults['clock-jump-forward']++;
      this.log(`clock of n${n.id} jumps +${jump} ms`);
    } else if (r < 84) {
      const n = pick();
      const jump = 200 + this.rng.int(3000);
      if (this.master && this.masterClocksBounded) return this.boundedClockJump(n, -1);
      n.clock.jump(-jump, this.queue.nowMs);
      this.coverage.faults['clock-jump-backward']++;
      this.log(`clock of n${n.id} jumps back -${jump} ms`);
    } else if (r < 88) {
      const n = pick();
      let rate = 1 + (this.rng.next() - 0.5) * 0.1; // ±5 %
      if (this.master && this.masterClocksBounded)
        rate = 1 + (this.masterRng.next() * 2 - 1) * this.master.driftMax;
      n.clock.setRate(rate, this.queue.nowMs);
      this.coverage.faults['clock-drift']++;
      this.log(`clock of n${n.id} drifts: rate ${rate.toFixed(4)}`);
    } else if (r < 93) {
      const n = pick();
      if (!n.alive || n.store.failedWith !== undefined) return;
      n.failNextFsync = true;
      this.coverage.faults['fsync-failure']++;
      this.log(`n${n.id}: its next fsync will fail`);
    } else if (r < 96) {
      // A faulted node (fsync failed, groups stopped) is taken down and its disk replaced.
      const faulted = this.nodes.filter((n) => n.store.failedWith !== undefined);
      if (faulted.length === 0) return;
      this.replaceDisk(faulted[this.rng.int(faulted.length)]!);
    } else {
      this.coverage.faults['links-reset']++;
      this.log('links reset');
      this.net.clearLinks();
    }
  }

  /** The per-seed topology's events: the long-down node, the follower's node dying, a membership change. */
  private scheduleTopologyEvents(): void {
    const t = this.topology;
    if (t.longDown) {
      // Node 1 goes down early and stays down while the others move on; it must catch up.
      const n = this.nodes[0]!;
      this.longDownCatchUp = {
        backAtMs: undefined,
        behindAtReturn: 0,
        valuesLearnedFromPeers: 0,
        catchUpsStarted: 0,
        catchUpsFinished: 0,
        checkpointInstalls: 0,
      };
      const [atLo, atHi] = LONG_DOWN_AT_MS;
      const [forLo, forHi] = LONG_DOWN_FOR_MS;
      const downAt = atLo + this.rng.int(atHi - atLo);
      const upAt = downAt + forLo + this.rng.int(forHi - forLo);
      this.queue.at(
        downAt,
        () => {
          n.downUntilMs = upAt;
          if (n.alive) this.crash(n, '(kept down: it will need catch-up)');
          this.restoreMajority(n);
        },
        'long-down crash',
      );
      // Before the heal: checkSimOptions and the draw keep the fault phase long enough.
      this.queue.at(upAt, () => this.longDownReturn(n, downAt), 'long-down restart');
    } else if (t.followers > 0) {
      // The first follower follows node 1, which dies.
      const n = this.nodes[0]!;
      this.queue.at(
        2000 + this.rng.int(8000),
        () => {
          // With a short pinned fault phase this may come after the heal: no crash then.
          if (n.alive && this.inFaultPhase) this.crash(n, '(the node a follower follows dies)');
        },
        'followed node crash',
      );
    }
    if (t.membershipChange) {
      const group = this.rng.int(t.groups);
      const drawn = this.votingIds[this.rng.int(this.votingIds.length)]!;
      // With a long-down node, the member removed is that node (an operator removes the dead
      // member): removing another would leave, with 3 voters, a group that cannot choose while
      // node 1 is down, so nothing would be there to catch up.
      const removed = t.longDown ? 1 : drawn;
      const removeAt = 1500 + this.rng.int(5000);
      this.changeMembership(group, removed, 'remove', removeAt, 5);
    }
  }

  /**
   * The long-down node comes back, once the others have moved on: while they have chosen fewer
   * than LONG_DOWN_MIN_BEHIND instances past its log (partitions or lossy links among them
   * held them back), the network heals and it stays down LONG_DOWN_POSTPONE_MS more, until
   * LONG_DOWN_POSTPONE_LIMIT_MS before the end of the fault phase.
   */
  private longDownReturn(n: SimNode, downAt: number): void {
    const behind = this.behind(n);
    if (
      behind < LONG_DOWN_MIN_BEHIND &&
      this.queue.nowMs + LONG_DOWN_POSTPONE_MS <= this.faultPhaseMs - LONG_DOWN_POSTPONE_LIMIT_MS
    ) {
      this.log(
        `n${n.id} stays down: the others are ${behind} instances past its log (network heals)`,
      );
      this.net.heal();
      this.net.clearLinks();
      n.downUntilMs = this.queue.nowMs + LONG_DOWN_POSTPONE_MS;
      this.queue.at(n.downUntilMs, () => this.longDownReturn(n, downAt), 'long-down restart');
      return;
    }
    n.downUntilMs = -1;
    if (n.store.failedWith !== undefined) n.store.repair();
    this.coverage.paths['long-down-restarts']++;
    const c = this.longDownCatchUp!;
    c.backAtMs = this.queue.nowMs;
    c.behindAtReturn = behind;
    this.log(`n${n.id} comes back after being down since ${downAt} ms, ${behind} instances behind`);
    if (!n.alive) this.start(n);
    this.lossyLinksInto(n);
  }

  /** Voting nodes other than `except` that work: up, with a disk that takes writes. */
  private workingVoters(except: SimNode): number {
    return this.nodes.filter(
      (m) => m.voting && m !== except && m.alive && m.store.failedWith === undefined,
    ).length;
  }

  /**
   * While the long-down node is kept down, the other voters get a working majority back every
   * LONG_DOWN_MAJORITY_CHECK_MS (so they move on and it has something to catch up): crashes
   * and failing fsyncs still hit them, two voters of five may be down at once, but a crashed
   * or faulted voter the majority needs is restarted (its disk replaced) at the next check.
   */
  private restoreMajority(longDown: SimNode): void {
    if (longDown.downUntilMs < 0 || !this.inFaultPhase) return;
    const majority = Math.floor(this.topology.nodes / 2) + 1;
    for (const m of this.nodes) {
      if (this.workingVoters(longDown) >= majority) break;
      if (!m.voting || m === longDown) continue;
      if (m.store.failedWith !== undefined) this.replaceDisk(m);
      if (!m.alive) {
        this.log(`n${m.id} restarts: a majority must work while n1 is kept down`);
        this.start(m);
      }
    }
    this.queue.at(
      this.queue.nowMs + LONG_DOWN_MAJORITY_CHECK_MS,
      () => this.restoreMajority(longDown),
      'long-down majority check',
    );
  }

  /** Instances executed anywhere, in any group, past the end of n's durable log. */
  private behind(n: SimNode): number {
    let most = 0;
    for (let g = 0; g < this.topology.groups; g++) {
      const mine = (n.store.maxInstanceId(g) ?? -1) + 1;
      let end = 0;
      for (const instanceId of this.agreement.chosen[g]!.keys())
        end = Math.max(end, instanceId + 1);
      most = Math.max(most, end - mine);
    }
    return most;
  }

  /**
   * A node that comes back to catch up does it over lossy, reordering links for a while: a
   * batch of its stream lost or overtaken makes it NACK, and a stream that goes silent makes it
   * re-ask. The links go back to the default after CATCH_UP_LOSS_MS (or at the heal).
   */
  private lossyLinksInto(n: SimNode): void {
    const config: LinkConfig = {
      dropRate: 0.1 + this.rng.next() * 0.2,
      reorderRate: 0.2 + this.rng.next() * 0.3,
    };
    this.coverage.faults['catch-up-link-loss']++;
    this.log(`catch-up-link-loss into n${n.id} ${JSON.stringify(config)}`);
    const from = this.nodes.filter((m) => m !== n).map((m) => m.id);
    for (const id of from) this.net.setLink(id, n.id, config);
    this.queue.at(
      this.queue.nowMs + CATCH_UP_LOSS_MS,
      () => {
        if (!this.inFaultPhase) return; // the heal cleared every link
        this.log(`links into n${n.id} back to the default`);
        for (const id of from) this.net.setLink(id, n.id, {});
      },
      'catch-up links heal',
    );
  }

  /** Proposes removing (then, once applied, adding back) a member, retrying a few times. */
  private changeMembership(
    group: number,
    target: number,
    kind: 'remove' | 'add',
    atMs: number,
    triesLeft: number,
  ): void {
    if (triesLeft === 0 || atMs >= this.faultPhaseMs) return;
    this.queue.at(
      atMs,
      () => {
        const proposers = this.nodes.filter(
          (n) => n.alive && n.node !== undefined && n.voting && n.id !== target,
        );
        const retry = (): void =>
          this.changeMembership(group, target, kind, this.queue.nowMs + 1000, triesLeft - 1);
        if (proposers.length === 0) return retry();
        const n = proposers[this.rng.int(proposers.length)]!;
        const current = n.node!.status(group).members;
        const members =
          kind === 'remove'
            ? current.filter((m) => m !== target)
            : [...new Set([...current, target])];
        this.log(
          `n${n.id} proposes membership of group ${group}: ${members.join(',')} (${kind} n${target})`,
        );
        n.node!.changeMembership(group, members, PROPOSE_TIMEOUT_MS).then(
          (r) => {
            const applied = (r.result as { applied?: boolean } | undefined)?.applied === true;
            this.log(`membership ${kind} n${target} in group ${group}: applied=${applied}`);
            if (!applied) return retry();
            this.coverage.paths['membership-changes']++;
            if (kind === 'remove')
              this.changeMembership(group, target, 'add', this.queue.nowMs + 2000, 5);
          },
          (e: { code?: string }) => {
            this.log(`membership ${kind} n${target} in group ${group} rejected: ${e.code}`);
            retry();
          },
        );
      },
      `membership ${kind}`,
    );
  }

  private scheduleScript(): void {
    const { partitionNode, partitionMs } = this.options;
    if (partitionNode === undefined || partitionMs === undefined) return;
    const others = this.nodes.map((n) => n.id).filter((id) => id !== partitionNode);
    this.queue.at(
      partitionMs[0],
      () => {
        this.log(`partition [[${partitionNode}],[${others.join(',')}]] (scripted)`);
        this.net.partition([[partitionNode], others]);
      },
      'scripted partition',
    );
    this.queue.at(
      partitionMs[1],
      () => {
        this.log('heal partition (scripted)');
        this.net.heal();
      },
      'scripted heal',
    );
  }

  /** Planted bug of the simulator's own guard: a promise rejected with no handler. */
  private plantUnhandledRejection(): void {
    this.queue.at(
      1000,
      () => {
        void Promise.reject(new Error('planted: a rejection nobody handles'));
      },
      'planted unhandled rejection',
    );
  }

  // ---- master leases (election seeds) -----------------------------------------------------

  /** Whether this seed runs elections, and with which lease (all from the master stream). */
  private drawMaster(planted: PlantedBug | undefined): MasterSettings | undefined {
    const drawn = this.masterRng.next() < 0.5;
    const [lo, hi] = MASTER_LEASE_MS;
    const leaseDrawn = lo + this.masterRng.int(hi - lo + 1);
    const share = MASTER_MARGIN_SHARES[this.masterRng.int(MASTER_MARGIN_SHARES.length)]!;
    const masterBug =
      planted === 'lateLeaseStart' ||
      planted === 'renewWithoutVersionCheck' ||
      planted === 'clocksOutsideLeaseBound' ||
      planted === 'electionsNeverRun';
    if (!(this.options.masterElection ?? (masterBug || (this.faults && drawn)))) return undefined;
    const leaseMs = this.options.masterLeaseMs ?? leaseDrawn;
    const marginMs = Math.max(1, Math.round(leaseMs * share));
    return { leaseMs, marginMs, ...masterClockBound(leaseMs, marginMs) };
  }

  /** A clock jump within the lease's bound: at most jumpMaxMs, one per node per 2 leases. */
  private boundedClockJump(n: SimNode, sign: 1 | -1): void {
    const m = this.master!;
    const last = this.lastClockJumpAtMs.get(n.id);
    if (m.jumpMaxMs < 1 || (last !== undefined && this.queue.nowMs - last < 2 * m.leaseMs)) return;
    this.lastClockJumpAtMs.set(n.id, this.queue.nowMs);
    const jump = 1 + this.masterRng.int(m.jumpMaxMs);
    n.clock.jump(sign * jump, this.queue.nowMs);
    this.coverage.faults[sign > 0 ? 'clock-jump-forward' : 'clock-jump-backward']++;
    this.log(`clock of n${n.id} jumps ${sign > 0 ? '+' : '-'}${jump} ms (within the lease bound)`);
  }

  /** Now and then the holder of a group's lease gives it up (node.dropMaster). */
  private scheduleMasterDrops(): void {
    const [lo, hi] = MASTER_DROP_EVERY_MS;
    const next = (): void => {
      const at = this.queue.nowMs + lo + this.masterRng.int(hi - lo);
      if (at >= this.faultPhaseMs) return;
      this.queue.at(
        at,
        () => {
          const g = this.masterRng.int(this.topology.groups);
          const holder = this.nodes.find((n) => n.alive && n.node?.isMaster(g) === true);
          if (holder !== undefined) {
            const dropped = holder.node!.dropMaster(g);
            this.log(`n${holder.id} drops its master lease of group ${g}: ${dropped}`);
          }
          next();
        },
        'master drop',
      );
    };
    next();
  }

  /**
   * Convergence while masters renew: the log never stops growing, so the nodes' instance ids are
   * rarely all equal at one sample. Converged instead when no workload proposal is pending (no
   * acknowledgement can come any more) and every node has learned every acknowledged instance.
   */
  private convergedUnderRenewals(g: number, statuses: GroupStatus[]): boolean {
    if (this.backlogged(g)) return false;
    const last = this.durability.lastAcknowledged(g);
    return statuses.every((s) => s.instanceId > last);
  }

  /** Runs until master liveness has been judged in every group (see below). */
  private async awaitMasterLiveness(): Promise<void> {
    const deadline = this.queue.nowMs + this.livenessBoundMs;
    const judgedBy = (): number | undefined => {
      const d = this.masterLivenessDeadlineMs;
      for (let g = 0; g < this.topology.groups; g++) if (d[g] === undefined) return undefined;
      return Math.max(...d);
    };
    while (judgedBy() === undefined) {
      if (this.queue.nowMs >= deadline)
        this.fail(
          'liveness',
          `workload proposals still pending ${this.livenessBoundMs} ms after healing`,
        );
      await this.runUntil(this.queue.nowMs + 100);
    }
    await this.runUntil(judgedBy()!);
  }

  /** Whether a live node still has a workload proposal of group g pending (acknowledged or not). */
  private backlogged(g: number): boolean {
    for (const p of this.proposalsPending)
      if (p.group === g && p.n.isLive(p.incarnation)) return true;
    return false;
  }

  /**
   * Master liveness: after healing, a member holds the group's lease within 2 leases of the group
   * being live again: its barrier chosen and the backlog of workload proposals queued during the
   * faults drained (each settled: chosen or timed out). Until then a master's operation waits in
   * the same queue (PhxPaxos master_mgr.cpp TryBeMaster proposes through PNode::Propose, i.e.
   * Committer::NewValueGetID); that wait is bounded by the liveness invariant (60 s).
   */
  private scheduleMasterLivenessCheck(g: number): void {
    if (this.backlogged(g)) {
      this.queue.at(
        this.queue.nowMs + 100,
        () => this.scheduleMasterLivenessCheck(g),
        'master liveness: backlog drained?',
      );
      return;
    }
    const liveAtMs = this.queue.nowMs;
    const deadline = liveAtMs + MASTER_LIVENESS_LEASES * this.master!.leaseMs;
    this.masterLivenessDeadlineMs[g] = deadline;
    this.queue.at(
      deadline,
      () => {
        this.singleMaster.observe({ kind: 'event' });
        if (this.singleMaster.heldAfterHeal[g] === undefined) {
          const views = this.nodes
            .filter((n) => n.alive && n.node !== undefined)
            .map((n) => {
              const e = n.node!.status(g).masterElection;
              return `n${n.id}: recorded ${e.recorded?.masterNodeId ?? '-'}@${e.recorded?.version ?? '-'}, attempts ${e.counters.attempts}, failed ${e.counters.attemptsFailed}`;
            });
          this.fail(
            'master-liveness',
            `group ${g}: no member held the master lease within ${MASTER_LIVENESS_LEASES} leases (${MASTER_LIVENESS_LEASES * this.master!.leaseMs} ms) of the group being live again (barrier chosen, backlog drained) at ${liveAtMs.toFixed(1)} ms (healed at ${this.healedAtMs} ms; ${views.join('; ')})`,
          );
        }
      },
      'master liveness check',
    );
  }
}

/** Lets every pending promise (storage writes, loop tasks) run before the next event. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function describe(from: number, to: number, group: number, message: Message): string {
  if (message.kind !== 'paxos')
    return `n${from}→n${to} g${group} checkpoint msgType=${message.msg.msgType}`;
  const m = message.msg;
  const parts = [
    `n${from}→n${to} g${group} ${MSG_NAMES[m.msgType] ?? m.msgType} i=${m.instanceId}`,
  ];
  if (m.proposalId) parts.push(`b=(${m.proposalId},${m.proposalNodeId || m.nodeId})`);
  if (m.rejectByPromiseId) parts.push(`reject=${m.rejectByPromiseId}`);
  if (m.nowInstanceId) parts.push(`now=${m.nowInstanceId}`);
  if (m.value.length) parts.push(`value=${m.value.length}B`);
  if (m.batch.length) parts.push(`batch=${m.batch.length}`);
  if (m.flag) parts.push(`flag=${m.flag}`);
  return parts.join(' ');
}

export type { GroupStatus };
