// One simulated run: voting nodes and followers in one process on a virtual clock, a seeded RNG
// deciding every delivery, fault, fsync latency and proposal, MemoryNetwork and MemoryLogStore
// (with a simulated fsync) underneath, and the invariants of consensus checked after every event.
// A seed replays exactly, trace included.
import {
  createNode,
  type GroupStatus,
  type MasterFaults,
  type PaxosErrorCode,
  type UnsafeFaults,
  valueIdentity,
} from '@tspaxos/paxos';
import { MemoryLogStore } from '@tspaxos/storage';
import { type Message, MemoryNetwork, PaxosMsgType, SeededRng } from '@tspaxos/transport';
import { CheckpointSim } from './checkpoints';
import { AcknowledgedIdentityChecker } from './checkers/acknowledged-identity';
import { RegisterLinearizabilityChecker } from './checkers/register-linearizability';
import { StaleLeaseChecker } from './checkers/stale-lease';
import { EventQueue } from './event-queue';
import {
  checkSimOptions,
  PROPOSE_TIMEOUT_MS,
  type PlantedBug,
  plantedFaults,
  type SimOptions,
  LONG_DOWN_LATEST_RETURN_MS,
  SIM_MIN_NODES_FOR_LONG_DOWN,
  SIM_MIN_NODES_FOR_MEMBERSHIP_CHANGE,
} from './options';
import { RECORDER_SM_ID } from './recorder';
import { emptyCoverage } from './coverage';
import { AgreementChecker } from './checkers/agreement';
import { ChainChecker } from './checkers/chain';
import { DurabilityChecker } from './checkers/durability';
import { ReplyDurabilityChecker } from './checkers/reply-durability';
import { SingleMasterChecker } from './checkers/single-master';
import { Faults } from './faults';
import { Workload } from './workload';
import type { Invariant, MasterSettings, SimResult, SimTopology } from './result';
import { SimNode } from './sim-node';

/** What a failed assertion in @tspaxos/paxos throws and stops its group with (InvariantError). */
const INVARIANT_CODE: PaxosErrorCode = 'E_INVARIANT';

