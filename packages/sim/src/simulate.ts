// One simulated run: voting nodes and followers in one process on a virtual clock, a seeded RNG
// deciding every delivery, fault, fsync latency and proposal, MemoryNetwork and MemoryLogStore
// (with a simulated fsync) underneath, and the invariants of consensus checked after every event.
// A seed replays exactly, trace included.
import {
  createNode,
  type GroupStatus,
  type PaxosNode,
  type ProposeResult,
  type Scheduler,
  type UnsafeFaults,
} from '@tspaxos/paxos';
import { type DurabilityPort, type LogStore, MemoryLogStore } from '@tspaxos/storage';
import {
  type LinkConfig,
  type Message,
  MemoryNetwork,
  type Network,
  PaxosMsgFlag,
  PaxosMsgType,
  SeededRng,
} from '@tspaxos/transport';
import { CHECKPOINT_PATH_KINDS, CheckpointSim } from './checkpoints';
import { EventQueue } from './event-queue';
import { checkSimOptions } from './options';
import { RECORDER_SM_ID } from './recorder';

export type Invariant =
  | 'agreement'
  | 'validity'
  | 'chain'
  | 'durability'
  | 'liveness'
  /** An unexpected error inside a node: a task, execute() or a write failed (status().errors). */
  | 'error'
  | 'unhandled-rejection'
  /** The simulation itself threw. */
  | 'crash'
  /** A checkpoint (own or installed) differs from what the log says (checkpoints.ts). */
  | 'checkpoint';

/** Bugs planted on purpose; each must make the simulator fail (STYLE.md 13). */
export const PLANTED_BUGS = [
  'forgetPromises',
  'resetPromisePerInstance',
  'acknowledgeBeforeDurable',
  'throwingTask',
  'learnerSkipsChainCheck',
  'unhandledRejection',
  // Checkpoints (checkpoints.ts): a recorder that reports its checkpoint one instance too high;
  // chunks corrupted with their CRC recomputed (what a receiver without the CRC check would take).
  'checkpointIdTooHigh',
  'checkpointChunkCorruptValidCrc',
] as const;
export type PlantedBug = (typeof PLANTED_BUGS)[number];

export interface SimOptions {
  seed: number;
  /** Voting members (default: 3 or 5, drawn from the seed). */
  nodes?: number;
  /** Groups every node hosts (default: 1 … 3, drawn). */
  groups?: number;
  /** Followers (default: 0 … 2, drawn); the first follows a voting node that dies. */
  followers?: number;
  /** A membership change (remove a member, add it back) in flight during the faults (default: drawn). */
  membershipChange?: boolean;
  /** One voting node kept down long enough that it must catch up from a peer's log (default: drawn). */
  longDown?: boolean;
  /** Nodes write checkpoints and compact their logs during the fault phase (default: drawn when faults are on). */
  compaction?: boolean;
  /** Virtual milliseconds of proposals and faults before everything heals. */
  faultPhaseMs?: number;
  /** After healing, all nodes must agree on the now instance id within this many ms. */
  livenessBoundMs?: number;
  /** Inject faults (default true). Without faults the topology defaults to 1 group, no followers. */
  faults?: boolean;
  /** A planted bug the run must catch. */
  planted?: PlantedBug;
  /** Same as planted: 'forgetPromises' (kept for the CLI's --broken-acceptor). */
  brokenAcceptor?: boolean;
  /** Keep a readable trace of every event. */
  trace?: boolean;
  /** A scripted scenario: cut this node off from the others between these virtual times. */
  partitionNode?: number;
  partitionMs?: [number, number];
}

export interface SimViolation {
  invariant: Invariant;
  message: string;
  atMs: number;
}

/** Counts of what a run exercised: faults injected by kind, and paths the code went through. */
export interface Coverage {
  faults: Record<FaultKind, number>;
  paths: Record<PathKind, number>;
}

