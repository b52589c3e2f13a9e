// The scripted scenarios (named by SimOptions, run as golden traces by scenarios.test.ts): a
// partition at fixed times, a lease holder that applies its own renewal late, and the planted
// unhandled rejection. Unlike faults.ts they draw nothing from the seed: they happen as written.
import { MASTER_SM_ID, unpackValue } from '@tspaxos/paxos/internal';
import { type MemoryNetwork, type Message, PaxosMsgType } from '@tspaxos/transport';
import type { EventQueue } from './event-queue';
import { LATE_OWN_APPLY_DELAY_MS, LATE_OWN_APPLY_FROM_MS, type SimOptions } from './options';
import type { SimNode } from './sim-node';

/** What the scripts need of the simulation. */
export interface ScriptsPort {
  options: SimOptions;
  queue: EventQueue;
  net: MemoryNetwork;
  nodes: readonly SimNode[];
  /** The master lease of an election seed (undefined: no elections). */
  leaseMs: number | undefined;
  log: (line: string) => void;
  /** A client's register write (the workload's). */
  registerWrite: (n: SimNode, group: number) => void;
}

export class Scripts {
  private readonly options: SimOptions;
  private readonly queue: EventQueue;
  private readonly net: MemoryNetwork;
  private readonly nodes: readonly SimNode[];
  private readonly leaseMs: number | undefined;
  private readonly log: (line: string) => void;
  private readonly registerWrite: (n: SimNode, group: number) => void;

  constructor(h: ScriptsPort) {
    this.options = h.options;
    this.queue = h.queue;
    this.net = h.net;
    this.nodes = h.nodes;
    this.leaseMs = h.leaseMs;
    this.log = h.log;
    this.registerWrite = h.registerWrite;
  }

  /** The scripted partition (SimOptions.partitionNode, partitionMs). */
  partition(): void {
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

  /** The lateOwnApply scenario (SimOptions.lateOwnApply). */
  lateOwnApply(): void {
    const leaseMs = this.leaseMs;
    if (leaseMs === undefined) throw new Error('lateOwnApply needs master elections');
    let fired = false;
    const isRenewal = (message: Message): boolean =>
      message.kind === 'paxos' &&
      message.msg.msgType === PaxosMsgType.Accept &&
      unpackValue(message.msg.value).some((item) => item.smId === MASTER_SM_ID);
    for (const n of this.nodes) {
      n.onSend = (_to, group, message) => {
        if (fired || this.queue.nowMs < LATE_OWN_APPLY_FROM_MS) return;
        if (n.node?.isMaster(group) !== true || message.kind !== 'paxos' || !isRenewal(message))
          return;
        fired = true;
        const others = this.nodes.filter((o) => o.voting && o.id !== n.id);
        const renewals = (): number => n.node!.status(group).masterElection.counters.renewals;
        const before = renewals();
        this.log(
          `n${n.id} g${group} renewal Accept i=${message.msg.instanceId} sent: links into it slowed by ${LATE_OWN_APPLY_DELAY_MS} ms (scripted)`,
        );
        for (const o of others)
          this.net.setLink(o.id, n.id, {
            delayMs: [LATE_OWN_APPLY_DELAY_MS, LATE_OWN_APPLY_DELAY_MS],
          });
        this.queue.at(this.queue.nowMs + 1, () => this.registerWrite(others[0]!, group), 'write');
        const incarnation = n.incarnation;
        const watch = (): void => {
          if (!n.isLive(incarnation)) return;
          if (renewals() === before) {
            this.queue.at(this.queue.nowMs + 1, watch, 'watch the late apply');
            return;
          }
          this.log(`n${n.id} applied its renewal late: cut off (scripted)`);
          this.net.clearLinks();
          this.net.partition([[n.id], this.nodes.filter((o) => o.id !== n.id).map((o) => o.id)]);
          this.queue.at(
            this.queue.nowMs + 3 * leaseMs,
            () => {
              this.log('heal partition (scripted)');
              this.net.heal();
            },
            'scripted heal',
          );
        };
        watch();
      };
    }
  }

  /** Planted bug of the simulator's own guard: a promise rejected with no handler. */
  unhandledRejection(): void {
    this.queue.at(
      1000,
      () => {
        void Promise.reject(new Error('planted: a rejection nobody handles'));
      },
      'planted unhandled rejection',
    );
  }
}
