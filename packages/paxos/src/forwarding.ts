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
// Batched (issue 22, spread writes): the ForwardPropose requests of one event-loop turn to one
// master go in one frame, and the master's replies of one microtask turn (the values of one
// instance) to one node in one frame (forward-batch.ts). A frame lost loses the answers of all its
// entries (each ends E_TIMEOUT, as a lost single frame did); a frame delivered twice is proposed
// once: the master drops a request id it has seen from that node (FORWARD_SEEN_REQUEST_IDS).
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
import {
  batchEntryBytes,
  decodeForwardBatch,
  encodeForwardBatch,
  FORWARD_BATCH_MAX_ENTRIES,
  FORWARD_BATCH_VALUE_MAX_BYTES,
  ForwardManyFlag,
} from './forward-batch';
import { PAXOS_ERROR_CODES, PaxosError, type PaxosErrorCode } from './errors';
import type { Group } from './group';
import type { Scheduler } from '@tspaxos/core';
import { isHandedBack, refusedBeforeQueueing } from './proposing';
import { yieldToEventLoop } from './scheduler';
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
 * Request ids the master remembers per node, to drop a ForwardPropose delivered twice: twice what
 * a node may have in flight, so an id is forgotten only long after its request ended there.
 */
export const FORWARD_SEEN_REQUEST_IDS = 2 * FORWARD_MAX_IN_FLIGHT;

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
  /**
   * Forwarded writes whose reply came before this node had applied their instance, and the
   * milliseconds they waited for it in all (the caller is answered after the apply, so that a
   * read here sees the write).
   */
  repliesBeforeApplied: number;
  applyWaitMs: number;
  /** ForwardPropose frames sent (one may carry many requests), and ForwardReply frames. */
  proposeFramesSent: number;
  replyFramesSent: number;
  /** ForwardPropose requests dropped here as the master: a request id seen from that node. */
  duplicatesDropped: number;
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
  /**
   * This start's first request id: random, so a restarted node does not reuse ids a master still
   * remembers (it would drop them as duplicates).
   */
  readonly firstRequestId: number;
  /** Most bytes of entries in one batched frame: within what the network's frames can carry. */
  readonly batchMaxBytes: number;
}

/** Forwarding messages to one node and group, sent in one frame at the next flush. */
interface Outgoing {
  to: number;
  g: number;
  msgs: ForwardMsg[];
  bytes: number;
}