export const FAULT_KINDS = [
  'link-fault',
  'asymmetric-loss',
  'partition',
  'one-way-partition',
  'heal',
  'fault-returns-after-heal',
  'links-reset',
  'crash',
  'crash-in-fsync',
  'restart',
  'clock-jump-forward',
  'clock-jump-backward',
  'clock-drift',
  'slow-fsync',
  'fsync-failure',
  'corrupting-link',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export const PATH_KINDS = [
  'proposals',
  'acknowledged',
  'rejected',
  'instances-chosen',
  'catch-up-streams-started',
  'catch-up-streams-finished',
  'membership-changes',
  'follower-values-learned',
  'corrupted-frames-dropped',
  'groups-stopped-by-fsync-failure',
  'long-down-restarts',
  'disks-replaced',
  'catch-up-batches',
  'catch-up-nacks',
  'catch-up-concurrent-streams',
  ...CHECKPOINT_PATH_KINDS,
] as const;
export type PathKind = (typeof PATH_KINDS)[number];

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
  trace: string[];
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
/** The planted throwing task throws on every n-th learner message (the issue's reproduction). */
const PLANTED_THROW_EVERY = 97;
/** Each node's clock starts at an offset drawn up to this (ms): machines' clocks disagree. */
const CLOCK_OFFSET_MAX_MS = 3 * 3600_000;
/** Proposals wait this long before E_TIMEOUT. */
const PROPOSE_TIMEOUT_MS = 8000;
const MSG_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(PaxosMsgType).map(([k, v]) => [v, k]),
);

class Violation extends Error {
  constructor(
    readonly invariant: Invariant,
    message: string,
  ) {
    super(message);
  }
}

/** A node's clock: offset, drift (rate) and jumps, as a piecewise-linear map of virtual time. */
class NodeClock {
  private anchorVirtual = 0;
  private anchorLocal = 0;
  rate = 1;

  now(virtualMs: number): number {
    return this.anchorLocal + (virtualMs - this.anchorVirtual) * this.rate;
  }

  setRate(rate: number, virtualMs: number): void {
    this.anchorLocal = this.now(virtualMs);
    this.anchorVirtual = virtualMs;
    this.rate = rate;
  }

  jump(deltaMs: number, virtualMs: number): void {
    this.anchorLocal = this.now(virtualMs) + deltaMs;
    this.anchorVirtual = virtualMs;
  }
}

/** One simulated node across its incarnations (a crash ends one, a restart begins the next). */
class SimNode {
  incarnation = 0;
  alive = false;
  node: PaxosNode | undefined;
  readonly clock = new NodeClock();
  /** group → (instanceId → values executed there by the current incarnation). */
  executed: Array<Map<number, string[]>> = [];
  /** group → first instance whose chain checksum this incarnation has not been checked for. */
  checkedUpTo: number[] = [];
  /** The next fsync of this node's store fails (an injected fault). */
  failNextFsync = false;
  /** Kept down on purpose until this virtual time (the long-down node). */
  downUntilMs = -1;
  private timers = new Set<() => void>();
  private handler: ((from: number, group: number, message: Message) => void) | undefined;

  constructor(
    readonly id: number,
    readonly voting: boolean,
    readonly followTo: number | undefined,
    readonly store: MemoryLogStore,
    readonly endpoint: Network,
  ) {
    endpoint.onMessage((from, group, message) => {
      if (this.alive) this.handler?.(from, group, message);
    });
  }

  isLive(incarnation: number): boolean {
    return this.alive && this.incarnation === incarnation;
  }

  /** A network that goes silent when this incarnation dies. */
  network(incarnation: number): Network {
    return {
      send: (to, group, message) => {
        if (this.isLive(incarnation)) this.endpoint.send(to, group, message);
      },
      onMessage: (h) => {
        if (this.incarnation === incarnation) this.handler = h;
      },
      close: async () => {},
    };
  }

  /**
   * The store as one incarnation sees it: once the incarnation is dead (its process is gone),
   * its late tasks can neither write (the promise never settles) nor read.
   */
  fencedStore(incarnation: number): LogStore {
    const s = this.store;
    const never = new Promise<void>(() => {});
    const live = (): boolean => this.incarnation === incarnation;
    const read = <T>(fn: () => T): T => {
      if (!live()) throw new Error(`n${this.id} incarnation ${incarnation} is dead`);
      return fn();
    };
    return {
      put: (g, r, o) => (live() ? s.put(g, r, o) : never),
      putMany: (g, r, o) => (live() ? s.putMany(g, r, o) : never),
      get: (g, i) => read(() => s.get(g, i)),
      range: (g, a, b) => read(() => s.range(g, a, b)),
      maxInstanceId: (g) => read(() => s.maxInstanceId(g)),
      getMinChosenInstanceId: (g) => read(() => s.getMinChosenInstanceId(g)),
      setMinChosenInstanceId: (g, i) => (live() ? s.setMinChosenInstanceId(g, i) : never),
      getMeta: (g, k) => read(() => s.getMeta(g, k)),
      setMeta: (g, k, v, o) => (live() ? s.setMeta(g, k, v, o) : never),
      deleteBelow: (g, i, m) => read(() => s.deleteBelow(g, i, m)),
      clearGroup: (g) => (live() ? s.clearGroup(g) : never),
      resetGroup: (g, o) => (live() ? s.resetGroup(g, o) : never),
      close: async () => {},
    };
  }

