// One simulated run: voting nodes and followers in one process on a virtual clock, a seeded RNG
// deciding every delivery, fault, fsync latency and proposal, MemoryNetwork and MemoryLogStore
// (with a simulated fsync) underneath, and the invariants of consensus checked after every event.
// A seed replays exactly, trace included.
import { SeededRandomSource } from '@tspaxos/core';
import { MemoryNetwork, PaxosMsgType } from '@tspaxos/transport';
import { CheckpointSim } from './checkpoints';
import { AcknowledgedIdentityChecker } from './checkers/acknowledged-identity';
import { AgreementChecker } from './checkers/agreement';
import { ChainChecker } from './checkers/chain';
import { DurabilityChecker } from './checkers/durability';
import { EventStormChecker } from './checkers/event-storm';
import { HarnessChecker } from './checkers/harness';
import { MasterLivenessChecker } from './checkers/master-liveness';
import { NodeErrorsChecker } from './checkers/node-errors';
import { RegisterLinearizabilityChecker } from './checkers/register-linearizability';
import { ReplyDurabilityChecker } from './checkers/reply-durability';
import { SingleMasterChecker } from './checkers/single-master';
import { StaleLeaseChecker } from './checkers/stale-lease';
import { Cluster } from './cluster';
import { corruptedFrames, emptyCoverage } from './coverage';
import { EventQueue } from './event-queue';
import { Faults } from './faults';
import { Liveness, settle } from './liveness';
import { Scripts } from './scripts';
import { drawMaster } from './master';
import {
  checkSimOptions,
  drawTopology,
  plantedFaults,
  checkpointPlanted,
  type SimOptions,
} from './options';
import {
  type Invariant,
  type MasterSettings,
  type SimResult,
  type SimTopology,
  Violation,
} from './result';
import type { SimNode } from './sim-node';
import { describeMessage } from './trace';
import { Workload } from './workload';

export async function runSeed(options: SimOptions): Promise<SimResult> {
  checkSimOptions(options);
  return new Simulation(options).run();
}

class Simulation {
  private readonly rng: SeededRandomSource;
  private readonly queue = new EventQueue();
  private readonly net: MemoryNetwork;
  private readonly nodes: SimNode[];
  /** The nodes, their starts and crashes, what they report (cluster.ts). */
  private readonly cluster: Cluster;
  private readonly topology: SimTopology;
  private readonly trace: string[] = [];
  private readonly faults: boolean;
  private readonly faultPhaseMs: number;
  private readonly livenessBoundMs: number;
  private readonly proposed = new Set<string>();
  private readonly coverage = emptyCoverage();
  private violation: Violation | undefined;
  /** The event being run (a function for deliveries: described only when a message needs it). */
  private currentEvent: string | (() => string) = 'start';
  private events = 0;
  private delivered = 0;
  private inFaultPhase = true;
  /** Master elections of this seed (undefined: none). Its draws come from their own stream. */
  private readonly master: MasterSettings | undefined;
  private healedAtMs: number | undefined;
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
  /** The scripted scenarios (scripts.ts). */
  private readonly scripts: Scripts;
  /** One checker per invariant (checkers/), fed by the harness. */
  private readonly agreement: AgreementChecker;
  private readonly durability: DurabilityChecker;
  private readonly replyDurability = new ReplyDurabilityChecker((m) =>
    this.fail('reply-durability', m),
  );
  private readonly singleMaster: SingleMasterChecker;
  /** No unhandled rejection, no throw of the simulation itself. */
  private readonly harness = new HarnessChecker(
    (i, m) => this.note(i, m),
    () => this.eventName(),
  );
  /** Election seeds only. */
  private readonly masterLiveness: MasterLivenessChecker | undefined;
  /** The liveness invariant: starts, and after the heal (liveness.ts); time passes. */
  private readonly liveness: Liveness;
  private readonly eventStorm = new EventStormChecker(
    (m) => this.fail('liveness', m),
    () => this.eventName(),
  );

