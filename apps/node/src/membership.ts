// Membership changes of a running server (POST /admin/members) and what follows from them on
// every node: the transport learns new nodes' addresses and forgets (and refuses) removed ones.
// Group 0's membership is the authority; the other groups are brought to it, so a change that
// stopped half-way (a timeout in group 2) is finished by the next one.
import type { Logger as PinoLogger } from 'pino';
import { parseAddress } from './args';
import { ServerError } from './errors';
import { fromPaxos, settle } from './http/errors';
import {
  decodeMeta,
  encodeMeta,
  entries,
  isMembership,
  type MemberEntry,
  type MemberRequest,
  type Membership,
  membershipOf,
  type NodeAddresses,
  planChange,
} from './members';
import {
  MEMBER_REMOVAL_GRACE_MS,
  MEMBERSHIP_CHANGE_ATTEMPTS,
  PROPOSE_TIMEOUT_MS,
  SELF_MEMBERSHIP_POLL_MS,
  SELF_MEMBERSHIP_WAIT_MS,
} from './options';
import { PaxosError, type PaxosNode, type TcpNetwork } from './stack';

/** GET /admin/members, and the answer to a change. */
export interface MembersView {
  nodeId: number;
  /** Group 0's membership version (every change adds one). */
  version: number;
  nodes: (MemberEntry & { self: boolean })[];
  groups: { group: number; version: number; voters: number[] }[];
  /** Every group has group 0's voters and addresses (false while a change is half-way). */
  consistent: boolean;
  /** This node was in the membership and is not any more: it sends nothing and refuses its peers. */
  removed: boolean;
  counters: MembershipCounters;
}

export interface MembershipCounters {
  /** Membership values this node proposed (one per group changed). */
  changesProposed: number;
  /** Of those, the ones that lost to another change of the same version (then retried). */
  conflicts: number;
  /** Peers given to the transport (a new node, a changed address). */
  peersAdded: number;
  /** Peers the transport forgot and refuses (removed from the membership). */
  peersRemoved: number;
  /**
   * Group memberships a change read as applied here, without a master's read index first: no
   * master lease was live in this node's view (an election under way, --no-master-election,
   * a node that just joined), or its master did not answer (unreachable, removed, timed out).
   */
  readWithoutMaster: number;
  /** Changes that waited for this node to learn it is a voter of a group (then went on or 503). */
  selfMembershipWaits: number;
  /**
   * Changes that waited for this node to learn group 0's membership because another group here
   * already held a newer copy of it (then went on or 503): copying the older one over it would
   * have undone a change.
   */
  groupZeroWaits: number;
  /** Requests that ended in an error, by its code (the caller is answered with it too). */
  changesFailed: Record<string, number>;
}

export interface MembershipPort {
  readonly nodeId: number;
  readonly groups: number;
  readonly paxos: Pick<
    PaxosNode,
    'membership' | 'changeMembership' | 'readIndex' | 'learnNow' | 'status'
  >;
  readonly network: Pick<TcpNetwork, 'addPeer' | 'removePeer'>;
  readonly log: PinoLogger;
  isStopping(): boolean;
  /** Addresses from the flags, for the members of a group no server has changed yet. */
  fallback(nodeId: number): NodeAddresses | undefined;
  /**
   * Not listed at start without being removed: a --join node until its own addition is learned,
   * a --follow-to follower always (it follows outside the membership).
   */
  readonly unlistedAtStart: boolean;
  /** The peers the transport was created with (id → `host:port`). */
  initialPeers: Map<number, string>;
  trackProposal<T>(proposal: Promise<T>): Promise<T>;
  /** The node list changed (the server's members view and dashboard follow it). */
  onNodes(nodes: MemberEntry[]): void;
}

