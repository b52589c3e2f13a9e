// The node API: one node hosting one or more groups over one LogStore and one Network.
import {
  type CheckpointFiles,
  type CheckpointOptions,
  joinPath,
  resolveCheckpointOptions,
} from '@tspaxos/checkpoint';
import { SenderBudget } from '@tspaxos/learner';
import type { LogStore } from '@tspaxos/storage';
import {
  ForwardMsgType,
  type LentFrame,
  MAX_FRAME_BYTES,
  type Message,
  type Network,
} from '@tspaxos/transport';
import type { ProposeResult } from './committer';
import { PaxosError } from './errors';
import { NodeEventEmitter, type NodeEventName, type NodeEvents } from './events';
import type { UnsafeFaults } from './faults';
import { Forwarder, type ForwardingCounters } from './forwarding';
import { FORWARD_BATCH_MAX_BYTES } from './forward-batch';
import { QuorumReader, type QuorumReadCounters } from './quorum-read';
import { Group, type GroupEvent, type GroupStatus } from './group';
import {
  checkValueLimits,
  type PaxosOptions,
  type PaxosOptionsInput,
  resolveOptions,
} from './options';
import type { MasterFaults, MasterInfo } from './master';
import type { MasterVariables } from './master-variables';
import type { Logger, RandomSource, Scheduler } from '@tspaxos/core';
import {
  checkStateMachines,
  isSystemMeta,
  MAX_SYSTEM_META_BYTES,
  type StateMachine,
  type SystemVariables,
} from './state-machine';
import { MASTER_SM_ID, NO_SM_ID, SYSTEM_SM_ID } from './value';

export interface NodeOptions {
  nodeId: number;
  /** Node ids of the voting members (the initial membership of every group). */
  cluster: readonly number[];
  /** How many groups this node hosts (indices 0 … groups-1). */
  groups: number;
  /** The paxos log (`@tspaxos/paxos/node`'s createNode also takes a `dataDir` instead). */
  store: LogStore;
  network: Network;
  /** Clock and timers: the simulator passes a virtual one; `@tspaxos/paxos/node` the real one. */
  scheduler: Scheduler;
  /** Randomness for jitter: the simulator passes a seeded one; `@tspaxos/paxos/node` Math.random. */
  random: RandomSource;
  /** State machines per group (the same list for every group when given as an array). */
  stateMachines?: readonly StateMachine[] | ((group: number) => readonly StateMachine[]);
  /** Makes this node a non-voting follower of that voting node. */
  followTo?: number;
  options?: PaxosOptionsInput;
  logger?: Logger;
  /**
   * Run master elections (PhxPaxos RunMaster) in every group (true) or in the groups the function
   * picks. Default false. The master state machine applies in every group either way.
   */
  masterElection?: boolean | ((group: number) => boolean);
  /** Called when a group's recorded master changes (PhxPaxos MasterChangeCallback). */
  onMasterChange?: (group: number, master: MasterVariables) => void;
  /**
   * Forward user values and barriers to the group's master while its lease is live in this
   * node's view, instead of proposing them here (forwarding.ts); propose here when no master is
   * known; refuse with E_NO_QUORUM when a majority of the members is known unreachable. Default
   * false (every node proposes what it is given, as PhxPaxos does). readIndex() and serving
   * other nodes' forwards work either way.
   */
  forwarding?: boolean;
  /** Planted bugs (faults.ts, master.ts), for proving the simulator can fail. Tests only: never set it. */
  unsafeFaults?: UnsafeFaults & MasterFaults;
  /**
   * Checkpoint transfer (design.md §4): the file port (NodeFiles from `@tspaxos/checkpoint/fs`, or
   * MemoryFiles in tests), a directory for staging received checkpoints (one per group below
   * it), limits, and whether the cleaner compacts on its own (default true, keeping
   * options.holdCount). Without it there is no compaction and no checkpoint transfer.
   */
  checkpoint?: {
    files: CheckpointFiles;
    dir: string;
    options?: Partial<CheckpointOptions>;
    autoCompact?: boolean;
  };
}

export interface ProposeOptions {
  /** State machine the value is for (default: none — logged and learned, executed by nobody). */
  smId?: number;
  timeoutMs?: number;
}

export interface NodeCounters {
  messagesForUnknownGroup: number;
  checkpointMessagesDropped: number;
}

function checkId(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v <= 0)
    throw new PaxosError(
      'E_BAD_ARGUMENT',
      `${name} must be a positive safe integer, got ${String(v)}`,
    );
}