/** More events than this at one virtual millisecond means a loop that never yields to time. */
const MAX_EVENTS_PER_MS = 20_000;
/** Each node's clock starts at an offset drawn up to this (ms): machines' clocks disagree. */
const CLOCK_OFFSET_MAX_MS = 3 * 3600_000;
/** Election seeds: the master lease is drawn in this range (ms), several leases in the fault phase. */
const MASTER_LEASE_MS: [number, number] = [2000, 3000];
/** The lease margin as a share of the lease: PhxPaxos's 100 ms of 10 s (1 %), or a wider 4 %. */
const MASTER_MARGIN_SHARES = [0.01, 0.04] as const;
/** Share of the clock-rate bound m/(2L - m) that drift may use; jumps get what remains. */
const MASTER_DRIFT_SHARE = 0.5;
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
  private readonly coverage = emptyCoverage();
  /** Peers each node's group streams to now, by node/group/incarnation (coverage). */
  private violation: Violation | undefined;
  /** The event being run (a function for deliveries: described only when a message needs it). */
  private currentEvent: string | (() => string) = 'start';
  private events = 0;
  private crashes = 0;
  private delivered = 0;
  private inFaultPhase = true;
  private stormAtMs = -1;
  private stormEvents = 0;
  /** Master elections of this seed (undefined: none). Its draws come from their own stream. */
  private readonly master: MasterSettings | undefined;
  private readonly masterRng: SeededRng;
  /** False only with the planted 'clocksOutsideLeaseBound': election seeds keep the usual clocks. */
  private readonly masterClocksBounded: boolean;
  private healedAtMs: number | undefined;
  /** group → when master liveness is judged (2 leases after its barrier and backlog). */
  private readonly masterLivenessDeadlineMs: number[] = [];
  /** Disks, checkpoint writes, compactions, transfer cuts and the checkpoint invariant. */
  private readonly checkpoints: CheckpointSim;
  /** What clients were told, checked (checkers/). */
  private readonly identities = new AcknowledgedIdentityChecker((m) =>
    this.note('acknowledged-identity', `${m} (after event "${this.eventName()}")`),
  );
  private readonly registers = new RegisterLinearizabilityChecker((m) =>
    this.note('linearizable', m),
  );
  /** Single master, extended: no lease under a version an applied election superseded. */
  private readonly staleLease = new StaleLeaseChecker((m) =>
    this.note('single-master', `${m} (after event "${this.eventName()}")`),
  );

  /** The clients' proposals, writes and barrier reads (workload.ts). */
  private readonly workload: Workload;
  /** Fault injection and topology events (faults.ts). */
  private readonly faultInjection: Faults;
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
    this.master = this.drawMaster(planted);
    this.masterClocksBounded = planted !== 'clocksOutsideLeaseBound';
    this.votingIds = Array.from({ length: this.topology.nodes }, (_, i) => i + 1);
    this.faultPhaseMs = faultPhaseMs;
    this.livenessBoundMs = options.livenessBoundMs ?? 60_000;
    this.net = new MemoryNetwork({ rng: new SeededRng(options.seed ^ 0x5eed) });
    const groups = this.topology.groups;
    this.agreement = new AgreementChecker(groups, this.proposed, (i, m) => this.note(i, m));
    this.durability = new DurabilityChecker(this.nodes, (m) => this.fail('durability', m));
    this.faultInjection = new Faults({
      options,
      rng: this.rng,
      diskRng: this.diskRng,
      masterRng: this.masterRng,
      queue: this.queue,
      net: this.net,
      nodes: this.nodes,
      votingIds: this.votingIds,
      topology: this.topology,
      coverage: this.coverage,
      faults: this.faults,
      faultPhaseMs,
      master: this.master,
      masterClocksBounded: this.masterClocksBounded,
      chosen: this.agreement.chosen,
      inFaultPhase: () => this.inFaultPhase,
      log: (line) => this.log(line),
      crash: (n, why) => this.crash(n, why),
      start: (n) => this.start(n),
      replaceDisk: (n) => this.replaceDisk(n),
      registerWrite: (n, group) => this.workload.registerWrite(n, group),
    });
    this.workload = new Workload({
      rng: this.rng,
      workloadRng: new SeededRng(options.seed ^ 0x4ead),
      queue: this.queue,
      nodes: this.nodes,
      groups,
      proposed: this.proposed,
      chosen: this.agreement.chosen,
      paths: this.coverage.paths,
      identities: this.identities,
      registers: this.registers,
      durability: this.durability,
      log: (line) => this.log(line),
    });
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
          this.faultInjection.durabilityPort(() => sim),
        ),
        this.net.endpoint(id),
      );
      // Clocks of different machines do not agree: each starts at its own offset (up to 3 h).
      if (this.faults) sim.clock.jump(this.clockRng.int(CLOCK_OFFSET_MAX_MS), 0);
      this.nodes.push(sim);
    }
    this.chain = new ChainChecker(groups, (m) => this.fail('chain', m));
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
      installFinishedAtStart: (n) => {
        // The long-down node caught up through a checkpoint whose install a restart finished.
        const c = this.faultInjection.longDownCatchUp;
        if (n.id === 1 && c?.backAtMs !== undefined) c.checkpointInstalls++;
      },
    });
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
      // The lateOwnApply script's write must meet no other proposal in flight: its own only.
      if (this.options.lateOwnApply !== true) this.workload.schedule();
      if (this.faults) {
        this.faultInjection.scheduleFaults();
        this.faultInjection.scheduleTopologyEvents();
      }
      this.checkpoints.schedule();
      this.faultInjection.scheduleScript();
      if (this.options.lateOwnApply === true) this.faultInjection.scriptLateOwnApply();
      else if (this.master) this.faultInjection.scheduleMasterDrops();
      if (this.options.planted === 'unhandledRejection')
        this.faultInjection.plantUnhandledRejection();
      await this.runUntil(this.faultPhaseMs);
      this.workload.stop();
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
    this.coverage.paths.proposals = this.workload.proposals;
    this.coverage.paths.acknowledged = this.durability.acknowledged.length;
    this.coverage.paths.rejected = Object.values(this.workload.rejected).reduce((a, b) => a + b, 0);
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
        proposals: this.workload.proposals,
        acknowledged: this.durability.acknowledged.length,
        rejected: this.workload.rejected,
        instances: this.coverage.paths['instances-chosen'],
        crashes: this.crashes,
        delivered: this.delivered,
      },
      coverage: this.coverage,
      longDownCatchUp: this.faultInjection.longDownCatchUp,
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
    const longDown = n.id === 1 && this.faultInjection.longDownCatchUp?.backAtMs !== undefined;
    for (let g = 0; g < this.topology.groups; g++) {
      const { counters, sender } = n.node.status(g).learner;
      paths['gap-nacks-sent'] += counters.nacksSent;
      paths['gap-nacks-received'] += sender.counters.nacks;
      paths['concurrent-streams'] += sender.counters.concurrentStreamsStarted;
      paths['stall-re-asks'] += counters.stalls;
      paths['prepares-declined'] += sender.counters.declined;
      paths['prepare-timeouts'] += sender.counters.prepareTimeouts;
      if (longDown) {
        const c = this.faultInjection.longDownCatchUp!;
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

  /**
   * Convergence while masters renew: the log never stops growing, so the nodes' instance ids are
   * rarely all equal at one sample. Converged instead when no workload proposal is pending (no
   * acknowledgement can come any more) and every node has learned every acknowledged instance.
   */
  private convergedUnderRenewals(g: number, statuses: GroupStatus[]): boolean {
    if (this.workload.backlogged(g)) return false;
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

  /**
   * Master liveness: after healing, a member holds the group's lease within 2 leases of the group
   * being live again: its barrier chosen and the backlog of workload proposals queued during the
   * faults drained (each settled: chosen or timed out). Until then a master's operation waits in
   * the same queue (PhxPaxos master_mgr.cpp TryBeMaster proposes through PNode::Propose, i.e.
   * Committer::NewValueGetID); that wait is bounded by the liveness invariant (60 s).
   */
  private scheduleMasterLivenessCheck(g: number): void {
    if (this.workload.backlogged(g)) {
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
