// The single-master invariant, after every event of an election seed: at most one live node
// believes it holds a group's lease. A belief begins only at an event (an operation applies), so
// checking at event instants sees every overlap. It also counts what the leases did, as this check
// sees them (coverage), and remembers when a member first held each lease after the heal (master
// liveness).
import type { PathKind } from '../coverage';
import type { SimNode } from '../sim-node';
import type { StaleLeaseChecker } from './stale-lease';

export interface SingleMasterDeps {
  nodes: readonly SimNode[];
  groups: number;
  nowMs: () => number;
  /** Virtual time of the heal (undefined: still in the fault phase). */
  healedAtMs: () => number | undefined;
  staleLease: StaleLeaseChecker;
  paths: Record<PathKind, number>;
  log: (line: string) => void;
  /** Records the violation and throws. */
  fail: (message: string) => never;
  eventName: () => string;
}

export class SingleMasterChecker {
  /** group → node id → the lease that node held at the last check. */
  private readonly leases: Array<Map<number, { incarnation: number; expiresAtMs: number }>> = [];
  /** group → the last node seen holding its lease, and whether it crashed while holding it. */
  private readonly lastHolder: Array<{ nodeId: number; crashed: boolean } | undefined> = [];
  /** group → first virtual time after healing at which a member held the lease. */
  readonly heldAfterHeal: Array<number | undefined> = [];

  constructor(private readonly d: SingleMasterDeps) {
    for (let g = 0; g < d.groups; g++) {
      this.leases.push(new Map());
      this.lastHolder.push(undefined);
      this.heldAfterHeal.push(undefined);
    }
  }

  /** After every event (and at a master-liveness deadline). */
  observe(_event: { kind: 'event' }): void {
    const { nodes, paths } = this.d;
    for (let g = 0; g < this.d.groups; g++) {
      const seen = this.leases[g]!;
      let holder: { n: SimNode; version: number; expiresAtMs: number } | undefined;
      for (const n of nodes) {
        const info = n.alive && n.node?.isMaster(g) === true ? n.node.getMaster(g) : undefined;
        const held = seen.get(n.id);
        if (held !== undefined && (info === undefined || held.incarnation !== n.incarnation)) {
          seen.delete(n.id);
          this.leaseEnded(g, n, held);
        }
        if (info === undefined) continue;
        this.d.staleLease.observe({
          kind: 'lease-held',
          group: g,
          nodeId: n.id,
          version: info.version,
        });
        if (holder !== undefined)
          this.d.fail(
            `group ${g}: n${holder.n.id} (version ${holder.version}, lease until ${holder.expiresAtMs.toFixed(1)} on its clock, now ${holder.n.clock.now(this.d.nowMs()).toFixed(1)}) and n${n.id} (version ${info.version}, until ${info.expiresAtMs.toFixed(1)}, now ${n.clock.now(this.d.nowMs()).toFixed(1)}) both hold the master lease (after event "${this.d.eventName()}")`,
          );
        holder = { n, version: info.version, expiresAtMs: info.expiresAtMs };
        const before = seen.get(n.id);
        if (before === undefined) this.leaseBegan(g, n, info.version);
        else if (info.expiresAtMs > before.expiresAtMs) paths['master-renewals']++;
        seen.set(n.id, { incarnation: n.incarnation, expiresAtMs: info.expiresAtMs });
      }
      if (
        holder !== undefined &&
        this.d.healedAtMs() !== undefined &&
        this.heldAfterHeal[g] === undefined &&
        holder.n.node!.status(g).members.includes(holder.n.id)
      )
        this.heldAfterHeal[g] = this.d.nowMs();
    }
  }

  finish(): void {}

  private leaseBegan(g: number, n: SimNode, version: number): void {
    const paths = this.d.paths;
    paths['master-elections']++;
    const last = this.lastHolder[g];
    if (last !== undefined && last.nodeId !== n.id) {
      paths['master-changes']++;
      if (last.crashed) paths['master-changes-after-crash']++;
    }
    this.lastHolder[g] = { nodeId: n.id, crashed: false };
    this.d.log(`n${n.id} holds the master lease of group ${g} (version ${version})`);
  }

  /** Why a lease the last check saw is gone: a crash, its end on the holder's clock, or a drop. */
  private leaseEnded(
    g: number,
    n: SimNode,
    held: { incarnation: number; expiresAtMs: number },
  ): void {
    let why: string;
    if (!n.alive || n.incarnation !== held.incarnation) {
      why = 'crashed';
      this.lastHolder[g] = { nodeId: n.id, crashed: true };
    } else if (n.node === undefined || n.node.status(g).stopped !== undefined) {
      why = 'group stopped';
    } else if (n.clock.now(this.d.nowMs()) >= held.expiresAtMs) {
      why = 'expired';
      this.d.paths['master-expiries']++;
    } else if ((n.node.getMaster(g)?.nodeId ?? n.id) !== n.id) {
      // Another node's operation applied here while my lease was live: that node proposed after
      // its view of my lease ended, so mine outlived it (the clock bound makes this impossible).
      const other = n.node.getMaster(g)!;
      this.d.fail(
        `group ${g}: n${n.id} still held the master lease (until ${held.expiresAtMs.toFixed(1)} on its clock, now ${n.clock.now(this.d.nowMs()).toFixed(1)}) when n${other.nodeId}'s election (version ${other.version}) applied there (after event "${this.d.eventName()}")`,
      );
    } else {
      why = 'dropped';
      this.d.paths['master-drops']++;
    }
    this.d.log(`n${n.id} no longer holds the master lease of group ${g}: ${why}`);
  }
}
