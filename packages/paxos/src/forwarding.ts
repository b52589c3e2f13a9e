// Forwarding to the master (issue 18; etcd and rqlite forward to their leader, PhxPaxos's phxkv
// redirects the client). With NodeOptions.forwarding on, the rule is: no node proposes a user
// value or barrier itself while another node's master lease is live in its view; it sends the
// value to that master (ForwardPropose), which joins it to its own batches and answers with the
// instance id (ForwardReply). So after an election every chosen user value went through the
// master, and the master, having applied every value it proposed before answering, can serve a
// read from its own state while its lease holds. Other nodes read the same way: they ask the
// master for its applied instance id under its lease (ReadIndex, etcd's ReadIndex with the lease
// instead of a heartbeat round), wait until they have applied it themselves, and read locally.
//
// Never applied twice: a value is sent again (to a new master, or proposed here when no master is
// known) only when the answer says it was never chosen (ForwardFlag.NeverChosen: refused before
// it was proposed, or handed back unproposed by Group's rule). Any other failure after it was
// sent is E_OUTCOME_UNKNOWN (or E_TIMEOUT), as a local timeout is. A value this node queued to
// propose itself and handed back the same way (another node's lease became live while it waited,
// proposing.ts) goes to that master as a forwarded one does: it was never proposed either.
//
// Fail fast: a member refuses a write or barrier with E_NO_QUORUM when a majority of its group's
// members is not reachable by the transport's account (Network.reachable), instead of waiting out
// the proposal's timeout; a forward in flight to a master that becomes unreachable ends at the
// next check (FORWARD_CHECK_INTERVAL_MS) with E_OUTCOME_UNKNOWN.
// One idea, kept in one file though it passes 600 lines (issue 21): the forwarding rule above and
// the one Forwarder that keeps it, from the send to the answer.
import {
  decodeForwardResult,
  encodeForwardResult,
  ForwardFlag,
  type ForwardMsg,
  forwardMsg,
  ForwardMsgType,
  type Message,
} from '@tspaxos/transport';
import type { ProposeResult } from './committer';
import { PAXOS_ERROR_CODES, PaxosError, type PaxosErrorCode } from './errors';
import type { Group } from './group';
import type { RandomSource, Scheduler } from '@tspaxos/core';
import { isHandedBack, refusedBeforeQueueing } from './proposing';
import { MASTER_SM_ID, SYSTEM_SM_ID } from './value';

/** How often forwards in flight are checked against the transport's view of their master. */
export const FORWARD_CHECK_INTERVAL_MS = 100;
/** Most routings of one request (each after a "never chosen" refusal by a former master). */
export const FORWARD_MAX_ATTEMPTS = 100;
/**
 * Pause before routing a request again after a former master refused it: this node's view of
 * the lease has not changed yet; an election takes a lease or two, the deadline bounds the wait.
 */
export const FORWARD_REROUTE_DELAY_MS = 50;
/** Most requests this node has waiting on a master at once (more: E_QUEUE_FULL, not sent). */
export const FORWARD_MAX_IN_FLIGHT = 10_000;
/**
 * The master remembers each ForwardPropose it served for the request's timeout plus this long, and
 * drops a second delivery of it (a network that duplicates, as the MemoryNetwork's faults and
 * PhxPaxos's UDP can): a copy proposed again would be chosen, and applied, twice.
 */
export const FORWARD_DUPLICATE_WINDOW_MS = 10_000;
/** Most forwards the master remembers for that (the oldest forgotten first): bounded memory. */
export const FORWARD_REMEMBERED_MAX = 100_000;
/** Request ids start at a random point below this, so a restarted sender's ids are new ones. */
const REQUEST_ID_START_MAX = 2 ** 40;

export interface ForwardingCounters {
  /** ForwardPropose sent (a request sent again after a refusal counts again). */
  proposalsForwarded: number;
  /** Requests routed again after a former master said "never chosen, not master". */
  reroutes: number;
  /**
   * Values queued here to propose, handed back unproposed when another node's lease became live
   * (proposing.ts), then routed to that master.
   */
  handedBackRerouted: number;
  /** ReadIndex sent. */
  readIndexesAsked: number;
  /** Second deliveries of a ForwardPropose already served here, dropped unanswered. */
  duplicatesDropped: number;
  /** ForwardPropose and ReadIndex served here as the master. */
  proposalsServed: number;
  readIndexesServed: number;
  /** Replies for no request waiting here (it had timed out or ended): counted drops. */
  repliesUnknown: number;
  /** Messages dropped as malformed (sender mismatch, a reply on the wrong side …). */
  malformed: number;
  /** Requests refused E_NO_QUORUM here. */
  noQuorum: number;
  /** Forwards ended E_OUTCOME_UNKNOWN (the master failed after taking them, or went away). */
  outcomeUnknown: number;
}