export class PaxosNode {
  readonly nodeId: number;
  readonly options: PaxosOptions;
  readonly counters: NodeCounters = { messagesForUnknownGroup: 0, checkpointMessagesDropped: 0 };
  private readonly instances: Group[];
  private readonly store: LogStore;
  private stopped = false;
  private readonly events = new NodeEventEmitter();
  private readonly forwarder: Forwarder;
  private readonly quorumReader: QuorumReader;
  /** One byte budget for the learner senders of every group (LearnerOptions.senderBudgetBytes). */
  readonly senderBudget: SenderBudget;

  /** Use createNode(): it also loads state and starts the groups. */
  constructor(private readonly opts: NodeOptions) {
    checkId('nodeId', opts.nodeId);
    if (!Number.isSafeInteger(opts.groups) || opts.groups < 1 || opts.groups > 10_000) {
      throw new PaxosError(
        'E_BAD_ARGUMENT',
        `groups must be 1 … 10000, got ${String(opts.groups)}`,
      );
    }
    if (opts.cluster.length === 0)
      throw new PaxosError('E_BAD_ARGUMENT', 'cluster must name at least one node');
    for (const id of opts.cluster) checkId('cluster node id', id);
    if (opts.followTo !== undefined) {
      checkId('followTo', opts.followTo);
      if (opts.cluster.includes(opts.nodeId))
        throw new PaxosError('E_BAD_ARGUMENT', 'a follower must not be a voting member');
    } else if (!opts.cluster.includes(opts.nodeId)) {
      throw new PaxosError(
        'E_BAD_ARGUMENT',
        `node ${opts.nodeId} is not in the cluster ${opts.cluster.join(',')}`,
      );
    }
    for (const port of ['store', 'network', 'scheduler', 'random'] as const) {
      if (opts[port] === undefined || opts[port] === null)
        throw new PaxosError('E_BAD_ARGUMENT', `${port} is required`);
    }
    this.store = opts.store;
    const scheduler = opts.scheduler;
    const random = opts.random;
    this.nodeId = opts.nodeId;
    this.options = resolveOptions(opts.groups, opts.options);
    checkValueLimits(this.options, opts.network.maxFrameBytes, opts.store.options?.maxValueBytes);
    this.instances = [];
    this.senderBudget = new SenderBudget(this.options.learner.senderBudgetBytes);
    const checkpointOptions = opts.checkpoint && resolveCheckpointOptions(opts.checkpoint.options);
    const network = opts.network;
    /** The transport's view of a peer; a network without one counts every peer reachable. */
    const reachable = (to: number): boolean => network.reachable?.(to) ?? true;
    this.forwarder = new Forwarder({
      nodeId: opts.nodeId,
      scheduler,
      send: (to, g, message) => network.send(to, g, message),
      reachable,
      group: (g) => this.instance(g),
      proposeDespiteLiveLease: opts.unsafeFaults?.proposeDespiteLiveLease === true,
      // Drawn only when forwarding is on: a draw shifts every later one of a seeded run.
      firstRequestId: opts.forwarding === true ? 1 + random.int(2 ** 31) * 2 ** 20 : 1,
      // Half a frame: the batch's own header and the frame's fields fit beside it.
      batchMaxBytes: Math.min(
        FORWARD_BATCH_MAX_BYTES,
        Math.floor((network.maxFrameBytes ?? MAX_FRAME_BYTES) / 2),
      ),
    });
    this.quorumReader = new QuorumReader({
      nodeId: opts.nodeId,
      scheduler,
      send: (to, g, message) => network.send(to, g, message),
      group: (g) => this.instance(g),
      hasQuorum: (g) => this.forwarder.hasQuorum(g),
      waitApplied: (g, instanceId, deadlineMs) =>
        this.forwarder.waitApplied(this.instance(g), g, instanceId, deadlineMs),
      // An empty value for no state machine, batched with the writes waiting (facade barrier()).
      barrier: (g, timeoutMs) =>
        this.submit(g, new Uint8Array(0), { smId: NO_SM_ID, timeoutMs }, true).then(
          (r) => r.instanceId,
        ),
      faults: opts.unsafeFaults ?? {},
    });
    for (let group = 0; group < opts.groups; group++) {
      const machines =
        typeof opts.stateMachines === 'function'
          ? opts.stateMachines(group)
          : (opts.stateMachines ?? []);
      checkStateMachines(machines);
      this.instances.push(
        new Group({
          nodeId: opts.nodeId,
          group,
          groupCount: opts.groups,
          initialMembers: opts.cluster,
          ...(opts.followTo !== undefined ? { followToNodeId: opts.followTo } : {}),
          store: this.store,
          send: (to, g, msg) => opts.network.send(to, g, { kind: 'paxos', msg }),
          reachable,
          scheduler,
          random,
          stateMachines: machines,
          options: this.options,
          ...(opts.unsafeFaults ? { faults: opts.unsafeFaults } : {}),
          senderBudget: this.senderBudget,
          onEvent: (event) => this.emitGroupEvent(event),
          masterElection:
            typeof opts.masterElection === 'function'
              ? opts.masterElection(group)
              : (opts.masterElection ?? false),
          ...(opts.onMasterChange ? { onMasterChange: opts.onMasterChange } : {}),
          ...(opts.checkpoint && checkpointOptions
            ? {
                checkpoint: {
                  files: opts.checkpoint.files,
                  stagingRoot: joinPath(opts.checkpoint.dir, `g${group}`, 'staging'),
                  options: checkpointOptions,
                  send: (to, g, msg) => opts.network.send(to, g, { kind: 'checkpoint', msg }),
                  autoCompact: opts.checkpoint.autoCompact ?? true,
                },
              }
            : {}),
          ...(opts.logger ? { log: opts.logger } : {}),
          ...(opts.forwarding === true ? { forwarding: true } : {}),
        }),
      );
    }
  }

