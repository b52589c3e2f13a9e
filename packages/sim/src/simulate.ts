// One simulated run: N nodes in one process on a virtual clock, a seeded RNG deciding every
// delivery, fault and proposal, MemoryNetwork and MemoryLogStore underneath, and the invariants
// of consensus checked as the run goes. A seed replays exactly, trace included.
import {
  createNode,
  type GroupStatus,
  type PaxosNode,
  type ProposeResult,
  type Scheduler,
} from '@tspaxos/paxos';
import { MemoryLogStore } from '@tspaxos/storage';
import {
  type Message,
  MemoryNetwork,
  type Network,
  PaxosMsgType,
  SeededRng,
} from '@tspaxos/transport';
import { EventQueue } from './event-queue';
import { RECORDER_SM_ID, RecordingStateMachine } from './recorder';

export type Invariant = 'agreement' | 'validity' | 'chain' | 'durability' | 'liveness' | 'crash';

export interface SimOptions {
  seed: number;
  /** Voting nodes (default: 3 or 5, chosen by the seed). */
  nodes?: number;
  /** Virtual milliseconds of proposals and faults before everything heals. */
  faultPhaseMs?: number;
  /** After healing, all nodes must agree on the now instance id within this many ms. */
  livenessBoundMs?: number;
  /** Inject faults (default true). */
  faults?: boolean;
  /** Every acceptor forgets its promises: the simulator must catch it (STYLE.md 13). */
  brokenAcceptor?: boolean;
  /** Every acceptor resets its promise per instance, as PhxPaxos does: the simulator must catch it. */
  phxpaxosPromiseReset?: boolean;
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

export interface SimResult {
  seed: number;
  ok: boolean;
  violation?: SimViolation;
  nodes: number;
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
  trace: string[];
}

const GROUP = 0;
/** More events than this at one virtual millisecond means a loop that never yields to time. */
const MAX_EVENTS_PER_MS = 20_000;
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

/** One simulated node across its incarnations (a crash ends one, a restart begins the next). */
class SimNode {
  incarnation = 0;
  alive = false;
  node: PaxosNode | undefined;
  clockOffsetMs = 0;
  /** (instanceId, k-th item) → value, as executed by the current incarnation. */
  executed = new Map<number, string[]>();
  private timers = new Set<() => void>();
  private handler: ((from: number, group: number, message: Message) => void) | undefined;

  constructor(
    readonly id: number,
    readonly store: MemoryLogStore,
    readonly endpoint: Network,
  ) {
    endpoint.onMessage((from, group, message) => {
      if (this.alive) this.handler?.(from, group, message);
    });
  }

  /** A network that goes silent when this incarnation dies. */
  network(incarnation: number): Network {
    return {
      send: (to, group, message) => {
        if (this.alive && this.incarnation === incarnation) this.endpoint.send(to, group, message);
      },
      onMessage: (h) => {
        if (this.incarnation === incarnation) this.handler = h;
      },
      close: async () => {},
    };
  }