/** What the forwarder needs from its node. */
export interface ForwardingPort {
  readonly nodeId: number;
  readonly scheduler: Scheduler;
  send(to: number, group: number, message: Message): void;
  /** The transport's view (Network.reachable); true when it has none. */
  reachable(to: number): boolean;
  /** The group, or throws PaxosError E_BAD_GROUP. */
  group(g: number): Group;
  /** Planted: propose user values here whatever lease is live (faults.ts). */
  readonly proposeDespiteLiveLease: boolean;
  /** Draws where this node's request ids start (a restart must not reuse remembered ids). */
  readonly random: RandomSource;
}

interface Pending {
  to: number;
  /** ForwardPropose: a loss after sending leaves the outcome unknown; ReadIndex: nothing applied. */
  write: boolean;
  resolve: (reply: ForwardMsg) => void;
  reject: (error: PaxosError) => void;
  cancelTimer: () => void;
}

interface AppliedWaiter {
  instanceId: number;
  resolve: () => void;
  reject: (error: PaxosError) => void;
  cancelTimer: () => void;
}

/** Every code a reply may carry: the ones a PaxosError is thrown with. */
const KNOWN_CODES = new Set<string>(Object.keys(PAXOS_ERROR_CODES));

const QUEUED = Symbol('queued');
const QUEUED_NOW = Promise.resolve(QUEUED);

/** Settles like `p`; `queued` is false when `p` was rejected already (refused before queueing). */
async function settleQueued<T>(
  p: Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; error: unknown; queued: boolean }> {
  let queued = false;
  try {
    const first = await Promise.race([p, QUEUED_NOW]);
    if (first !== QUEUED) return { ok: true, value: first as T };
    queued = true;
    return { ok: true, value: await p };
  } catch (error) {
    return { ok: false, error, queued };
  }
}

function isUserSm(smId: number): boolean {
  return smId !== SYSTEM_SM_ID && smId !== MASTER_SM_ID;
}

export class Forwarder {
  readonly counters: ForwardingCounters = {
    proposalsForwarded: 0,
    reroutes: 0,
    handedBackRerouted: 0,
    readIndexesAsked: 0,
    proposalsServed: 0,
    readIndexesServed: 0,
    duplicatesDropped: 0,
    repliesUnknown: 0,
    malformed: 0,
    noQuorum: 0,
    outcomeUnknown: 0,
  };
  private nextRequestId: number;
  private readonly pending = new Map<number, Pending>();
  /** `${from}/${requestId}` of every ForwardPropose served here → until when it is remembered. */
  private readonly served = new Map<string, number>();
  private readonly waiters = new Map<number, AppliedWaiter[]>();
  private cancelCheck: (() => void) | undefined;
  private stopped = false;

  constructor(private readonly host: ForwardingPort) {
    this.nextRequestId = 1 + host.random.int(REQUEST_ID_START_MAX);
  }

  /**
   * True unless this node knows a majority of the group's members unreachable (a non-member
   * judges only the master it would forward to, see route()).
   */
  hasQuorum(g: number): boolean {
    const group = this.host.group(g);
    const members = group.members;
    if (!members.includes(this.host.nodeId)) return true;
    let reachable = 0;
    for (const m of members) if (m === this.host.nodeId || this.host.reachable(m)) reachable++;
    return reachable > members.length / 2;
  }

  /**
   * Proposes a user value or barrier: here when no other node's lease is live in this node's
   * view, else through that master. Resolves once the value is chosen and applied on this node.
   * A refusal before anything was queued or sent comes as an already-rejected promise, as
   * Group.propose's own (callers tell "not queued" from it).
   */
  propose(
    g: number,
    smId: number,
    value: Uint8Array,
    batch: boolean,
    timeoutMs: number,
  ): Promise<ProposeResult> {
    let group: Group;
    let to: number | undefined;
    try {
      group = this.host.group(g);
      to = this.route(group, g, true);
    } catch (error) {
      return Promise.reject(error);
    }
    const deadlineMs = this.host.scheduler.now() + timeoutMs;
    if (to !== undefined) return this.forward(group, g, to, smId, value, batch, deadlineMs);
    // Here. A refusal before queueing is the group's already-rejected promise, passed on as it
    // is: callers tell "not queued" from it.
    const here = group.propose(smId, value, batch, timeoutMs);
    if (refusedBeforeQueueing(here)) return here;
    return this.unlessHandedBack(here, group, g, smId, value, batch, deadlineMs);
  }

