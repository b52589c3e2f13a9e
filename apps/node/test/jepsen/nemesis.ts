// The nemesis of a fault run: on a seeded random schedule, one fault at a time, each healed
// before the next: SIGKILL and restart, SIGTERM and restart, SIGSTOP for longer than the master
// lease then SIGCONT, one-way cuts (a node that cannot send, or cannot hear, or one link) and a
// node isolated both ways. The first faults go through every kind once, in a seeded order.
import type { RandomSource } from '@tspaxos/core';
import type { LinkTable } from './proxy';

export const FAULT_KINDS = [
  'kill',
  'terminate',
  'pause',
  'partition-one-way',
  'partition-two-way',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface Fault {
  kind: FaultKind;
  node: number;
  /** What exactly: the links cut, how long the pause was … */
  detail: string;
  startMs: number;
  endMs?: number;
}

/** What the nemesis acts on (the run's cluster). */
export interface NemesisTarget {
  nodeIds: number[];
  links: LinkTable;
  /** Signals a node and waits for it to exit (SIGKILL after `deadlineMs` if it does not). */
  stop(id: number, signal: 'SIGKILL' | 'SIGTERM'): Promise<{ forced: boolean }>;
  /** Starts a stopped node and waits until it answers. */
  restart(id: number): Promise<void>;
  signal(id: number, signal: 'SIGSTOP' | 'SIGCONT'): void;
  /** The master of group 0 in some live node's view. */
  master(): Promise<number | undefined>;
  now(): number;
}

export interface NemesisTimes {
  /** The master lease: a pause lasts longer. */
  leaseMs: number;
  /** Quiet time between two faults: [min, min + spread). */
  gapMinMs: number;
  gapSpreadMs: number;
  /** How long a cut or a kill lasts: [min, min + spread). */
  holdMinMs: number;
  holdSpreadMs: number;
}

/** The short run's times (ours: a 2 s lease, faults of 1.5–4.5 s, 1–2.5 s apart). */
export const DEFAULT_TIMES: Omit<NemesisTimes, 'leaseMs'> = {
  gapMinMs: 1000,
  gapSpreadMs: 1500,
  holdMinMs: 1500,
  holdSpreadMs: 3000,
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Nemesis {
  readonly counts: Record<FaultKind, number> = {
    kill: 0,
    terminate: 0,
    pause: 0,
    'partition-one-way': 0,
    'partition-two-way': 0,
  };
  readonly faults: Fault[] = [];
  /** SIGTERMs the node did not answer by exiting in time (it was SIGKILLed). */
  terminateTimeouts = 0;
  private readonly firstRound: FaultKind[];

  constructor(
    private readonly target: NemesisTarget,
    private readonly rng: RandomSource,
    private readonly times: NemesisTimes,
  ) {
    // Every kind once first, in a seeded order (Fisher–Yates).
    const kinds = [...FAULT_KINDS];
    for (let i = kinds.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
    }
    this.firstRound = kinds;
  }

  /** Every kind injected at least once. */
  get coveredAll(): boolean {
    return FAULT_KINDS.every((k) => this.counts[k] > 0);
  }

  /** Injects faults until `stop()`; each fault is healed before the next starts. */
  async run(stop: () => boolean): Promise<void> {
    while (!stop()) {
      await sleep(this.times.gapMinMs + this.rng.int(this.times.gapSpreadMs));
      if (stop()) return;
      const kind = this.firstRound.shift() ?? FAULT_KINDS[this.rng.int(FAULT_KINDS.length)]!;
      await this.inject(kind);
    }
  }

  private hold(): number {
    return this.times.holdMinMs + this.rng.int(this.times.holdSpreadMs);
  }

  private pick<T>(items: T[]): T {
    return items[this.rng.int(items.length)]!;
  }

  private async inject(kind: FaultKind): Promise<void> {
    const t = this.target;
    const ids = t.nodeIds;
    const fault: Fault = { kind, node: this.pick(ids), detail: '', startMs: t.now() };
    this.faults.push(fault);
    this.counts[kind]++;
    switch (kind) {
      case 'kill':
      case 'terminate': {
        const signal = kind === 'kill' ? 'SIGKILL' : 'SIGTERM';
        const downMs = 500 + this.rng.int(2000);
        // Most SIGTERMs come after the node stopped hearing its peers for a moment: its
        // proposals are out but unanswered when it stops (issue 17 finding 8: answered 503).
        const deaf = kind === 'terminate' && this.rng.next() < 0.75;
        // A deaf node's proposals leave only if it skips the prepare phase, which the master,
        // proposing its renewals, is the likeliest to do: a deaf SIGTERM goes to it when known.
        const master = deaf ? await t.master() : undefined;
        if (master !== undefined) fault.node = master;
        const inbound = ids.filter((o) => o !== fault.node).map((o) => t.links.get(o, fault.node));
        const deafMs = 1000 + this.rng.int(1500);
        if (deaf) {
          for (const link of inbound) link.setCut(true);
          await sleep(deafMs);
        }
        const { forced } = await t.stop(fault.node, signal);
        if (deaf) for (const link of inbound) link.setCut(false);
        if (forced) this.terminateTimeouts++;
        fault.detail = `${deaf ? `deaf ${deafMs} ms${master !== undefined ? ' (the master)' : ''}, then ` : ''}${signal}${forced ? ' (then SIGKILL: no exit in time)' : ''}, down ${downMs} ms`;
        await sleep(downMs);
        await t.restart(fault.node);
        break;
      }
      case 'pause': {
        // The master, when one is known: a paused master outlives its lease and wakes up.
        const master = await t.master();
        if (master !== undefined) fault.node = master;
        const pauseMs = this.times.leaseMs + 500 + this.rng.int(this.times.leaseMs);
        fault.detail = `SIGSTOP ${pauseMs} ms${master !== undefined ? ' (the master)' : ''}`;
        t.signal(fault.node, 'SIGSTOP');
        await sleep(pauseMs);
        t.signal(fault.node, 'SIGCONT');
        break;
      }
      case 'partition-one-way': {
        const others = ids.filter((id) => id !== fault.node);
        const shape = this.rng.int(3);
        const cut =
          shape === 0
            ? others.map((o) => [fault.node, o] as const) // it cannot send
            : shape === 1
              ? others.map((o) => [o, fault.node] as const) // it cannot hear
              : [[fault.node, this.pick(others)] as const]; // one link
        await this.cutFor(fault, cut);
        break;
      }
      case 'partition-two-way': {
        const others = ids.filter((id) => id !== fault.node);
        await this.cutFor(
          fault,
          others.flatMap((o) => [[fault.node, o] as const, [o, fault.node] as const]),
        );
        break;
      }
      default: {
        const never: never = kind;
        throw new Error(`unknown fault ${String(never)}`);
      }
    }
    fault.endMs = t.now();
  }

  private async cutFor(fault: Fault, links: (readonly [number, number])[]): Promise<void> {
    const holdMs = this.hold();
    fault.detail = `cut ${links.map(([a, b]) => `${a}->${b}`).join(' ')} for ${holdMs} ms`;
    for (const [a, b] of links) this.target.links.get(a, b).setCut(true);
    await sleep(holdMs);
    for (const [a, b] of links) this.target.links.get(a, b).setCut(false);
  }
}