/** Messages of one type waiting for their flush, by node and group, and when it comes. */
interface Outbox {
  frames: Map<string, Outgoing>;
  armed: boolean;
  /** Settles when the flush is due: the end of the event-loop turn, or of the microtask turn. */
  due: () => Promise<unknown>;
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
    repliesUnknown: 0,
    malformed: 0,
    noQuorum: 0,
    outcomeUnknown: 0,
    repliesBeforeApplied: 0,
    applyWaitMs: 0,
    proposeFramesSent: 0,
    replyFramesSent: 0,
    duplicatesDropped: 0,
  };
  private nextRequestId: number;
  /** The writes of one event-loop turn (one per HTTP request read) leave in one frame. */
  private readonly requestsOut: Outbox = {
    frames: new Map(),
    armed: false,
    due: () => yieldToEventLoop(this.host.scheduler),
  };
  /** The values of one instance settle in one microtask turn: their replies share a frame. */
  private readonly repliesOut: Outbox = {
    frames: new Map(),
    armed: false,
    due: () => Promise.resolve(),
  };
  /** As the master: request ids seen per node, oldest first (FORWARD_SEEN_REQUEST_IDS each). */
  private readonly seenRequestIds = new Map<number, Set<number>>();
  private readonly pending = new Map<number, Pending>();
  private readonly waiters = new Map<number, AppliedWaiter[]>();
  private cancelCheck: (() => void) | undefined;
  private stopped = false;

  constructor(private readonly host: ForwardingPort) {
    this.nextRequestId = host.firstRequestId;
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
    if ((msg.flag & ForwardManyFlag) !== 0) {
      this.receiveBatch(from, g, msg);
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

  /** A batched frame: its entries, each handled as a frame of its own would be. */
  private receiveBatch(from: number, g: number, msg: ForwardMsg): void {
    const requests = msg.msgType === ForwardMsgType.ForwardPropose;
    if (!requests && msg.msgType !== ForwardMsgType.ForwardReply) {
      this.counters.malformed++;
      return;
    }
    const entries = decodeForwardBatch(requests ? msg.value : msg.result, msg.msgType, from);
    if (entries === undefined) {
      this.counters.malformed++;
      return;
    }
    for (const entry of entries)
      if (requests) this.serveProposal(from, g, entry);
      else this.onReply(from, entry);
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
    // Requests not sent yet are rejected below with the rest; replies not sent are lost as they
    // would be in a socket's buffer (their nodes answer outcome-unknown).
    this.requestsOut.frames.clear();
    this.repliesOut.frames.clear();
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
      // Whole milliseconds: the wire carries integers, and a real clock's remainder is not one.
      const msg = forwardMsg({
        ...fields,
        requestId,
        nodeId: this.host.nodeId,
        timeoutMs: Math.max(1, Math.ceil(timeoutMs)),
      });
      if (!write) {
        this.host.send(to, g, { kind: 'forward', msg });
        return;
      }
      this.post(this.requestsOut, to, g, msg);
    });
  }

  /** Adds `msg` to the outbox's frame for (to, g), which leaves at the outbox's flush. */
  private post(outbox: Outbox, to: number, g: number, msg: ForwardMsg): void {
    this.queueOut(outbox.frames, to, g, msg);
    if (outbox.armed) return;
    outbox.armed = true;
    void outbox.due().then(() => {
      outbox.armed = false;
      this.flushOut(outbox.frames, msg.msgType);
    });
  }

  /** Adds `msg` to the frame waiting for (to, g); a full frame leaves now, a large value alone. */
  private queueOut(box: Map<string, Outgoing>, to: number, g: number, msg: ForwardMsg): void {
    const bytes = batchEntryBytes(msg);
    if (bytes > FORWARD_BATCH_VALUE_MAX_BYTES || bytes > this.host.batchMaxBytes) {
      this.sendOut({ to, g, msgs: [msg], bytes }, msg.msgType);
      return;
    }
    const key = `${to}/${g}`;
    let out = box.get(key);
    if (
      out !== undefined &&
      (out.msgs.length >= FORWARD_BATCH_MAX_ENTRIES || out.bytes + bytes > this.host.batchMaxBytes)
    ) {
      box.delete(key);
      this.sendOut(out, msg.msgType);
      out = undefined;
    }
    if (out === undefined) box.set(key, (out = { to, g, msgs: [], bytes: 0 }));
    out.msgs.push(msg);
    out.bytes += bytes;
  }

  private flushOut(box: Map<string, Outgoing>, msgType: number): void {
    if (this.stopped) return;
    for (const out of box.values()) this.sendOut(out, msgType);
    box.clear();
  }

  /** One frame: the message itself when it is alone, else a batch (forward-batch.ts). */
  private sendOut(out: Outgoing, msgType: number): void {
    if (msgType === ForwardMsgType.ForwardPropose) this.counters.proposeFramesSent++;
    else this.counters.replyFramesSent++;
    if (out.msgs.length === 1) {
      this.host.send(out.to, out.g, { kind: 'forward', msg: out.msgs[0]! });
      return;
    }
    const batch = encodeForwardBatch(out.msgs);
    this.host.send(out.to, out.g, {
      kind: 'forward',
      // timeoutMs 0: a node that does not know the flag refuses it, never chosen (forward-batch.ts).
      msg: forwardMsg({
        msgType,
        nodeId: this.host.nodeId,
        flag: ForwardManyFlag,
        ...(msgType === ForwardMsgType.ForwardPropose ? { value: batch } : { result: batch }),
      }),
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
    if (group.instanceId <= reply.instanceId) {
      this.counters.repliesBeforeApplied++;
      const startedMs = this.host.scheduler.now();
      await this.waitApplied(group, g, reply.instanceId, deadlineMs);
      this.counters.applyWaitMs += this.host.scheduler.now() - startedMs;
    }
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
    if (this.stopped) return;
    const write = request.msgType === ForwardMsgType.ForwardPropose;
    const msg = forwardMsg({
      msgType: write ? ForwardMsgType.ForwardReply : ForwardMsgType.ReadIndexReply,
      requestId: request.requestId,
      nodeId: this.host.nodeId,
      ...fields,
    });
    if (write) this.post(this.repliesOut, to, g, msg);
    else this.host.send(to, g, { kind: 'forward', msg });
  }

  /** False when `from` sent `requestId` before (a frame delivered twice): drop it. */
  private firstSight(from: number, requestId: number): boolean {
    let seen = this.seenRequestIds.get(from);
    if (seen === undefined) this.seenRequestIds.set(from, (seen = new Set()));
    if (seen.has(requestId)) return false;
    seen.add(requestId);
    // A Set iterates in insertion order: its first id is the oldest.
    if (seen.size > FORWARD_SEEN_REQUEST_IDS) seen.delete(seen.values().next().value!);
    return true;
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
    if (!this.firstSight(from, msg.requestId)) {
      this.counters.duplicatesDropped++; // answered (or being served) already: not proposed again
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
