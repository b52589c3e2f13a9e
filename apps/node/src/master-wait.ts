// Holding a write while its group has no master this node can send it to (issue 22). Between a
// master's death and the next election (about one lease: the survivors wait the old lease out,
// then elect), the paxos forwarder would answer E_MASTER_UNREACHABLE (503) at once while the
// dead master's lease is live in this node's view, and once it lapsed propose the write here,
// where it duels with the other survivors' writes and the election itself (a duel with a member
// down costs a prepare timeout). etcd holds a proposal the same way until a leader is back. So
// the write waits here, before anything is handed to the proposer, until a master is reachable
// (or this node is master), for at most the hold bound; then it goes on as before. Nothing was
// proposed while it waited: a stop meanwhile answers it 503 (not applied), and the write's
// deadline is its own as before (the wait is taken out of the proposal's timeout).
import type { PaxosNode } from './stack';

/**
 * How often a held write's group is looked at again besides the master-change events (a lapsed
 * lease renewed by the same master, a master reachable again: no change event for those).
 */
export const MASTER_WAIT_CHECK_MS = 5;

export interface MasterWaitCounters {
  /** Writes and barriers that waited for a master. */
  held: number;
  /** Of those, the ones released by a master (not by the bound or a stop). */
  released: number;
  /** Of those, the ones whose hold bound ran out first (they went on as without the hold). */
  boundReached: number;
}

export interface MasterWaitPort {
  readonly nodeId: number;
  readonly paxos: Pick<PaxosNode, 'getMaster' | 'isMaster' | 'hasQuorum'>;
  /** The transport's view of a peer (TcpNetwork.reachable). */
  reachable(nodeId: number): boolean;
  /** True once the node stops (held writes are let go at once, to be refused 503). */
  isStopping(): boolean;
}

interface Waiter {
  group: number;
  untilMs: number;
  resolve: () => void;
}

export class MasterWait {
  readonly counters: MasterWaitCounters = { held: 0, released: 0, boundReached: 0 };
  private readonly waiters = new Set<Waiter>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly port: MasterWaitPort) {}

  /**
   * Whether a write of group g can go on now: this node is master, or a master's lease is live
   * here and the master is reachable, or a majority is unreachable (refused E_NO_QUORUM at once).
   */
  ready(g: number): boolean {
    const { paxos } = this.port;
    if (paxos.isMaster(g) || !paxos.hasQuorum(g)) return true;
    const master = paxos.getMaster(g);
    return (
      master !== undefined &&
      master.nodeId !== this.port.nodeId &&
      this.port.reachable(master.nodeId)
    );
  }

  /**
   * Resolves once ready(g), the node stops, or `boundMs` passed; never rejects. Undefined when
   * there is nothing to wait for (the common case: a write's path takes no extra turn).
   */
  wait(g: number, boundMs: number): Promise<void> | undefined {
    if (this.port.isStopping() || this.ready(g)) return undefined;
    this.counters.held++;
    return new Promise((resolve) => {
      this.waiters.add({ group: g, untilMs: performance.now() + boundMs, resolve });
      this.arm();
    });
  }

  /** A group's master changed (onMasterChange): its held writes may go. */
  masterChanged(): void {
    this.check();
  }

  /** The node stops: every held write goes on to be refused (E_STOPPING, nothing proposed). */
  stop(): void {
    this.check();
  }

  private check(): void {
    const now = performance.now();
    const ready = new Map<number, boolean>();
    for (const w of this.waiters) {
      let r = ready.get(w.group);
      if (r === undefined) ready.set(w.group, (r = this.ready(w.group)));
      if (!r && !this.port.isStopping() && now < w.untilMs) continue;
      this.waiters.delete(w);
      if (r) this.counters.released++;
      else if (!this.port.isStopping()) this.counters.boundReached++;
      w.resolve();
    }
    if (this.waiters.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private arm(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => this.check(), MASTER_WAIT_CHECK_MS);
    this.timer.unref();
  }
}