  /**
   * The outcome of a value queued here; one the group hands back unproposed (another node's
   * lease became live while it waited) goes to that master: never proposed, so sending it on
   * cannot apply it twice.
   */
  private async unlessHandedBack(
    here: Promise<ProposeResult>,
    group: Group,
    g: number,
    smId: number,
    value: Uint8Array,
    batch: boolean,
    deadlineMs: number,
  ): Promise<ProposeResult> {
    try {
      return await here;
    } catch (error) {
      if (!isHandedBack(error)) throw error;
      this.counters.handedBackRerouted++;
      return this.forward(group, g, this.route(group, g, true), smId, value, batch, deadlineMs);
    }
  }

  private async forward(
    group: Group,
    g: number,
    first: number | undefined,
    smId: number,
    value: Uint8Array,
    batch: boolean,
    deadlineMs: number,
  ): Promise<ProposeResult> {
    let to = first;
    for (let attempt = 1; ; attempt++) {
      const remainingMs = deadlineMs - this.host.scheduler.now();
      if (remainingMs <= 0)
        throw new PaxosError('E_TIMEOUT', 'the proposal timed out before it was sent again');
      if (to === undefined) {
        const here = group.propose(smId, value, batch, remainingMs);
        return await this.unlessHandedBack(here, group, g, smId, value, batch, deadlineMs);
      }
      this.counters.proposalsForwarded++;
      const reply = await this.request(to, g, true, remainingMs, {
        msgType: ForwardMsgType.ForwardPropose,
        smId,
        flag: batch ? ForwardFlag.Batch : 0,
        value,
      });
      if (reply.errorCode === '') return this.forwardedResult(group, g, reply, deadlineMs);
      const neverChosen = (reply.flag & ForwardFlag.NeverChosen) !== 0;
      if (!neverChosen || reply.errorCode !== 'E_NOT_MASTER' || attempt >= FORWARD_MAX_ATTEMPTS)
        throw this.replyError(to, reply, neverChosen);
      // A former master refused it unproposed: route it again once this node's view moves on.
      this.counters.reroutes++;
      await this.pause(deadlineMs);
      to = this.route(group, g, true);
    }
  }

  /**
   * The master's applied instance id under its lease, once this node has applied it too: state
   * read here afterwards reflects every write completed before the call (docs/design.md §5).
   */
  async readIndex(g: number, timeoutMs: number): Promise<number> {
    const group = this.host.group(g);
    const deadlineMs = this.host.scheduler.now() + timeoutMs;
    for (let attempt = 1; ; attempt++) {
      if (group.isMaster()) return this.serveReadIndex(group, g, deadlineMs);
      const to = this.route(group, g, false);
      if (to === undefined)
        throw new PaxosError(
          'E_NOT_MASTER',
          `no master holds a lease of group ${g} in node ${this.host.nodeId}'s view (an election takes up to two leases)`,
        );
      const remainingMs = deadlineMs - this.host.scheduler.now();
      if (remainingMs <= 0) throw new PaxosError('E_TIMEOUT', 'the read index timed out');
      this.counters.readIndexesAsked++;
      const reply = await this.request(to, g, false, remainingMs, {
        msgType: ForwardMsgType.ReadIndex,
      });
      if (reply.errorCode === '') {
        await this.waitApplied(group, g, reply.instanceId, deadlineMs);
        return reply.instanceId;
      }
      if (reply.errorCode === 'E_NOT_MASTER' && attempt < FORWARD_MAX_ATTEMPTS) {
        this.counters.reroutes++;
        await this.pause(deadlineMs);
        continue;
      }
      throw this.replyError(to, reply, true);
    }
  }

  /** A forwarding message from the network; `from` is the authenticated sender. */
  receive(from: number, g: number, msg: ForwardMsg): void {
    if (this.stopped) return;
    if (msg.nodeId !== from) {
      this.counters.malformed++;
      return;
    }
    switch (msg.msgType) {
      case ForwardMsgType.ForwardPropose:
        this.serveProposal(from, g, msg);
        return;
      case ForwardMsgType.ReadIndex:
        this.serveReadIndexRequest(from, g, msg);
        return;
      default:
        this.onReply(from, msg);
    }
  }

