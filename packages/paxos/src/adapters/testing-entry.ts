// `@tspaxos/paxos/testing`: a cluster in one process on virtual time, for testing state machines
// the way hashicorp/raft's MakeCluster and etcd's rafttest let theirs be tested. Every node runs
// on one MemoryNetwork (partitions, one-way cuts, lossy or slow links: its API) and a
// MemoryLogStore, with timers and deliveries on one virtual clock: whenever the event loop is
// idle (a setImmediate turn, every promise settled) the world delivers what is due or jumps to
// the next timer or delivery. A test waits for conditions, never for the real clock, so a loaded
// machine cannot fail it, and a seed replays the same run.
import { type DurabilityPort, type LogStore, MemoryLogStore } from '@tspaxos/storage';
import { type Message, MemoryNetwork, type Network } from '@tspaxos/transport';
import { PaxosError } from '../errors';
import { type Machines, type NodeHandle, nodeHandle } from '../facade';
import { type PaxosNode, startNode } from '../node';
import type { PaxosOptionsInput } from '../options';
import { type Scheduler, SeededRandomSource } from '@tspaxos/core';
import type { StateMachine } from '../state-machine';

export type { GroupHandle, Machines, NodeHandle } from '../facade';

interface Timer {
  atMs: number;
  seq: number;
  fn: () => void;
  live: boolean;
}

/**
 * A virtual clock, its timers and a MemoryNetwork delivering on it. With `autoRun` (the default)
 * time moves by itself whenever the process is idle; without, only advance() moves it.
 */
export class VirtualWorld {
  nowMs = 0;
  readonly net: MemoryNetwork;
  private timers: Timer[] = [];
  private seq = 0;
  private running: boolean;

  constructor(opts: { seed?: number; autoRun?: boolean; maxFrameBytes?: number } = {}) {
    this.net = new MemoryNetwork({
      rng: new SeededRandomSource(opts.seed ?? 1),
      ...(opts.maxFrameBytes !== undefined ? { maxFrameBytes: opts.maxFrameBytes } : {}),
    });
    this.running = opts.autoRun ?? true;
    if (this.running) {
      const turn = (): void => {
        if (!this.running) return;
        this.step();
        setImmediate(turn);
      };
      setImmediate(turn);
    }
  }

  readonly scheduler: Scheduler = {
    now: () => this.nowMs,
    schedule: (delayMs, fn) => this.at(this.nowMs + Math.max(0, delayMs), fn),
  };

  /**
   * Sees every message a node sends through `endpoint()`, before the network takes it; returning
   * false drops it (counted in `sendsDropped`). Tests script the network here: hold a reply, cut a
   * node off the moment it sent something.
   */
  onSend: ((from: number, to: number, message: Message, group: number) => boolean) | undefined;
  /** Messages `onSend` dropped. */
  sendsDropped = 0;

  /** Node `nodeId`'s endpoint on this world's network, its sends seen by `onSend`. */
  endpoint(nodeId: number): Network {
    const inner = this.net.endpoint(nodeId);
    return {
      send: (to, group, message) => {
        if (this.onSend !== undefined && !this.onSend(nodeId, to, message, group)) {
          this.sendsDropped++;
          return;
        }
        inner.send(to, group, message);
      },
      onMessage: (handler) => inner.onMessage(handler),
      close: () => inner.close(),
      // The node sizes its values and forwarding batches by it (it was lost here before).
      ...(inner.maxFrameBytes !== undefined ? { maxFrameBytes: inner.maxFrameBytes } : {}),
      ...(inner.reachable !== undefined ? { reachable: (to: number) => inner.reachable!(to) } : {}),
    };
  }

  /** Runs `fn` at virtual time `atMs` (now, if that has passed); returns its cancel. */
  at(atMs: number, fn: () => void): () => void {
    const timer = { atMs: Math.max(atMs, this.nowMs), seq: this.seq++, fn, live: true };
    this.timers.push(timer);
    return () => {
      timer.live = false;
    };
  }

  /** An fsync port on this clock (MemoryLogStore's `durability`); failNext() fails the next fsync. */
  disk(fsyncDelayMs = 1): DurabilityPort & { failNext: () => void } {
    let failNext = false;
    return {
      schedule: (delayMs, fn) => void this.scheduler.schedule(delayMs, fn),
      fsyncDelayMs: () => fsyncDelayMs,
      fsyncFails: () => {
        const fail = failNext;
        failNext = false;
        return fail;
      },
      failNext: () => {
        failNext = true;
      },
    };
  }