  scheduler(queue: EventQueue, incarnation: number): Scheduler {
    return {
      now: () => this.clock.now(queue.nowMs),
      schedule: (delayMs, fn) => {
        // As Node's setTimeout, a delay below 1 ms is 1 ms (a virtual timer at +0 would let a
        // deadline missed by a rounding error re-arm forever without time passing); a drifting
        // clock runs its timers at its own rate.
        const virtualDelay = Math.max(1, delayMs) / this.clock.rate;
        const cancel = queue.at(
          queue.nowMs + virtualDelay,
          () => {
            this.timers.delete(cancel);
            if (this.isLive(incarnation)) fn();
          },
          `n${this.id} timer +${delayMs}ms`,
        );
        this.timers.add(cancel);
        return () => {
          this.timers.delete(cancel);
          cancel();
        };
      },
    };
  }

  kill(): void {
    this.alive = false;
    this.incarnation++;
    for (const cancel of this.timers) cancel();
    this.timers.clear();
    this.handler = undefined;
    this.node = undefined;
    this.executed = [];
    this.checkedUpTo = [];
  }
}

export async function runSeed(options: SimOptions): Promise<SimResult> {
  checkSimOptions(options);
  const sim = new Simulation(options);
  return sim.run();
}

function emptyCoverage(): Coverage {
  return {
    faults: Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>,
    paths: Object.fromEntries(PATH_KINDS.map((k) => [k, 0])) as Record<PathKind, number>,
  };
}

/** Adds b's counts into a (for summing runs). */
export function addCoverage(a: Coverage, b: Coverage): Coverage {
  for (const k of FAULT_KINDS) a.faults[k] += b.faults[k];
  for (const k of PATH_KINDS) a.paths[k] += b.paths[k];
  return a;
}