  /** A group learned up to (not including) `nowInstanceId`: wakes the waiters it satisfies. */
  learned(g: number, nowInstanceId: number): void {
    const list = this.waiters.get(g);
    if (list === undefined) return;
    const keep: AppliedWaiter[] = [];
    for (const w of list) {
      if (w.instanceId < nowInstanceId) {
        w.cancelTimer();
        w.resolve();
      } else keep.push(w);
    }
    if (keep.length > 0) this.waiters.set(g, keep);
    else this.waiters.delete(g);
  }

  /** Rejects every request and wait with E_STOPPED. */
  stop(): void {
    this.stopped = true;
    this.cancelCheck?.();
    const error = new PaxosError('E_STOPPED', 'the node is stopping');
    for (const p of [...this.pending.values()]) {
      p.cancelTimer();
      p.reject(p.write ? this.outcomeUnknown(p.to, 'E_STOPPED: the node is stopping') : error);
    }
    this.pending.clear();
    for (const list of this.waiters.values())
      for (const w of list) {
        w.cancelTimer();
        w.reject(error);
      }
    this.waiters.clear();
  }

  // ---- routing ------------------------------------------------------------------------------

  /**
   * Where a request of this node goes: undefined to propose here (no other lease is live in this
   * node's view), else the master's id. Throws (nothing sent) E_NO_QUORUM or E_MASTER_UNREACHABLE.
   */
  private route(group: Group, g: number, write: boolean): number | undefined {
    if (write && !this.hasQuorum(g)) {
      this.counters.noQuorum++;
      throw new PaxosError(
        'E_NO_QUORUM',
        `a majority of group ${g}'s members ${group.members.join(',')} is not reachable from node ${this.host.nodeId}: nothing was proposed`,
      );
    }
    const master = group.getMaster();
    if (master === undefined || master.nodeId === this.host.nodeId) return undefined;
    if (write && this.host.proposeDespiteLiveLease) return undefined;
    if (!this.host.reachable(master.nodeId))
      throw new PaxosError(
        'E_MASTER_UNREACHABLE',
        `node ${master.nodeId} holds the master lease of group ${g} but is not reachable from node ${this.host.nodeId}: nothing was sent`,
      );
    return master.nodeId;
  }

  private request(
    to: number,
    g: number,
    write: boolean,
    timeoutMs: number,
    fields: Partial<ForwardMsg> & { msgType: number },
  ): Promise<ForwardMsg> {
    if (this.stopped) return Promise.reject(new PaxosError('E_STOPPED', 'the node is stopping'));
    if (this.pending.size >= FORWARD_MAX_IN_FLIGHT)
      return Promise.reject(
        new PaxosError('E_QUEUE_FULL', `${this.pending.size} requests wait on the master already`),
      );
    const requestId = this.nextRequestId++;
    return new Promise<ForwardMsg>((resolve, reject) => {
      const cancelTimer = this.host.scheduler.schedule(timeoutMs, () => {
        if (!this.pending.delete(requestId)) return;
        reject(
          new PaxosError(
            'E_TIMEOUT',
            write
              ? `no answer from the master (node ${to}) in time: the value may or may not be chosen later`
              : `no read index from the master (node ${to}) in time`,
          ),
        );
      });
      this.pending.set(requestId, { to, write, resolve, reject, cancelTimer });
      this.armCheck();
      this.host.send(to, g, {
        kind: 'forward',
        // Whole milliseconds: the wire carries integers, and a real clock's remainder is not one.
        msg: forwardMsg({
          ...fields,
          requestId,
          nodeId: this.host.nodeId,
          timeoutMs: Math.max(1, Math.ceil(timeoutMs)),
        }),
      });
    });
  }

  /** Waits FORWARD_REROUTE_DELAY_MS, or less if the deadline comes first. */
  private pause(deadlineMs: number): Promise<void> {
    const ms = Math.min(FORWARD_REROUTE_DELAY_MS, deadlineMs - this.host.scheduler.now());
    return new Promise((resolve) => {
      this.host.scheduler.schedule(Math.max(0, ms), resolve);
    });
  }