  /** Resolves once `cond` holds; fails after `virtualMs` of virtual time (autoRun worlds). */
  async until(cond: () => boolean, virtualMs = 60_000): Promise<void> {
    const deadline = this.nowMs + virtualMs;
    while (!cond()) {
      if (this.nowMs > deadline)
        throw new Error(`condition not met within ${virtualMs} virtual ms`);
      if (!this.running) this.step();
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Lets `virtualMs` of virtual time pass (autoRun worlds). */
  sleep(virtualMs: number): Promise<void> {
    const at = this.nowMs + virtualMs;
    return this.until(() => this.nowMs >= at, virtualMs + 1);
  }

  /**
   * Runs every timer and delivery due within the next `ms`, one at a time in time order with an
   * event-loop turn between them, then sets the clock to the end (worlds without autoRun).
   */
  async advance(ms: number): Promise<void> {
    const end = this.nowMs + ms;
    for (;;) {
      await new Promise((resolve) => setImmediate(resolve));
      if (!this.runNext(end)) break;
    }
    this.nowMs = end;
    this.net.setTime(end);
    await new Promise((resolve) => setImmediate(resolve));
  }

  /** When the next timer or delivery is due (undefined: nothing is waiting). */
  nextEventAt(): number | undefined {
    const next = Math.min(
      this.nextTimer()?.atMs ?? Infinity,
      this.net.nextDeliveryAt() ?? Infinity,
    );
    return next === Infinity ? undefined : next;
  }

  /**
   * Runs the next timer or delivery if it is due by `endMs` (a delivery first when both are due
   * at once), moving the clock to it; false if none is. For worlds without autoRun whose test
   * checks something after every event (advance() is this in a loop).
   */
  runNext(endMs: number): boolean {
    const timer = this.nextTimer();
    const frameAt = this.net.nextDeliveryAt();
    const next = Math.min(timer?.atMs ?? Infinity, frameAt ?? Infinity);
    if (next > endMs || next === Infinity) return false;
    this.nowMs = Math.max(this.nowMs, next);
    this.net.setTime(this.nowMs);
    if (frameAt !== undefined && frameAt <= (timer?.atMs ?? Infinity)) {
      this.net.deliverNext(this.nowMs);
    } else if (timer !== undefined) {
      timer.live = false;
      timer.fn();
    }
    return true;
  }

  /** Stops the automatic clock (the world's timers stay where they are). */
  close(): void {
    this.running = false;
  }

  private nextTimer(): Timer | undefined {
    this.timers = this.timers.filter((t) => t.live);
    this.timers.sort((x, y) => x.atMs - y.atMs || x.seq - y.seq);
    return this.timers[0];
  }

  /** Runs what is due now; if nothing is, moves the clock to the next event. */
  private step(): void {
    const timer = this.nextTimer();
    const delivery = this.net.nextDeliveryAt();
    const next = Math.min(timer?.atMs ?? Infinity, delivery ?? Infinity);
    if (next === Infinity) return;
    this.nowMs = Math.max(this.nowMs, next);
    this.net.setTime(this.nowMs);
    if (this.net.deliverDue(this.nowMs) > 0) return;
    if (timer !== undefined && timer.atMs <= this.nowMs) {
      timer.live = false;
      timer.fn();
    }
  }
}

interface TestClusterBase extends PaxosOptionsInput {
  /** Voting members: a count (ids 1 … n) or the ids. Default 3. */
  members?: number | readonly number[];
  /** Groups per node (default 1). */
  groups?: number;
  /** Seeds the network's faults and each node's randomness (default 1). */
  seed?: number;
  /** Run master elections in every group (default false). */
  masterElection?: boolean;
}

export interface TestClusterOptionsSingle extends TestClusterBase {
  /** A new state machine for each node and group (each node applies into its own copy). */
  stateMachine: (nodeId: number, group: number) => StateMachine;
  stateMachines?: never;
}

export interface TestClusterOptionsSeveral extends TestClusterBase {
  stateMachines: (nodeId: number, group: number) => readonly StateMachine[];
  stateMachine?: never;
}

export interface TestCluster<M extends Machines> {
  readonly world: VirtualWorld;
  /** The network: partition(), cutOneWay(), heal(), setLink() (MemoryNetwork). */
  readonly net: MemoryNetwork;
  /** The running nodes, in member order (a stopped node's entry is its last handle). */
  readonly nodes: NodeHandle<M>[];
  /** The node with this id. */
  node(nodeId: number): NodeHandle<M>;
  /** The node's log (kept across restart). */
  store(nodeId: number): LogStore;
  /** Stops a node (a crash with its log kept: MemoryLogStore holds what was written). */
  stopNode(nodeId: number): Promise<void>;
  /** Starts a stopped node again on its log, with new state machines (a restarted process). */
  restartNode(nodeId: number): Promise<NodeHandle<M>>;
  /** Waits (in virtual time) until every running node has applied what `nodeId` has. */
  converged(virtualMs?: number): Promise<void>;
  /** Stops every node and the clock. */
  stop(): Promise<void>;
}

/** Starts a cluster of nodes on one virtual clock and network (see VirtualWorld). */
export function createTestCluster(opts: TestClusterOptionsSingle): Promise<TestCluster<'single'>>;
export function createTestCluster(opts: TestClusterOptionsSeveral): Promise<TestCluster<'several'>>;
export async function createTestCluster(
  opts: TestClusterOptionsSingle | TestClusterOptionsSeveral,
): Promise<TestCluster<Machines>> {
  const {
    members: membersOption = 3,
    groups = 1,
    seed = 1,
    masterElection = false,
    stateMachine,
    stateMachines,
    ...options
  } = opts;
  const ids =
    typeof membersOption === 'number'
      ? Array.from({ length: membersOption }, (_, i) => i + 1)
      : [...membersOption];
  if ((stateMachine === undefined) === (stateMachines === undefined))
    throw new PaxosError('E_BAD_ARGUMENT', 'give exactly one of stateMachine and stateMachines');
  const machinesOf = (id: number, g: number): readonly StateMachine[] =>
    stateMachine !== undefined ? [stateMachine(id, g)] : stateMachines!(id, g);
  const world = new VirtualWorld({ seed });
  const stores = new Map<number, LogStore>(ids.map((id) => [id, new MemoryLogStore()]));
  const cores = new Map<number, PaxosNode>();
  const handles = new Map<number, NodeHandle<Machines>>();
  const start = async (id: number): Promise<NodeHandle<Machines>> => {
    const perGroup = Array.from({ length: groups }, (_, g) => machinesOf(id, g));
    const core = await startNode({
      nodeId: id,
      cluster: ids,
      groups,
      store: stores.get(id)!,
      network: world.endpoint(id),
      scheduler: world.scheduler,
      random: new SeededRandomSource(seed * 1000 + id),
      stateMachines: (g) => perGroup[g]!,
      masterElection,
      options,
    });
    cores.set(id, core);
    // The store outlives a stop (a restart reads it); the endpoint is the node's, closed with it.
    const handle = nodeHandle(core, {
      ownsStore: false,
      ownsNetwork: true,
      machines: (g) => perGroup[g]!,
      scheduler: world.scheduler,
    });
    handles.set(id, handle);
    return handle;
  };
  for (const id of ids) await start(id);
  const running = new Set(ids);
  const cluster: TestCluster<Machines> = {
    world,
    net: world.net,
    get nodes() {
      return ids.map((id) => handles.get(id)!);
    },
    node(nodeId) {
      const handle = handles.get(nodeId);
      if (handle === undefined)
        throw new PaxosError('E_BAD_ARGUMENT', `no node ${nodeId} in the cluster`);
      return handle;
    },
    store: (nodeId) => stores.get(nodeId)!,
    async stopNode(nodeId) {
      running.delete(nodeId);
      await cluster.node(nodeId).stop();
    },
    async restartNode(nodeId) {
      if (running.has(nodeId))
        throw new PaxosError('E_BAD_ARGUMENT', `node ${nodeId} is running: stop it first`);
      running.add(nodeId);
      return start(nodeId);
    },
    async converged(virtualMs = 60_000) {
      const live = [...running].map((id) => cores.get(id)!);
      await world.until(
        () =>
          Array.from({ length: groups }, (_, g) => g).every((g) => {
            const top = Math.max(...live.map((n) => n.instanceId(g)));
            return live.every((n) => n.instanceId(g) === top);
          }),
        virtualMs,
      );
    },
    async stop() {
      for (const id of [...running]) await cluster.stopNode(id);
      world.close();
    },
  };
  return cluster;
}