export class MembershipSync {
  readonly counters: MembershipCounters = {
    changesProposed: 0,
    conflicts: 0,
    readWithoutMaster: 0,
    selfMembershipWaits: 0,
    groupZeroWaits: 0,
    peersAdded: 0,
    peersRemoved: 0,
    changesFailed: {},
  };
  /** Peers this class gave the transport: id → the `host:port` it was given. */
  private readonly managed: Map<number, string>;
  /** This node was in the membership since it started (a --cluster node from the start). */
  private listedOnce: boolean;
  /** Removed nodes still served until the time given (MEMBER_REMOVAL_GRACE_MS). */
  private readonly leaving = new Map<number, number>();
  removed = false;
  private lastSeen = '';
  /** Changes run one at a time on a node (each reads the membership the previous one left). */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly host: MembershipPort) {
    this.managed = new Map(host.initialPeers);
    this.listedOnce = !host.unlistedAtStart;
  }

  /**
   * Group g's membership as applied here, its version, and the group-0 version it is (`source`;
   * undefined when written by an older server or none yet).
   */
  membership(g: number): Membership & { version: number; source: number | undefined } {
    const vars = this.host.paxos.membership(g);
    return { ...membershipOf(vars, (id) => this.host.fallback(id)), version: vars.version };
  }

  view(): MembersView {
    const all = this.groups().map((g) => this.membership(g));
    const first = all[0]!;
    return {
      nodeId: this.host.nodeId,
      version: first.version,
      nodes: entries(first).map((e) => ({ ...e, self: e.nodeId === this.host.nodeId })),
      groups: all.map((m, group) => ({ group, version: m.version, voters: m.members })),
      consistent: all.every((m) => isMembership(m, first)),
      removed: this.removed,
      counters: { ...this.counters, changesFailed: { ...this.counters.changesFailed } },
    };
  }

  /** Applies a request through the log (group 0, then the others), one at a time per node. */
  change(req: MemberRequest): Promise<MembersView> {
    const run = this.queue.then(() => this.applyChange(req));
    // The next change runs whatever this one did; its error goes to its caller, and is counted.
    this.queue = run.catch((error: unknown) => {
      const code = (error as { code?: unknown }).code;
      const key = typeof code === 'string' ? code : 'E_INTERNAL';
      this.counters.changesFailed[key] = (this.counters.changesFailed[key] ?? 0) + 1;
    });
    return run;
  }

  /**
   * Brings the transport to the membership: new nodes' addresses added, removed nodes forgotten
   * and refused; on a node that was removed itself, every peer. Cheap when nothing changed.
   */
  sync(nowMs = Date.now()): void {
    for (const [id, atMs] of this.leaving) if (atMs <= nowMs) this.forget(id);
    const seen = this.groups()
      .map((g) => this.host.paxos.membership(g).version)
      .join(',');
    if (seen === this.lastSeen) return;
    this.lastSeen = seen;
    const all = this.groups().map((g) => this.membership(g));
    const self = this.host.nodeId;
    const wanted = new Map<number, NodeAddresses>();
    for (const m of all) for (const [id, a] of m.nodes) if (!wanted.has(id)) wanted.set(id, a);
    const voters = new Set(all.flatMap((m) => m.members));
    const listed = wanted.has(self) || voters.has(self);
    // A joining node starts with itself among the initial voters (version 0, the paxos node
    // wants that); only a membership written by a server (with addresses) lists it for real.
    const listedForReal = this.groups().some(
      (g) => decodeMeta(this.host.paxos.membership(g).meta)?.has(self) === true,
    );
    if (listedForReal || (listed && !this.host.unlistedAtStart)) this.listedOnce = true;
    if (this.listedOnce && !listed && !this.removed) {
      this.removed = true;
      this.host.log.warn(
        { group: null, version: all[0]!.version },
        'removed-from-membership: this node sends nothing and refuses its peers from now on',
      );
    }
    if (this.removed) {
      for (const id of [...this.managed.keys()]) this.forget(id);
      this.host.onNodes(entries(all[0]!));
      return;
    }
    for (const [id, a] of wanted) {
      this.leaving.delete(id); // added back before it was forgotten
      if (id === self || this.managed.get(id) === a.peer) continue;
      let address;
      try {
        address = parseAddress(`node ${id} peer`, a.peer);
      } catch (error) {
        // Written by a server that checked it: a peer running other code. Counted, not fatal.
        this.host.log.warn(
          { group: null, nodeId: id, peer: a.peer, err: error },
          'bad-peer-address',
        );
        continue;
      }
      this.host.network.addPeer(id, address);
      this.managed.set(id, a.peer);
      this.counters.peersAdded++;
      this.host.log.info(
        { group: null, nodeId: id, peer: a.peer, http: a.http },
        'member-peer-added',
      );
    }
    // A removed node is forgotten after a grace, in which it can still hear of its removal
    // (its next AskforLearn brings the new membership): then it stops on its side too.
    for (const id of this.managed.keys())
      if (!wanted.has(id) && !voters.has(id) && !this.leaving.has(id))
        this.leaving.set(id, nowMs + MEMBER_REMOVAL_GRACE_MS);
    this.host.onNodes(entries(all[0]!));
  }

  private forget(id: number): void {
    this.leaving.delete(id);
    this.host.network.removePeer(id, { refuse: true });
    this.managed.delete(id);
    this.counters.peersRemoved++;
    this.host.log.info({ group: null, nodeId: id }, 'member-peer-removed');
  }

  private groups(): number[] {
    return Array.from({ length: this.host.groups }, (_, g) => g);
  }

  private async applyChange(req: MemberRequest): Promise<MembersView> {
    if (this.removed)
      throw new ServerError('E_UNAVAILABLE', 'this node was removed from the membership');
    await this.readFromMaster();
    await this.followGroupZero(); // finishes a change an earlier request left half-way
    let applied = false;
    for (let attempt = 0; attempt < MEMBERSHIP_CHANGE_ATTEMPTS && !applied; attempt++) {
      const current = this.membership(0);
      applied = await this.propose(0, planChange(current, req), current.version + 1);
    }
    if (!applied)
      throw new ServerError(
        'E_MEMBERSHIP_CONFLICT',
        `other membership changes won ${MEMBERSHIP_CHANGE_ATTEMPTS} times in a row; retry`,
      );
    await this.followGroupZero();
    this.host.log.info({ group: null, request: req }, 'membership-changed');
    this.sync();
    return this.view();
  }

  /**
   * Brings every group's membership here up to the master's (PaxosNode.readIndex), so a change
   * reads the membership every completed change left. Without it a node that just joined may not
   * have heard of a change that did not go through it (the one that added it, proposed while it
   * was no member yet): it would plan against an older membership, or refuse E_NOT_MEMBER.
   */
  private async readFromMaster(): Promise<void> {
    for (const g of this.groups()) {
      const r = await settle(this.host.paxos.readIndex(g, { timeoutMs: PROPOSE_TIMEOUT_MS }));
      if (r.ok) continue;
      if (!(r.error instanceof PaxosError)) throw r.error;
      // No master to ask (none known, or it did not answer: it may be the node being removed):
      // read what is applied here. A stale read loses to the newer version
      // (E_MEMBERSHIP_CONFLICT) and is planned again; a missed own addition is waited for.
      if (['E_NOT_MASTER', 'E_MASTER_UNREACHABLE', 'E_TIMEOUT'].includes(r.error.code)) {
        this.counters.readWithoutMaster++;
        continue;
      }
      throw fromPaxos(r.error, { queued: false, write: false }) ?? r.error;
    }
  }

  /**
   * Waits (SELF_MEMBERSHIP_WAIT_MS at most) for this node to learn it is a voter of group g.
   * Without a master nothing brings the change that added it (it was no member when that was
   * chosen, so no proposer sent it there): the learner asks its peers at once, on every poll
   * (it asks at most once per learnerStallMs, and leaves a running stream alone), instead of at
   * its next AskforLearn 2.5–3 s later, which a loaded machine stretched past the wait.
   */
  private learnedSelfMember(g: number): Promise<boolean> {
    this.counters.selfMembershipWaits++;
    return this.learned(g, () => this.host.paxos.membership(g).members.includes(this.host.nodeId));
  }

  /**
   * Polls `done` for SELF_MEMBERSHIP_WAIT_MS at most, asking group g's learner to ask its peers
   * at once on every poll (see learnedSelfMember); false when it ran out.
   */
  private async learned(g: number, done: () => boolean): Promise<boolean> {
    const deadline = Date.now() + SELF_MEMBERSHIP_WAIT_MS;
    for (;;) {
      if (done()) return true;
      if (Date.now() >= deadline || this.host.isStopping()) return false;
      this.host.paxos.learnNow(g);
      await new Promise((resolve) => setTimeout(resolve, SELF_MEMBERSHIP_POLL_MS));
    }
  }

  /**
   * Waits until this node has learned group 0's membership version `source`, which group g here
   * already holds a copy of; an E_UNAVAILABLE when it does not in SELF_MEMBERSHIP_WAIT_MS.
   */
  private async learnGroupZero(source: number, g: number): Promise<void> {
    this.counters.groupZeroWaits++;
    if (await this.learned(0, () => this.host.paxos.membership(0).version >= source)) return;
    const learner = this.learnerSummary(0);
    this.host.log.warn({ group: 0, source, copiedTo: g, learner }, 'group-zero-wait-timed-out');
    throw new ServerError(
      'E_UNAVAILABLE',
      `group ${g} here already has group 0's membership version ${source}, which node ${this.host.nodeId} has not learned in group 0 (in ${SELF_MEMBERSHIP_WAIT_MS} ms; its learner: ${learner}): nothing was changed; retry, or send the change to another voting member`,
    );
  }

  /** What group g's learner did, for a wait that ran out: where it is, whom it heard, its asks. */
  private learnerSummary(g: number): string {
    const s = this.host.paxos.status(g);
    const l = s.learner;
    const c = l.counters;
    return (
      `instance ${l.instanceId}, highest reported ${l.highestSeenInstanceId} by node ${l.highestSeenFromNodeId}, ` +
      `learning ${l.isLearning}, members ${JSON.stringify(s.members)} v${s.membershipVersion}; ` +
      `asks sent ${c.askforLearnSent} (${c.asksOnDemand} at once), values from peers ${c.valuesLearnedFromPeers}, ` +
      `from the proposer ${c.valuesLearnedFromProposer}, catch-ups ${c.catchUpsStarted}/${c.catchUpsFinished}, ` +
      `stalls ${c.stalls}, lag messages ${c.lagMessages}`
    );
  }

  /**
   * Every other group to group 0's voters and addresses, each copy tagged with the group-0
   * version it is. Only forward: a group that holds a newer copy than this node's group 0 (a node
   * that just joined learns its groups in any order) is not overwritten with the older one (that
   * undid the change that added the node: it proposed its group 0's older membership into group 1
   * and removed itself there); this node learns group 0 first.
   */
  private async followGroupZero(): Promise<void> {
    for (let g = 1; g < this.host.groups; g++) {
      let done = false;
      for (let attempt = 0; attempt < MEMBERSHIP_CHANGE_ATTEMPTS && !done; attempt++) {
        const current = this.membership(g);
        if (current.source !== undefined && current.source > this.membership(0).version)
          await this.learnGroupZero(current.source, g);
        const target = this.membership(0);
        done =
          (current.source !== undefined && current.source >= target.version) ||
          isMembership(current, target) ||
          (await this.propose(g, target, target.version));
      }
      if (!done)
        throw new ServerError(
          'E_MEMBERSHIP_CONFLICT',
          `group ${g} kept taking other membership changes; retry`,
        );
    }
  }

  /**
   * Proposes `target` (group 0's version `source`) in group g against the version applied here;
   * false when it lost.
   */
  private async propose(g: number, target: Membership, source: number): Promise<boolean> {
    if (this.host.isStopping()) throw new ServerError('E_STOPPING', 'the node is stopping');
    this.counters.changesProposed++;
    const r = await settle(
      this.host.trackProposal(
        this.host.paxos.changeMembership(
          g,
          target.members,
          PROPOSE_TIMEOUT_MS,
          encodeMeta(target.nodes, source),
        ),
      ),
    );
    if (!r.ok) {
      if (!(r.error instanceof PaxosError)) throw r.error;
      // Another change took the version first: chosen, not applied (the caller tries again).
      if (r.error.code === 'E_MEMBERSHIP_CONFLICT') {
        this.counters.conflicts++;
        return false;
      }
      // Only when no master could be asked (readFromMaster): nothing was proposed. This node may
      // not have learned the change that added it yet: once it has, the caller plans again.
      if (r.error.code === 'E_NOT_MEMBER') {
        if (await this.learnedSelfMember(g)) return false;
        const learner = this.learnerSummary(g);
        this.host.log.warn({ group: g, learner }, 'self-membership-wait-timed-out');
        throw new ServerError(
          'E_UNAVAILABLE',
          `node ${this.host.nodeId} is not a voting member of group ${g} as far as it has learned (in ${SELF_MEMBERSHIP_WAIT_MS} ms, with no master to read the membership from; its learner: ${learner}): nothing was changed; retry, or send the change to another voting member`,
        );
      }
      // A change is a write: once queued, a timeout leaves its outcome unknown (504).
      throw fromPaxos(r.error, { queued: r.queued, write: true }) ?? r.error;
    }
    return true;
  }
}