  /** Loads every group's state, replays the log into the state machines, starts learning. */
  async start(): Promise<void> {
    for (const instance of this.instances) await instance.start();
    this.opts.network.onMessage((from, group, message, lent) =>
      this.receive(from, group, message, lent),
    );
  }

  /**
   * Proposes a value to a group. Resolves once it is chosen and applied on this node with the
   * instance id and the state machine's result; rejects with PaxosError (E_TIMEOUT, E_STOPPED,
   * E_VALUE_TOO_LARGE, E_QUEUE_FULL, E_FOLLOWER, or the code the group stopped with).
   */
  propose(group: number, value: Uint8Array, opts: ProposeOptions = {}): Promise<ProposeResult> {
    return this.submit(group, value, opts, false);
  }

  /** Like propose(), but values waiting together share one instance (throughput). */
  batchPropose(
    group: number,
    value: Uint8Array,
    opts: ProposeOptions = {},
  ): Promise<ProposeResult> {
    return this.submit(group, value, opts, true);
  }

  /**
   * A read index for a linearizable read from this node's state (etcd's ReadIndex, with the
   * master's lease instead of a heartbeat round): the master's applied instance id, asked of it
   * while its lease is live and once it has applied every instance it knows chosen, and applied
   * here too when this resolves. State read here afterwards reflects every write completed
   * before the call, provided every user value goes through the master (`forwarding` on every
   * node) and clock rates stay within the lease margin's bound (docs/design.md §5). Rejects with
   * E_NOT_MASTER (no master holds a lease here), E_MASTER_UNREACHABLE, E_TIMEOUT, E_STOPPED.
   */
  readIndex(group: number, opts: { timeoutMs?: number } = {}): Promise<{ instanceId: number }> {
    if (this.stopped) return Promise.reject(new PaxosError('E_STOPPED', 'the node is stopped'));
    const timeoutMs = opts.timeoutMs ?? this.options.proposeTimeoutMs;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
      return Promise.reject(new PaxosError('E_BAD_ARGUMENT', 'timeoutMs must be positive'));
    return this.forwarder.readIndex(group, timeoutMs).then((instanceId) => ({ instanceId }));
  }

  /**
   * A read index for a linearizable read from this node's state, by a round to a majority of the
   * group's voting members (etcd's ReadIndex; quorum-read.ts): no disk write, no lease, no clock
   * assumption, through any node (forwarding or not). Resolves once this node has applied every
   * instance a write acknowledged before the call may have been chosen at, with the last instance
   * applied here. Rounds are shared: one in flight per group, a call waits for the next one.
   * Rejects (outcome `rejected`) with E_NO_QUORUM (a majority known unreachable), E_TIMEOUT,
   * E_STOPPED, E_QUEUE_FULL, E_BAD_GROUP, E_BAD_ARGUMENT.
   */
  quorumReadIndex(
    group: number,
    opts: { timeoutMs?: number } = {},
  ): Promise<{ instanceId: number }> {
    if (this.stopped)
      return Promise.reject(
        new PaxosError('E_STOPPED', 'the node is stopped', { outcome: 'rejected' }),
      );
    const timeoutMs = opts.timeoutMs ?? this.options.proposeTimeoutMs;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
      return Promise.reject(new PaxosError('E_BAD_ARGUMENT', 'timeoutMs must be positive'));
    return this.quorumReader.read(group, timeoutMs).then((instanceId) => ({ instanceId }));
  }