  /** Ends the requests whose master the transport says it cannot reach now. */
  private armCheck(): void {
    if (this.cancelCheck !== undefined || this.stopped) return;
    this.cancelCheck = this.host.scheduler.schedule(FORWARD_CHECK_INTERVAL_MS, () => {
      this.cancelCheck = undefined;
      for (const [requestId, p] of this.pending) {
        if (this.host.reachable(p.to)) continue;
        this.pending.delete(requestId);
        p.cancelTimer();
        p.reject(
          p.write
            ? this.outcomeUnknown(p.to, 'the connection to it broke while it had the value')
            : new PaxosError('E_MASTER_UNREACHABLE', `the master (node ${p.to}) went away`),
        );
      }
      if (this.pending.size > 0) this.armCheck();
    });
  }

  private onReply(from: number, msg: ForwardMsg): void {
    const p = this.pending.get(msg.requestId);
    if (p === undefined) {
      this.counters.repliesUnknown++;
      return;
    }
    const expected = p.write ? ForwardMsgType.ForwardReply : ForwardMsgType.ReadIndexReply;
    if (p.to !== from || msg.msgType !== expected) {
      this.counters.malformed++;
      return;
    }
    this.pending.delete(msg.requestId);
    p.cancelTimer();
    p.resolve(msg);
  }

  private async forwardedResult(
    group: Group,
    g: number,
    reply: ForwardMsg,
    deadlineMs: number,
  ): Promise<ProposeResult> {
    const result = decodeForwardResult(reply.result);
    if (!result.ok) this.counters.malformed++; // the value was chosen: answered without result
    // Applied here before the caller hears of it: a read at this node afterwards sees it.
    await this.waitApplied(group, g, reply.instanceId, deadlineMs);
    return {
      instanceId: reply.instanceId,
      result: result.ok ? result.value : undefined,
      identity: {
        nodeId: reply.identityNodeId,
        incarnation: reply.identityIncarnation,
        sequence: reply.identitySequence,
      },
      ...(reply.batchIndex > 0 ? { batchIndex: reply.batchIndex - 1 } : {}),
    };
  }

  private replyError(to: number, reply: ForwardMsg, neverChosen: boolean): PaxosError {
    const code = KNOWN_CODES.has(reply.errorCode) ? (reply.errorCode as PaxosErrorCode) : undefined;
    const detail = `master node ${to}: ${reply.errorCode}: ${reply.errorMessage}`;
    if (code !== undefined && (neverChosen || code === 'E_TIMEOUT'))
      return new PaxosError(code, detail);
    return this.outcomeUnknown(to, detail);
  }

  private outcomeUnknown(to: number, detail: string): PaxosError {
    this.counters.outcomeUnknown++;
    return new PaxosError(
      'E_OUTCOME_UNKNOWN',
      `the value was forwarded to the master (node ${to}) and may or may not be chosen: ${detail}`,
    );
  }

