// A simulated node across its incarnations: its clock, its store (fenced per incarnation), its
// network endpoint (silent once the incarnation dies), its timers, and what its acceptors replied
// (checked against the durable log when it crashes). Simulation starts and crashes it.
import type { PaxosNode, Scheduler } from '@tspaxos/paxos';
import type { LogStore, MemoryLogStore } from '@tspaxos/storage';
import { type Message, type Network, type PaxosMsg, PaxosMsgType } from '@tspaxos/transport';
import type { EventQueue } from './event-queue';

/** A node's clock: offset, drift (rate) and jumps, as a piecewise-linear map of virtual time. */
export class NodeClock {
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

export interface AcceptorReply {
  group: number;
  instanceId: number;
  /** [proposalId, proposer node id] */
  ballot: [number, number];
  accepted: boolean;
}

export function compareBallot(a: readonly [number, number], b: readonly [number, number]): number {
  return a[0] - b[0] || a[1] - b[1];
}

/** One simulated node across its incarnations (a crash ends one, a restart begins the next). */
export class SimNode {
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
  /**
   * What this incarnation's acceptors told proposers, per `group:instance`: the highest ballot
   * promised or accepted in a reply, and whether a value was accepted. Checked against the
   * durable log when the incarnation crashes.
   */
  replies = new Map<string, AcceptorReply>();
  /** Sees every message this node sends (a scripted scenario's trigger). */
  onSend: ((to: number, group: number, message: Message) => void) | undefined;
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

  /** Values the current incarnation executed at an instance (the durability check). */
  executedAt(group: number, instanceId: number): readonly string[] {
    return this.executed[group]?.get(instanceId) ?? [];
  }

  isLive(incarnation: number): boolean {
    return this.alive && this.incarnation === incarnation;
  }

  /** A network that goes silent when this incarnation dies. */
  network(incarnation: number): Network {
    return {
      send: (to, group, message) => {
        if (!this.isLive(incarnation)) return;
        if (message.kind === 'paxos') this.noteReply(to, group, message.msg);
        this.onSend?.(to, group, message);
        this.endpoint.send(to, group, message);
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

  /** Remembers a PrepareReply or AcceptReply that promised or accepted (not a rejection). */
  private noteReply(to: number, group: number, m: PaxosMsg): void {
    const accept = m.msgType === PaxosMsgType.AcceptReply;
    if ((!accept && m.msgType !== PaxosMsgType.PrepareReply) || m.rejectByPromiseId !== 0) return;
    const key = `${group}:${m.instanceId}`;
    // The ballot is the proposer's: its proposal id, and the node the reply goes to.
    const ballot: [number, number] = [m.proposalId, to];
    const r = this.replies.get(key);
    if (r === undefined)
      this.replies.set(key, { group, instanceId: m.instanceId, ballot, accepted: accept });
    else {
      if (compareBallot(ballot, r.ballot) > 0) r.ballot = ballot;
      r.accepted ||= accept;
    }
  }

  kill(): void {
    this.alive = false;
    this.replies = new Map();
    this.incarnation++;
    for (const cancel of this.timers) cancel();
    this.timers.clear();
    this.handler = undefined;
    this.node = undefined;
    this.executed = [];
    this.checkedUpTo = [];
  }
}