  constructor(private readonly options: SimOptions) {
    this.rng = new SeededRandomSource(options.seed);
    // Streams of their own, so one kind of draw does not shift the others: fsync latencies and
    // failures, initial clock offsets, master elections.
    const diskRng = new SeededRandomSource(options.seed ^ 0xd15c);
    const clockRng = new SeededRandomSource(options.seed ^ 0xc10c);
    this.faults = options.faults ?? true;
    const faultPhaseMs = options.faultPhaseMs ?? 20_000;
    this.topology = drawTopology(this.rng, options, this.faults, faultPhaseMs);
    const planted = options.brokenAcceptor ? 'forgetPromises' : options.planted;
    const masterRng = new SeededRandomSource(options.seed ^ 0x3a57e5);
    this.master = drawMaster(masterRng, options, this.faults, planted);
    const votingIds = Array.from({ length: this.topology.nodes }, (_, i) => i + 1);
    this.faultPhaseMs = faultPhaseMs;
    this.livenessBoundMs = options.livenessBoundMs ?? 60_000;
    this.net = new MemoryNetwork({ rng: new SeededRandomSource(options.seed ^ 0x5eed) });
    const groups = this.topology.groups;
    this.agreement = new AgreementChecker(groups, this.proposed, (i, m) => this.note(i, m));
    const nodeErrors = new NodeErrorsChecker({
      groups,
      paths: this.coverage.paths,
      log: (line) => this.log(line),
      note: (invariant, message) => this.note(invariant, message),
      eventName: () => this.eventName(),
    });
    this.cluster = new Cluster({
      options,
      queue: this.queue,
      votingIds,
      topology: this.topology,
      coverage: this.coverage,
      // Planted bugs (options.ts): the run must fail.
      unsafeFaults: plantedFaults(planted),
      master: this.master,
      checkpoints: () => this.checkpoints,
      longDownCatchUp: () => this.faultInjection.longDownCatchUp,
      agreement: this.agreement,
      chain: new ChainChecker(groups, (m) => this.fail('chain', m)),
      identities: this.identities,
      replyDurability: this.replyDurability,
      staleLease: this.staleLease,
      log: (line) => this.log(line),
      nodeErrors,
      eventName: () => this.eventName(),
    });
    this.nodes = this.cluster.nodes;
    this.durability = new DurabilityChecker(this.nodes, (m) => this.fail('durability', m));
    this.faultInjection = new Faults({
      rng: this.rng,
      diskRng,
      masterRng,
      queue: this.queue,
      net: this.net,
      nodes: this.nodes,
      votingIds,
      topology: this.topology,
      coverage: this.coverage,
      faults: this.faults,
      faultPhaseMs,
      master: this.master,
      // Only the planted 'clocksOutsideLeaseBound' lets election seeds' clocks go past the bound.
      masterClocksBounded: planted !== 'clocksOutsideLeaseBound',
      chosen: this.agreement.chosen,
      inFaultPhase: () => this.inFaultPhase,
      log: (line) => this.log(line),
      crash: (n, why) => this.cluster.crash(n, why),
      start: (n) => this.cluster.start(n),
      replaceDisk: (n) => this.cluster.replaceDisk(n),
    });
    this.scripts = new Scripts({
      options,
      queue: this.queue,
      net: this.net,
      nodes: this.nodes,
      leaseMs: this.master?.leaseMs,
      log: (line) => this.log(line),
      registerWrite: (n, group) => this.workload.registerWrite(n, group),
    });
    this.workload = new Workload({
      rng: this.rng,
      workloadRng: new SeededRandomSource(options.seed ^ 0x4ead),
      queue: this.queue,
      nodes: this.nodes,
      groups,
      // The planted broken precondition reads under the lease without forwarding.
      leaseReads:
        this.master !== undefined &&
        (this.master.forwarding || planted === 'leaseReadsWithoutForwarding'),
      proposed: this.proposed,
      chosen: this.agreement.chosen,
      paths: this.coverage.paths,
      identities: this.identities,
      registers: this.registers,
      durability: this.durability,
      log: (line) => this.log(line),
    });
    this.cluster.createNodes({
      rng: this.rng,
      clockRng: this.faults ? clockRng : undefined,
      net: this.net,
      durabilityPort: (node) => this.faultInjection.durabilityPort(node),
    });
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
    this.masterLiveness =
      this.master &&
      new MasterLivenessChecker({
        queue: this.queue,
        nodes: this.nodes,
        groups,
        leaseMs: this.master.leaseMs,
        backlogged: (g) => this.workload.backlogged(g),
        singleMaster: this.singleMaster,
        healedAtMs: () => this.healedAtMs,
        fail: (m) => this.fail('master-liveness', m),
      });
    this.liveness = new Liveness({
      queue: this.queue,
      rng: this.rng,
      nodes: this.nodes,
      groups,
      livenessBoundMs: this.livenessBoundMs,
      proposed: this.proposed,
      identities: this.identities,
      durability: this.durability,
      workload: this.workload,
      masterLiveness: this.masterLiveness,
      runUntil: (endMs) => this.runUntil(endMs),
      throwIfViolated: () => {
        if (this.violation) throw this.violation;
      },
      log: (line) => this.log(line),
      fail: (m) => this.fail('liveness', m),
    });
    this.net.setDefaultLink({ delayMs: [1, 10] });
    this.checkpoints = new CheckpointSim({
      options: this.options,
      topology: this.topology,
      queue: this.queue,
      net: this.net,
      nodes: this.nodes,
      faultPhaseMs: this.faultPhaseMs,
      faults: this.faults,
      planted: checkpointPlanted(planted),
      paths: this.coverage.paths,
      masterLeaseMs: this.master?.leaseMs,
      chosen: this.agreement.chosen,
      proposed: this.proposed,
      inFaultPhase: () => this.inFaultPhase,
      storeFailed: (n) => (n as SimNode).store.failedWith !== undefined,
      crash: (n, why) => this.cluster.crash(n as SimNode, why),
      start: (n) => this.cluster.start(n as SimNode),
      note: (invariant, message) => this.note(invariant, message),
      nodeErrors,
      log: (line) => this.log(line),
      installFinishedAtStart: (n) => this.faultInjection.installFinishedAtStart(n.id),
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
    this.harness.start();
    try {
      for (const n of this.nodes) this.cluster.start(n);
      await this.liveness.awaitStarts();
      // The lateOwnApply script's write must meet no other proposal in flight: its own only.
      if (this.options.lateOwnApply !== true) this.workload.schedule();
      if (this.faults) {
        this.faultInjection.scheduleFaults();
        this.faultInjection.scheduleTopologyEvents();
      }
      this.checkpoints.schedule();
      this.scripts.partition();
      if (this.options.lateOwnApply === true) this.scripts.lateOwnApply();
      else if (this.master) this.faultInjection.scheduleMasterDrops();
      if (this.options.planted === 'unhandledRejection') this.scripts.unhandledRejection();
      await this.runUntil(this.faultPhaseMs);
      this.workload.stop();
      this.inFaultPhase = false;
      this.currentEvent = 'heal';
      this.log('heal: network healed, links reset, crashed and faulted nodes restart');
      this.net.heal();
      this.net.clearLinks();
      if (this.master) this.healedAtMs = this.queue.nowMs;
      this.cluster.restartAll();
      await this.liveness.awaitStarts();
      for (let g = 0; g < this.topology.groups; g++) await this.liveness.barrier(g);
      await this.liveness.awaitConvergence();
      if (this.masterLiveness) await this.liveness.awaitMasterLiveness(this.masterLiveness);
      this.cluster.harvestAll();
      this.durability.finish();
      this.identities.finish();
      this.registers.finish();
      // A rejection raised by the last event surfaces on the next turn of the event loop.
      await settle();
      if (this.violation) throw this.violation;
    } catch (error) {
      this.harness.observe({ kind: 'threw', error });
    } finally {
      this.harness.finish();
    }
    for (const n of this.nodes) if (n.alive) n.kill();
    const v = this.violation;
    this.coverage.paths['corrupted-frames-dropped'] = corruptedFrames(this.net.drops);
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
        crashes: this.cluster.crashes,
        delivered: this.delivered,
      },
      coverage: this.coverage,
      longDownCatchUp: this.faultInjection.longDownCatchUp,
      ...(this.master ? { master: this.master } : {}),
      trace: this.trace,
    };
  }

  private eventName(): string {
    return typeof this.currentEvent === 'string' ? this.currentEvent : this.currentEvent();
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
      this.eventStorm.observe({ kind: 'event', atMs: next });
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
          this.currentEvent = () => `deliver ${describeMessage(d.from, d.to, d.group, d.message)}`;
          if (this.options.trace) this.log(this.eventName());
        }
      } else {
        this.queue.runNext();
        this.currentEvent = this.queue.lastLabel;
      }
      await settle();
      if (this.violation) throw this.violation;
      this.cluster.checkChain();
      if (this.master) this.singleMaster.observe({ kind: 'event' });
    }
  }
}