  /** Resolves once `instanceId` is applied here; E_TIMEOUT at `deadlineMs` (quorum-read.ts too). */
  waitApplied(group: Group, g: number, instanceId: number, deadlineMs: number): Promise<void> {
    if (group.instanceId > instanceId) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: AppliedWaiter = {
        instanceId,
        resolve,
        reject,
        cancelTimer: () => {},
      };
      waiter.cancelTimer = this.host.scheduler.schedule(
        Math.max(0, deadlineMs - this.host.scheduler.now()),
        () => {
          const list = this.waiters.get(g);
          const i = list?.indexOf(waiter) ?? -1;
          if (i < 0) return;
          list!.splice(i, 1);
          reject(
            new PaxosError(
              'E_TIMEOUT',
              `instance ${instanceId} is chosen but node ${this.host.nodeId} has not applied it in time (applied below ${group.instanceId})`,
            ),
          );
        },
      );
      const list = this.waiters.get(g);
      if (list === undefined) this.waiters.set(g, [waiter]);
      else list.push(waiter);
    });
  }

  // ---- the master's side --------------------------------------------------------------------

  private reply(to: number, g: number, request: ForwardMsg, fields: Partial<ForwardMsg>): void {
    this.host.send(to, g, {
      kind: 'forward',
      msg: forwardMsg({
        msgType:
          request.msgType === ForwardMsgType.ForwardPropose
            ? ForwardMsgType.ForwardReply
            : ForwardMsgType.ReadIndexReply,
        requestId: request.requestId,
        nodeId: this.host.nodeId,
        ...fields,
      }),
    });
  }

  private refuse(
    to: number,
    g: number,
    request: ForwardMsg,
    error: PaxosError,
    neverChosen: boolean,
  ): void {
    this.reply(to, g, request, {
      errorCode: error.code,
      errorMessage: error.message,
      flag: neverChosen ? ForwardFlag.NeverChosen : 0,
    });
  }

  private serveProposal(from: number, g: number, msg: ForwardMsg): void {
    let group: Group;
    try {
      group = this.host.group(g);
    } catch {
      this.counters.malformed++; // no such group here: nothing to answer for
      return;
    }
    if (this.servedBefore(from, msg)) {
      this.counters.duplicatesDropped++; // the first delivery is answered (or ends unknown)
      return;
    }
    this.counters.proposalsServed++;
    if (!isUserSm(msg.smId) || msg.timeoutMs === 0) {
      this.counters.malformed++;
      this.refuse(
        from,
        g,
        msg,
        new PaxosError('E_BAD_ARGUMENT', 'only user values with a timeout are forwarded'),
        true,
      );
      return;
    }
    if (!group.isMaster()) {
      this.refuse(
        from,
        g,
        msg,
        new PaxosError('E_NOT_MASTER', `node ${this.host.nodeId} does not hold the lease`),
        true,
      );
      return;
    }
    if (!this.hasQuorum(g)) {
      this.counters.noQuorum++;
      this.refuse(
        from,
        g,
        msg,
        new PaxosError('E_NO_QUORUM', `a majority of group ${g}'s members is not reachable`),
        true,
      );
      return;
    }
    const batch = (msg.flag & ForwardFlag.Batch) !== 0;
    void settleQueued(group.propose(msg.smId, msg.value, batch, msg.timeoutMs)).then((r) => {
      if (r.ok) {
        const { instanceId, identity, batchIndex } = r.value;
        this.reply(from, g, msg, {
          instanceId,
          identityNodeId: identity.nodeId,
          identityIncarnation: identity.incarnation,
          identitySequence: identity.sequence,
          batchIndex: batchIndex === undefined ? 0 : batchIndex + 1,
          result: encodeForwardResult(r.value.result) ?? new Uint8Array(0),
        });
        return;
      }
      if (!(r.error instanceof PaxosError)) throw r.error; // a bug of ours: not a reply
      // Handed back unproposed by the group's rule, or refused before queueing: never chosen.
      this.refuse(from, g, msg, r.error, !r.queued || r.error.code === 'E_NOT_MASTER');
    });
  }

  /** Whether this ForwardPropose was served already; remembers it if not. */
  private servedBefore(from: number, msg: ForwardMsg): boolean {
    const now = this.host.scheduler.now();
    // Forget what has run out: in arrival order, so an entry with a longer timeout ahead holds
    // later ones back a while; the cap bounds the map whatever the timeouts.
    for (const [key, until] of this.served) {
      if (until > now && this.served.size < FORWARD_REMEMBERED_MAX) break;
      this.served.delete(key);
    }
    const key = `${from}/${msg.requestId}`;
    if (this.served.has(key)) return true;
    this.served.set(key, now + msg.timeoutMs + FORWARD_DUPLICATE_WINDOW_MS);
    return false;
  }

  private serveReadIndexRequest(from: number, g: number, msg: ForwardMsg): void {
    let group: Group;
    try {
      group = this.host.group(g);
    } catch {
      this.counters.malformed++;
      return;
    }
    const deadlineMs = this.host.scheduler.now() + msg.timeoutMs;
    void this.serveReadIndex(group, g, deadlineMs).then(
      (instanceId) => this.reply(from, g, msg, { instanceId }),
      (error: unknown) => {
        if (!(error instanceof PaxosError)) throw error;
        this.refuse(from, g, msg, error, true);
      },
    );
  }

  /**
   * The master's read index: its last applied instance, once it has applied every instance it
   * knows chosen, taken while its lease is live (checked again at the moment it answers).
   */
  private async serveReadIndex(group: Group, g: number, deadlineMs: number): Promise<number> {
    for (;;) {
      if (!group.isMaster())
        throw new PaxosError('E_NOT_MASTER', `node ${this.host.nodeId} does not hold the lease`);
      if (group.appliedAllKnownChosen()) {
        this.counters.readIndexesServed++;
        return group.instanceId - 1;
      }
      // Behind what it knows chosen: answer once it has applied the next instance.
      await this.waitApplied(group, g, group.instanceId, deadlineMs);
    }
  }
}