  scheduler(queue: EventQueue, incarnation: number): Scheduler {
    return {
      now: () => queue.nowMs + this.clockOffsetMs,
      schedule: (delayMs, fn) => {
        const cancel = queue.at(
          queue.nowMs + Math.max(0, delayMs),
          () => {
            this.timers.delete(cancel);
            if (this.alive && this.incarnation === incarnation) fn();
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
    this.executed = new Map();
  }
}

export async function runSeed(options: SimOptions): Promise<SimResult> {
  const sim = new Simulation(options);
  return sim.run();
}

class Simulation {
  private readonly rng: SeededRng;
  private readonly queue = new EventQueue();
  private readonly net: MemoryNetwork;
  private readonly nodes: SimNode[] = [];
  private readonly ids: number[];
  private readonly trace: string[] = [];
  private readonly faults: boolean;
  private readonly faultPhaseMs: number;
  private readonly livenessBoundMs: number;
  private readonly proposed = new Set<string>();
  private readonly acknowledged: Array<{ instanceId: number; value: string; node: number }> = [];
  private readonly rejected: Record<string, number> = {};
  /** instanceId → values chosen there, in batch order (the first node to execute decides). */
  private readonly chosen = new Map<number, string[]>();
  private violation: Violation | undefined;
  private events = 0;
  private crashes = 0;
  private delivered = 0;
  private proposalSeq = 0;
  private stopProposals = false;
  private stormAtMs = -1;
  private stormEvents = 0;

  constructor(private readonly options: SimOptions) {
    this.rng = new SeededRng(options.seed);
    const count = options.nodes ?? (this.rng.next() < 0.7 ? 3 : 5);
    this.ids = Array.from({ length: count }, (_, i) => i + 1);
    this.faults = options.faults ?? true;
    this.faultPhaseMs = options.faultPhaseMs ?? 20_000;
    this.livenessBoundMs = options.livenessBoundMs ?? 60_000;
    this.net = new MemoryNetwork({ rng: new SeededRng(options.seed ^ 0x5eed) });
    for (const id of this.ids) {
      const endpoint = this.net.endpoint(id);
      this.nodes.push(new SimNode(id, new MemoryLogStore(), endpoint));
    }
    this.net.setDefaultLink({ delayMs: [1, 10] });
  }

  private log(line: string): void {
    if (this.options.trace) this.trace.push(`[${String(this.queue.nowMs).padStart(7)}ms] ${line}`);
  }

  private fail(invariant: Invariant, message: string): never {
    const v = new Violation(invariant, message);
    this.violation ??= v;
    throw v;
  }

  async run(): Promise<SimResult> {
    try {
      for (const n of this.nodes) await this.start(n);
      this.scheduleProposals();
      if (this.faults) this.scheduleFaults();
      this.scheduleScript();
      await this.runUntil(this.faultPhaseMs);
      this.stopProposals = true;
      this.log('heal: network healed, links reset, crashed nodes restart');
      this.net.heal();
      this.net.clearLinks();
      for (const n of this.nodes) if (!n.alive) await this.start(n);
      await this.barrier();
      await this.awaitConvergence();
      this.checkChain();
      this.checkDurability();
    } catch (error) {
      if (!(error instanceof Violation)) {
        this.violation ??= new Violation(
          'crash',
          `the simulation threw: ${error instanceof Error ? error.stack : String(error)}`,
        );
      }
    }
    for (const n of this.nodes) if (n.alive) n.kill();
    const v = this.violation;
    return {
      seed: this.options.seed,
      ok: v === undefined,
      ...(v
        ? { violation: { invariant: v.invariant, message: v.message, atMs: this.queue.nowMs } }
        : {}),
      nodes: this.ids.length,
      stats: {
        events: this.events,
        virtualMs: this.queue.nowMs,
        proposals: this.proposalSeq,
        acknowledged: this.acknowledged.length,
        rejected: this.rejected,
        instances: this.chosen.size,
        crashes: this.crashes,
        delivered: this.delivered,
      },
      trace: this.trace,
    };
  }

  /** Starts (or restarts) a node over its store. */
  private async start(n: SimNode): Promise<void> {
    n.kill(); // a fresh incarnation
    const incarnation = n.incarnation;
    n.alive = true;
    const recorder = new RecordingStateMachine((instanceId, value) =>
      this.onExecute(n, incarnation, instanceId, value),
    );
    this.log(`start n${n.id} (incarnation ${incarnation})`);
    n.node = await createNode({
      nodeId: n.id,
      cluster: this.ids,
      groups: 1,
      store: n.store,
      network: n.network(incarnation),
      scheduler: n.scheduler(this.queue, incarnation),
      random: new SeededRng(this.options.seed * 7919 + n.id * 131 + incarnation),
      stateMachines: [recorder],
      ...(this.options.trace
        ? {
            logger: (level: string, event: string, fields: Record<string, unknown>) =>
              this.log(`n${n.id} ${level} ${event} ${JSON.stringify(fields)}`),
          }
        : {}),
      ...(this.options.brokenAcceptor || this.options.phxpaxosPromiseReset
        ? {
            unsafeFaults: {
              forgetPromises: this.options.brokenAcceptor ?? false,
              resetPromisePerInstance: this.options.phxpaxosPromiseReset ?? false,
            },
          }
        : {}),
    });
    await settle();
  }

  private onExecute(n: SimNode, incarnation: number, instanceId: number, value: string): void {
    if (n.incarnation !== incarnation) return;
    const mine = n.executed.get(instanceId) ?? [];
    const k = mine.length;
    mine.push(value);
    n.executed.set(instanceId, mine);
    if (!this.proposed.has(value))
      this.fail(
        'validity',
        `n${n.id} executed "${value}" at instance ${instanceId}, which nobody proposed`,
      );
    const global = this.chosen.get(instanceId) ?? [];
    if (k < global.length) {
      if (global[k] !== value) {
        this.fail(
          'agreement',
          `instance ${instanceId} item ${k}: n${n.id} executed "${value}" but another node executed "${global[k]}"`,
        );
      }
    } else {
      global.push(value);
      this.chosen.set(instanceId, global);
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
          `event storm: more than ${MAX_EVENTS_PER_MS} events at ${next} ms without time passing (last: ${this.queue.lastLabel})`,
        );
      }
      this.queue.nowMs = Math.max(this.queue.nowMs, next);
      this.net.setTime(this.queue.nowMs);
      if (nextDelivery !== undefined && nextDelivery <= (nextTimer ?? Infinity)) {
        const d = this.net.deliverNext(this.queue.nowMs);
        if (d !== undefined) {
          this.delivered++;
          if (this.options.trace) this.log(`deliver ${describe(d.from, d.to, d.message)}`);
        }
      } else {
        this.queue.runNext();
      }
      await settle();
      if (this.violation) throw this.violation;
    }
  }

  /**
   * After healing, one more value must get chosen: liveness of proposing, not only of learning.
   * It also drives a value that was chosen but learned by nobody before the crashes (the
   * acceptors hold it; the next instance's prepare finds it) to be learned everywhere.
   */
  private async barrier(): Promise<void> {
    const n = this.nodes[this.rng.int(this.nodes.length)]!;
    const value = 'barrier';
    this.proposed.add(value);
    this.log(`n${n.id} propose "${value}" (after healing)`);
    let done = false;
    let failure: string | undefined;
    n.node!.propose(GROUP, new TextEncoder().encode(value), {
      smId: RECORDER_SM_ID,
      timeoutMs: this.livenessBoundMs,
    }).then(
      (r) => {
        done = true;
        this.acknowledged.push({ instanceId: r.instanceId, value, node: n.id });
        this.log(`n${n.id} "${value}" chosen at instance ${r.instanceId}`);
      },
      (e: { code?: string }) => {
        done = true;
        failure = e.code ?? String(e);
      },
    );
    const deadline = this.queue.nowMs + this.livenessBoundMs;
    while (!done && this.queue.nowMs < deadline)
      await this.runUntil(Math.min(deadline, this.queue.nowMs + 500));
    if (!done || failure !== undefined) {
      this.fail(
        'liveness',
        `no value could be chosen within ${this.livenessBoundMs} ms of healing (${failure ?? 'still pending'})`,
      );
    }
  }

  private async awaitConvergence(): Promise<void> {
    const deadline = this.queue.nowMs + this.livenessBoundMs;
    while (this.queue.nowMs < deadline) {
      await this.runUntil(Math.min(deadline, this.queue.nowMs + 500));
      const statuses = this.nodes.map((n) => n.node!.status(GROUP));
      const stopped = statuses.find((s) => s.stopped !== undefined);
      if (stopped)
        this.fail('liveness', `n${stopped.nodeId} stopped its group: ${stopped.stopped!.message}`);
      const ids = statuses.map((s) => s.instanceId);
      if (
        ids.every((id) => id === ids[0]) &&
        statuses.every(
          (s) => s.committer.queued === 0 && s.committer.inFlightInstanceId === undefined,
        )
      ) {
        this.log(`converged at instance ${ids[0]}`);
        return;
      }
    }
    const summary = this.nodes.map((n) => `n${n.id}@${n.node!.status(GROUP).instanceId}`).join(' ');
    this.fail('liveness', `no convergence ${this.livenessBoundMs} ms after healing: ${summary}`);
  }

  // ---- workload ---------------------------------------------------------------------------

  private scheduleProposals(): void {
    const next = (): void => {
      if (this.stopProposals) return;
      const delay = this.rng.int(150);
      this.queue.at(this.queue.nowMs + delay, () => {
        this.propose();
        next();
      });
    };
    next();
  }

  private propose(): void {
    const alive = this.nodes.filter((n) => n.alive && n.node);
    if (alive.length === 0 || this.stopProposals) return;
    const n = alive[this.rng.int(alive.length)]!;
    const value = `v${++this.proposalSeq}`;
    this.proposed.add(value);
    const batch = this.rng.next() < 0.5;
    this.log(`n${n.id} ${batch ? 'batchPropose' : 'propose'} "${value}"`);
    const bytes = new TextEncoder().encode(value);
    const p: Promise<ProposeResult> = batch
      ? n.node!.batchPropose(GROUP, bytes, { smId: RECORDER_SM_ID, timeoutMs: 8000 })
      : n.node!.propose(GROUP, bytes, { smId: RECORDER_SM_ID, timeoutMs: 8000 });
    const incarnation = n.incarnation;
    p.then(
      (r) => {
        if (n.incarnation !== incarnation) return;
        this.acknowledged.push({ instanceId: r.instanceId, value, node: n.id });
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
      this.queue.at(this.queue.nowMs + delay, () => {
        this.injectFault();
        next();
      });
    };
    next();
  }

  private injectFault(): void {
    const r = this.rng.int(100);
    const pick = (): SimNode => this.nodes[this.rng.int(this.nodes.length)]!;
    if (r < 20) {
      const from = pick().id;
      const to = pick().id;
      if (from === to) return;
      const link = {
        dropRate: this.rng.next() * 0.3,
        delayMs: [1, 1 + this.rng.int(80)] as [number, number],
        duplicateRate: this.rng.next() * 0.1,
        reorderRate: this.rng.next() * 0.3,
      };
      this.log(`link n${from}→n${to} ${JSON.stringify(link)}`);
      this.net.setLink(from, to, link);
    } else if (r < 35) {
      const shuffled = [...this.ids].sort(() => this.rng.next() - 0.5);
      const cut = 1 + this.rng.int(shuffled.length - 1);
      const sides = [shuffled.slice(0, cut), shuffled.slice(cut)];
      this.log(`partition ${JSON.stringify(sides)}`);
      this.net.partition(sides);
    } else if (r < 50) {
      this.log('heal partition');
      this.net.heal();
    } else if (r < 65) {
      const n = pick();
      if (!n.alive) return;
      this.crashes++;
      this.log(`crash n${n.id} (unsynced writes lost)`);
      n.kill();
      n.store.crash();
    } else if (r < 85) {
      const dead = this.nodes.filter((n) => !n.alive);
      if (dead.length === 0) return;
      const n = dead[this.rng.int(dead.length)]!;
      void this.start(n);
    } else if (r < 92) {
      const n = pick();
      const jump = 500 + this.rng.int(5000);
      n.clockOffsetMs += jump;
      this.log(`clock of n${n.id} jumps +${jump} ms`);
    } else {
      this.log('links reset');
      this.net.clearLinks();
    }
  }

  private scheduleScript(): void {
    const { partitionNode, partitionMs } = this.options;
    if (partitionNode === undefined || partitionMs === undefined) return;
    const others = this.ids.filter((id) => id !== partitionNode);
    this.queue.at(partitionMs[0], () => {
      this.log(`partition [[${partitionNode}],[${others.join(',')}]] (scripted)`);
      this.net.partition([[partitionNode], others]);
    });
    this.queue.at(partitionMs[1], () => {
      this.log('heal partition (scripted)');
      this.net.heal();
    });
  }

  // ---- end-of-run invariants --------------------------------------------------------------

  /** Equal checksums wherever two nodes both learned an instance. */
  private checkChain(): void {
    const learned = this.nodes.map((n) => ({ n, now: n.node!.status(GROUP).instanceId }));
    for (let a = 0; a < learned.length; a++) {
      for (let b = a + 1; b < learned.length; b++) {
        const x = learned[a]!;
        const y = learned[b]!;
        const upTo = Math.min(x.now, y.now);
        for (let i = 0; i < upTo; i++) {
          const rx = x.n.store.get(GROUP, i);
          const ry = y.n.store.get(GROUP, i);
          if (rx === undefined || ry === undefined) continue;
          if (rx.checksum !== ry.checksum) {
            this.fail(
              'chain',
              `instance ${i}: checksum ${rx.checksum} on n${x.n.id} but ${ry.checksum} on n${y.n.id}`,
            );
          }
        }
      }
    }
  }

  /** Every acknowledged proposal is, at its instance, in every node's log. */
  private checkDurability(): void {
    for (const ack of this.acknowledged) {
      for (const n of this.nodes) {
        const values = n.executed.get(ack.instanceId) ?? [];
        if (!values.includes(ack.value)) {
          this.fail(
            'durability',
            `"${ack.value}" was acknowledged at instance ${ack.instanceId} by n${ack.node} but n${n.id} has ${JSON.stringify(values)} there`,
          );
        }
      }
    }
  }
}

/** Lets every pending promise (storage writes, loop tasks) run before the next event. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function describe(from: number, to: number, message: Message): string {
  if (message.kind !== 'paxos') return `n${from}→n${to} checkpoint msgType=${message.msg.msgType}`;
  const m = message.msg;
  const parts = [`n${from}→n${to} ${MSG_NAMES[m.msgType] ?? m.msgType} i=${m.instanceId}`];
  if (m.proposalId) parts.push(`b=(${m.proposalId},${m.proposalNodeId || m.nodeId})`);
  if (m.rejectByPromiseId) parts.push(`reject=${m.rejectByPromiseId}`);
  if (m.nowInstanceId) parts.push(`now=${m.nowInstanceId}`);
  if (m.value.length) parts.push(`value=${m.value.length}B`);
  if (m.batch.length) parts.push(`batch=${m.batch.length}`);
  if (m.flag) parts.push(`flag=${m.flag}`);
  return parts.join(' ');
}

export type { GroupStatus };