  /** What quorum reads did on this node (quorum-read.ts). */
  get quorumReadCounters(): Readonly<QuorumReadCounters> {
    return this.quorumReader.counters;
  }

  /**
   * False when this node knows a majority of the group's voting members unreachable (its
   * transport's connections to them failed): writes and barriers are refused E_NO_QUORUM then.
   */
  hasQuorum(group: number): boolean {
    return this.forwarder.hasQuorum(group);
  }

  /** What forwarding did on this node (forwarding.ts). */
  get forwardingCounters(): Readonly<ForwardingCounters> {
    return this.forwarder.counters;
  }

  /**
   * Proposes a new set of voting members for a group, against the membership version applied
   * here; `meta` (opaque, at most MAX_SYSTEM_META_BYTES) replaces the application data carried
   * with it (omitted: kept). Rejects with E_MEMBERSHIP_CONFLICT when another change took that
   * version first (chosen, not applied: read the membership again and retry).
   */
  changeMembership(
    group: number,
    members: number[],
    timeoutMs = this.options.proposeTimeoutMs,
    meta?: string,
  ): Promise<ProposeResult> {
    const instance = this.instance(group);
    for (const id of members) checkId('member id', id);
    if (members.length === 0)
      return Promise.reject(new PaxosError('E_BAD_ARGUMENT', 'a group needs at least one member'));
    if (meta !== undefined && !isSystemMeta(meta))
      return Promise.reject(
        new PaxosError(
          'E_BAD_ARGUMENT',
          `meta must be a string of at most ${MAX_SYSTEM_META_BYTES} bytes of UTF-8`,
        ),
      );
    // The system machine applies a change only against the version it was proposed on: one that
    // lost to a concurrent change is chosen but not applied, and says so here.
    return instance.changeMembership(members, timeoutMs, meta).then((r) => {
      const applied = r.result as { applied: boolean; version: number };
      if (applied.applied) return r;
      throw new PaxosError(
        'E_MEMBERSHIP_CONFLICT',
        `the membership changed (now version ${applied.version}) before this change was chosen; read it again and retry`,
      );
    });
  }

  /** The group's membership as applied on this node: version, voting members, meta. */
  membership(group: number): Readonly<SystemVariables> {
    const { version, members, meta } = this.instance(group).membership;
    return { version, members: [...members], ...(meta !== undefined ? { meta } : {}) };
  }

  /**
   * The group's master in this node's view, while its lease is live on this node's clock:
   * `{ nodeId, version, expiresAtMs }` (expiresAtMs on the Scheduler's clock), else undefined.
   */
  getMaster(group: number): MasterInfo | undefined {
    return this.instance(group).getMaster();
  }

  /**
   * Asks the group's peers now for the instances this node has not learned, instead of at the
   * learner's next AskforLearn (every 2.5–3 s): for a caller waiting for a value no proposer will
   * bring here (apps/node: a node that just joined, waiting to learn that it is a voter, with no
   * master to read from). Cheap to call in a poll: the learner asks at most once per
   * learnerStallMs and leaves a live stream alone (counted in learner counters `asksOnDemand`).
   */
  learnNow(group: number): void {
    if (!this.stopped) this.instance(group).learnNow();
  }

  /** True while this node holds the group's master lease on its own clock. */
  isMaster(group: number): boolean {
    return !this.stopped && this.instance(group).isMaster();
  }

  /**
   * Gives up this node's lease now (the others wait it out) and skips elections for two leases
   * (PhxPaxos DropMaster). True when this node held the lease.
   */
  dropMaster(group: number): boolean {
    return this.instance(group).dropMaster();
  }

  /**
   * Deletes a group's log below its state machines' checkpoint, keeping `keep` instances
   * (PhxPaxos's cleaner, on demand). Resolves with the new min chosen instance id once it is
   * durable; the records go in bounded steps right after.
   */
  compact(group: number, opts: { keep: number }): Promise<{ minChosenInstanceId: number }> {
    if (this.stopped) return Promise.reject(new PaxosError('E_STOPPED', 'the node is stopped'));
    if (!Number.isSafeInteger(opts?.keep) || opts.keep < 0)
      return Promise.reject(
        new PaxosError('E_BAD_ARGUMENT', 'keep must be a non-negative integer'),
      );
    let instance: Group;
    try {
      instance = this.instance(group);
    } catch (error) {
      return Promise.reject(error);
    }
    return instance.compact(opts.keep).then((minChosenInstanceId) => ({ minChosenInstanceId }));
  }