export { emptyCoverage };

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
  private readonly unsafeFaults: UnsafeFaults | undefined;
  private readonly proposed = new Set<string>();
  private readonly acknowledged: Array<{
    group: number;
    instanceId: number;
    value: string;
    node: number;
  }> = [];
  private readonly rejected: Record<string, number> = {};
  /** group → instanceId → values chosen there, in batch order (the first node to execute decides). */
  private readonly chosen: Array<Map<number, string[]>> = [];
  /** group → instanceId → the chain checksum first seen there, and on which node. */
  private readonly firstChecksum: Array<Map<number, { checksum: number; node: number }>> = [];
  private readonly coverage = emptyCoverage();
  /** Peers each node's group streams to now, by node/group/incarnation (coverage). */
  private readonly streaming = new Map<string, Set<number>>();
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
  /** Disks, checkpoint writes, compactions, transfer cuts and the checkpoint invariant. */
  private readonly checkpoints: CheckpointSim;

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
    this.topology = {
      nodes: options.nodes ?? drawn.nodes,
      groups: options.groups ?? (this.faults ? drawn.groups : 1),
      followers: options.followers ?? (this.faults ? drawn.followers : 0),
      membershipChange: options.membershipChange ?? (this.faults && drawn.membershipChange),
      longDown: options.longDown ?? (this.faults && drawn.longDown),
    };
    const planted = options.brokenAcceptor ? 'forgetPromises' : options.planted;
    this.unsafeFaults = plantedFaults(planted);
    this.votingIds = Array.from({ length: this.topology.nodes }, (_, i) => i + 1);
    this.faultPhaseMs = options.faultPhaseMs ?? 20_000;
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
    for (let g = 0; g < this.topology.groups; g++) {
      this.chosen.push(new Map());
      this.firstChecksum.push(new Map());
    }
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
      chosen: this.chosen,
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
              if (!n.isLive(incarnation)) return;
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
      if (this.options.planted === 'unhandledRejection') this.plantUnhandledRejection();
      await this.runUntil(this.faultPhaseMs);
      this.stopProposals = true;
      this.inFaultPhase = false;
      this.currentEvent = 'heal';
      this.log('heal: network healed, links reset, crashed and faulted nodes restart');
      this.net.heal();
      this.net.clearLinks();
      for (const n of this.nodes) {
        n.downUntilMs = -1;
        n.failNextFsync = false;
        if (n.store.failedWith !== undefined) this.replaceDisk(n);
        if (!n.alive) this.start(n);
      }
      await this.awaitStarts();
      for (let g = 0; g < this.topology.groups; g++) await this.barrier(g);
      await this.awaitConvergence();
      for (const n of this.nodes) this.checkNodeErrors(n);
      this.checkDurability();
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
    this.coverage.paths.acknowledged = this.acknowledged.length;
    this.coverage.paths.rejected = Object.values(this.rejected).reduce((a, b) => a + b, 0);
    this.coverage.paths['instances-chosen'] = this.chosen.reduce((a, m) => a + m.size, 0);
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
        acknowledged: this.acknowledged.length,
        rejected: this.rejected,
        instances: this.coverage.paths['instances-chosen'],
        crashes: this.crashes,
        delivered: this.delivered,
      },
      coverage: this.coverage,
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
    this.crashes++;
    this.log(`crash n${n.id} ${why} (writes not yet durable are lost)`);
    n.kill();
    n.store.crash();
    this.checkpoints.onCrash(n);
  }

  /** A node whose fsync failed: its process is stopped, the disk replaced, the durable log kept. */
  private replaceDisk(n: SimNode): void {
    if (n.alive) this.crash(n, 'after its fsync failed');
    n.store.repair();
    this.coverage.paths['disks-replaced']++;
    this.log(`n${n.id} disk replaced (its durable log kept)`);
  }

  /** Batches streamed (more than one value per frame) and gap acks (NACKs), as delivered. */
  private countLearnerPaths(message: Message): void {
    if (message.kind !== 'paxos') return;
    const m = message.msg;
    if (m.msgType === PaxosMsgType.SendLearnValue && m.batch.length > 1)
      this.coverage.paths['catch-up-batches']++;
    else if (m.msgType === PaxosMsgType.SendLearnValueAck && m.flag === PaxosMsgFlag.AckGap)
      this.coverage.paths['catch-up-nacks']++;
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
          'error',
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
          'error',
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
          fields.code === 'E_CHECKSUM_MISMATCH' ? 'chain' : 'error',
          `n${n.id} group ${String(fields.group)} stopped: ${String(fields.message)} (during event "${this.eventName()}")`,
        );
        return;
      case 'sender-confirmed': {
        this.coverage.paths['catch-up-streams-started']++;
        // Streams one node's group runs at once (issue 9: the sender serves several peers).
        const key = `${n.id}/${String(fields.group)}/${incarnation}`;
        const streaming = this.streaming.get(key) ?? new Set<number>();
        streaming.add(Number(fields.to));
        this.streaming.set(key, streaming);
        if (streaming.size >= 2) this.coverage.paths['catch-up-concurrent-streams']++;
        return;
      }
      case 'sender-ended':
        this.streaming
          .get(`${n.id}/${String(fields.group)}/${incarnation}`)
          ?.delete(Number(fields.to));
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
    if (mine.includes(value))
      this.note(
        'agreement',
        `n${n.id} executed "${value}" at group ${group} instance ${instanceId} twice (during event "${this.eventName()}")`,
      );
    const k = mine.length;
    mine.push(value);
    executed.set(instanceId, mine);
    if (!n.voting) this.coverage.paths['follower-values-learned']++;
    if (!this.proposed.has(value)) {
      this.note(
        'validity',
        `n${n.id} executed "${value}" at group ${group} instance ${instanceId}, which nobody proposed`,
      );
      return;
    }
    const global = this.chosen[group]!.get(instanceId) ?? [];
    if (k < global.length) {
      if (global[k] !== value) {
        this.note(
          'agreement',
          `group ${group} instance ${instanceId} item ${k}: n${n.id} executed "${value}" but another node executed "${global[k]}"`,
        );
      }
    } else {
      global.push(value);
      this.chosen[group]!.set(instanceId, global);
    }
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
        const seen = this.firstChecksum[g]!;
        for (let i = from; i < now; i++) {
          const record = n.store.get(g, i);
          if (record === undefined) continue;
          // DESIGN §2: an instance whose predecessor's checksum is unknown (not in this log, after
          // a checkpoint install or compaction, or itself 0) restarts the chain at 0.
          if (record.checksum === 0 && i > 0) {
            const before = n.store.get(g, i - 1);
            if (before === undefined || before.checksum === 0) continue;
          }
          const first = seen.get(i);
          if (first === undefined) seen.set(i, { checksum: record.checksum, node: n.id });
          else if (first.checksum !== record.checksum) {
            this.fail(
              'chain',
              `group ${g} instance ${i}: checksum ${record.checksum} on n${n.id} but ${first.checksum} on n${first.node} (after event "${this.eventName()}")`,
            );
          }
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
          this.countLearnerPaths(d.message);
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
          this.acknowledged.push({ group, instanceId: r.instanceId, value, node: n.id });
          this.log(`n${n.id} "${value}" chosen at instance ${r.instanceId}`);
        },
        (e: { code?: string }) => {
          done = true;
          failure = e.code ?? String(e);
        },
      );
      while (!done && this.queue.nowMs < deadline)
        await this.runUntil(Math.min(deadline, this.queue.nowMs + 100));
      if (done && failure === undefined) return;
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
        if (!converged(statuses)) all = false;
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
    this.proposed.add(value);
    const batch = this.rng.next() < 0.5;
    this.log(`n${n.id} ${batch ? 'batchPropose' : 'propose'} "${value}"`);
    const bytes = new TextEncoder().encode(value);
    const opts = { smId: RECORDER_SM_ID, timeoutMs: PROPOSE_TIMEOUT_MS };
    const p: Promise<ProposeResult> = batch
      ? n.node!.batchPropose(group, bytes, opts)
      : n.node!.propose(group, bytes, opts);
    const incarnation = n.incarnation;
    p.then(
      (r) => {
        if (n.incarnation !== incarnation) return;
        this.acknowledged.push({ group, instanceId: r.instanceId, value, node: n.id });
        this.log(`n${n.id} "${value}" chosen at instance ${r.instanceId}`);
      },
      (e: { code?: string }) => {
        const code = e.code ?? 'ERROR';
        this.rejected[code] = (this.rejected[code] ?? 0) + 1;
        this.log(`n${n.id} "${value}" rejected: ${code}`);
      },
    );
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
      n.clock.jump(jump, this.queue.nowMs);
      this.coverage.faults['clock-jump-forward']++;
      this.log(`clock of n${n.id} jumps +${jump} ms`);
    } else if (r < 84) {
      const n = pick();
      const jump = 200 + this.rng.int(3000);
      n.clock.jump(-jump, this.queue.nowMs);
      this.coverage.faults['clock-jump-backward']++;
      this.log(`clock of n${n.id} jumps back -${jump} ms`);
    } else if (r < 88) {
      const n = pick();
      const rate = 1 + (this.rng.next() - 0.5) * 0.1; // ±5 %
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
      const downAt = 1000 + this.rng.int(3000);
      const upAt = downAt + 7000 + this.rng.int(5000);
      this.queue.at(
        downAt,
        () => {
          n.downUntilMs = upAt;
          if (n.alive) this.crash(n, '(kept down: it will need catch-up)');
        },
        'long-down crash',
      );
      this.queue.at(
        Math.min(upAt, this.faultPhaseMs - 1),
        () => {
          n.downUntilMs = -1;
          if (n.store.failedWith !== undefined) n.store.repair();
          this.coverage.paths['long-down-restarts']++;
          this.log(`n${n.id} comes back after being down since ${downAt} ms`);
          if (!n.alive) this.start(n);
        },
        'long-down restart',
      );
    } else if (t.followers > 0) {
      // The first follower follows node 1, which dies.
      const n = this.nodes[0]!;
      this.queue.at(
        2000 + this.rng.int(8000),
        () => {
          if (n.alive) this.crash(n, '(the node a follower follows dies)');
        },
        'followed node crash',
      );
    }
    if (t.membershipChange) {
      const group = this.rng.int(t.groups);
      const removed = this.votingIds[this.rng.int(this.votingIds.length)]!;
      const removeAt = 1500 + this.rng.int(5000);
      this.changeMembership(group, removed, 'remove', removeAt, 5);
    }
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

  // ---- end-of-run invariants --------------------------------------------------------------

  /** Every acknowledged proposal is, at its instance, in every node's log. */
  private checkDurability(): void {
    for (const ack of this.acknowledged) {
      for (const n of this.nodes) {
        const values = n.executed[ack.group]?.get(ack.instanceId) ?? [];
        if (!values.includes(ack.value)) {
          this.fail(
            'durability',
            `"${ack.value}" was acknowledged at group ${ack.group} instance ${ack.instanceId} by n${ack.node} but n${n.id} has ${JSON.stringify(values)} there`,
          );
        }
      }
    }
  }
}

function plantedFaults(planted: PlantedBug | undefined): UnsafeFaults | undefined {
  switch (planted) {
    case 'forgetPromises':
      return { forgetPromises: true };
    case 'resetPromisePerInstance':
      return { resetPromisePerInstance: true };
    case 'acknowledgeBeforeDurable':
      return { acknowledgeBeforeDurable: true };
    case 'throwingTask':
      return { throwInLearnerTaskEvery: PLANTED_THROW_EVERY };
    case 'learnerSkipsChainCheck':
      return { learnerSkipsChainCheck: true };
    default:
      return undefined; // none, or the simulator's own ('unhandledRejection')
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