  status(group: number): GroupStatus {
    return this.instance(group).status();
  }

  /** The group's now instance id (the first not learned here): no status built, no I/O. */
  instanceId(group: number): number {
    return this.instance(group).instanceId;
  }

  /**
   * Listens to `learned` (after each executed run of instances), `catchUpStarted` and
   * `caughtUp`; returns the function that removes the listener.
   */
  on<K extends NodeEventName>(name: K, listener: (event: NodeEvents[K]) => void): () => void {
    return this.events.on(name, listener);
  }

  get groupCount(): number {
    return this.instances.length;
  }

  /** Waits until every group's queue is empty (tests, benchmarks). */
  async idle(): Promise<void> {
    await Promise.all(this.instances.map((i) => i.loop.idle()));
  }

  /** Graceful stop: pending proposals reject with E_STOPPED, timers stop, the network closes. */
  async stop(opts: { closeStore?: boolean; closeNetwork?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.forwarder.stop();
    this.quorumReader.stop();
    await Promise.all(this.instances.map((i) => i.stop()));
    if (opts.closeNetwork ?? true) await this.opts.network.close();
    if (opts.closeStore ?? true) await this.store.close();
  }

  private submit(
    group: number,
    value: Uint8Array,
    opts: ProposeOptions,
    batch: boolean,
  ): Promise<ProposeResult> {
    if (this.stopped)
      return Promise.reject(
        new PaxosError('E_STOPPED', 'the node is stopped', { outcome: 'rejected' }),
      );
    let instance: Group;
    try {
      instance = this.instance(group);
    } catch (error) {
      return Promise.reject(error);
    }
    if (!(value instanceof Uint8Array))
      return Promise.reject(new PaxosError('E_BAD_ARGUMENT', 'value must be a Uint8Array'));
    const smId = opts.smId ?? NO_SM_ID;
    const timeoutMs = opts.timeoutMs ?? this.options.proposeTimeoutMs;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
      return Promise.reject(new PaxosError('E_BAD_ARGUMENT', 'timeoutMs must be positive'));
    if (this.opts.forwarding === true && smId !== SYSTEM_SM_ID && smId !== MASTER_SM_ID)
      return this.forwarder.propose(group, smId, value, batch, timeoutMs);
    return instance.propose(smId, value, batch, timeoutMs);
  }

  private instance(group: number): Group {
    const instance = Number.isInteger(group) ? this.instances[group] : undefined;
    if (instance === undefined)
      throw new PaxosError(
        'E_BAD_GROUP',
        `no group ${String(group)} on node ${this.nodeId} (groups: ${this.instances.length})`,
      );
    return instance;
  }

  private emitGroupEvent(event: GroupEvent): void {
    switch (event.type) {
      case 'learned':
        this.forwarder.learned(event.group, event.instanceId);
        this.events.emit('learned', {
          group: event.group,
          instanceId: event.instanceId,
          count: event.count,
        });
        return;
      case 'catchUpStarted': {
        const { type: _type, ...rest } = event;
        this.events.emit('catchUpStarted', rest);
        return;
      }
      case 'caughtUp': {
        const { type: _type, ...rest } = event;
        this.events.emit('caughtUp', rest);
        return;
      }
    }
  }

  private receive(from: number, group: number, message: Message, lent?: LentFrame): void {
    if (this.stopped) return;
    const instance = this.instances[group];
    if (instance === undefined) {
      this.counters.messagesForUnknownGroup++;
      return;
    }
    if (message.kind === 'forward') {
      const type = message.msg.msgType;
      if (type === ForwardMsgType.QuorumReadIndex || type === ForwardMsgType.QuorumReadIndexReply)
        this.quorumReader.receive(from, group, message.msg);
      else this.forwarder.receive(from, group, message.msg);
      return;
    }
    if (message.kind !== 'paxos') {
      if (this.opts.checkpoint === undefined) {
        this.counters.checkpointMessagesDropped++; // no checkpoint config: nothing to do with it
        return;
      }
      instance.receiveCheckpoint(from, message.msg);
      return;
    }
    instance.receive(from, message.msg, lent);
  }
}

/**
 * Builds a node from every port and starts its groups: the lower-level builder under the
 * façade (`createNode` of `@tspaxos/paxos/node`), for the simulator, tests and the reference
 * server (`@tspaxos/paxos/internal`).
 */
export async function startNode(opts: NodeOptions): Promise<PaxosNode> {
  const node = new PaxosNode(opts);
  await node.start();
  return node;
}
