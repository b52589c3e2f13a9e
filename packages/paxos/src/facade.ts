// The embedder's API (issue 20): a node handle and per-group handles over the lower-level
// PaxosNode, whose methods take the group index positionally and default to no state machine.
// Here a group is a handle (`node.group(g = 0)`), a value goes to the group's one state machine
// unless the caller names another (and must name one when there are several), every wait takes
// `{ timeoutMs, signal }`, and stop() closes only what the node opened. Sans-IO: the Node entry
// (`@tspaxos/paxos/node`) and the testing entry (`@tspaxos/paxos/testing`) build the ports.
import type { ProposeResult } from './committer';
import { PaxosError } from './errors';
import type { NodeEventName, NodeEvents } from './events';
import type { GroupStatus } from './group';
import type { MasterInfo } from './master';
import type { PaxosNode } from './node';
import type { Scheduler } from '@tspaxos/core';
import type { StateMachine } from './state-machine';
import { NO_SM_ID } from './value';

/**
 * How many user state machines a node's groups run: with `'single'` a proposal goes to it unless
 * it names another smId; with `'several'` every proposal names its smId (a type error otherwise,
 * and E_BAD_ARGUMENT at run time).
 */
export type Machines = 'single' | 'several';

/** Bounds on a wait: a deadline, and a signal that ends it early (E_ABORTED). */
export interface WaitOptions {
  /** Default: the node's proposeTimeoutMs (10 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface ProposeOptions extends WaitOptions {
  /** The state machine the value is for: default, the group's only one. */
  smId?: number;
}

/** propose()'s options: optional with one state machine, required (with smId) with several. */
export type ProposeArgs<M extends Machines> = M extends 'single'
  ? [options?: ProposeOptions]
  : [options: ProposeOptions & { smId: number }];

/** One group of a node (PhxPaxos's group index, bound once). */
export interface GroupHandle<M extends Machines = Machines> {
  readonly index: number;
  /**
   * Proposes a value; resolves once it is chosen and applied on this node, with its instance id
   * and what the state machine's execute() returned (typed `R` by the caller). Rejects with a
   * PaxosError whose `outcome` says whether the value may still be chosen.
   */
  propose<R = unknown>(value: Uint8Array, ...options: ProposeArgs<M>): Promise<ProposeResult<R>>;
  /** Like propose(), but values waiting together share one instance (throughput). */
  batchPropose<R = unknown>(
    value: Uint8Array,
    ...options: ProposeArgs<M>
  ): Promise<ProposeResult<R>>;
  /**
   * Resolves once every value chosen before the call is applied on this node: a no-op value goes
   * through the log, so a read after it sees every write acknowledged before it (linearizable).
   */
  barrier(options?: WaitOptions): Promise<{ instanceId: number }>;
  /**
   * Resolves once this node has applied every instance a write acknowledged before the call may
   * have been chosen at (a read index from a majority of the voting members, no disk write and
   * no clock assumption; a barrier only when an instance stays accepted but unchosen), with the
   * last instance applied here: a read after it is linearizable. Concurrent calls share rounds.
   * Rejects with `outcome: 'rejected'` (E_NO_QUORUM, E_TIMEOUT, E_STOPPED …).
   */
  quorumReadIndex(options?: WaitOptions): Promise<{ instanceId: number }>;
  /** Resolves once the instance `instanceId` is applied on this node. */
  waitApplied(instanceId: number, options?: WaitOptions): Promise<void>;
  /** The last instance applied on this node (-1 before the first). No I/O. */
  appliedInstanceId(): number;
  status(): GroupStatus;
  /** True while this node holds the group's master lease (masterElection) on its own clock. */
  isMaster(): boolean;
  /** The group's master in this node's view while its lease is live here, else undefined. */
  master(): MasterInfo | undefined;
  /**
   * Proposes a new set of voting members (node ids), against the membership version this node
   * has applied: E_MEMBERSHIP_CONFLICT if another change was chosen first.
   */
  changeMembership(members: readonly number[], options?: WaitOptions): Promise<ProposeResult>;
  /**
   * Deletes the log below the state machines' checkpoint, keeping `keep` instances (needs the
   * node's `checkpoint` option). Resolves with the new min chosen instance id once it is durable.
   */
  compact(options: { keep: number }): Promise<{ minChosenInstanceId: number }>;
  /** Gives up this node's master lease now; no election from it for two leases. */
  dropMaster(): boolean;
}

export interface NodeHandle<M extends Machines = Machines> {
  readonly nodeId: number;
  readonly groupCount: number;
  /** The handle of group `index` (default 0); E_BAD_GROUP if the node has no such group. */
  group(index?: number): GroupHandle<M>;
  /**
   * Listens to `learned` (after each applied run of instances), `catchUpStarted` and
   * `caughtUp`; returns the function that removes the listener.
   */
  on<K extends NodeEventName>(name: K, listener: (event: NodeEvents[K]) => void): () => void;
  /**
   * Stops the groups (pending proposals reject with E_STOPPED) and closes the log and network
   * the node opened itself; a store or network the caller passed in stays open (theirs to close).
   */
  stop(): Promise<void>;
}

/** What a node handle needs besides the node: who owns the ports, the machines per group. */
export interface HandleConfig {
  /** True when the node opened its store (and so closes it). */
  ownsStore: boolean;
  /** True when the node opened its network (and so closes it). */
  ownsNetwork: boolean;
  /** The user state machines of each group. */
  machines: (group: number) => readonly StateMachine[];
  /** The node's clock: waitApplied's deadline runs on it. */
  scheduler: Scheduler;
}

/** What the group handles of one node share. */
interface Shared {
  scheduler: Scheduler;
  stopped: boolean;
  /** Pending waitApplied calls, ended with E_STOPPED by stop(). */
  waiters: Set<(error?: PaxosError) => void>;
}

const REJECTED = { outcome: 'rejected' } as const;

/** How often waitApplied looks at the applied id besides its events (checkpoint installs). */
const RECHECK_MS = 100;

/** Wraps a started PaxosNode in the handle API. */
export function nodeHandle<M extends Machines>(
  node: PaxosNode,
  config: HandleConfig,
): NodeHandle<M> {
  const groups = new Map<number, GroupHandle<M>>();
  const shared: Shared = { scheduler: config.scheduler, stopped: false, waiters: new Set() };
  let stopping: Promise<void> | undefined;
  return {
    nodeId: node.nodeId,
    groupCount: node.groupCount,
    group(index = 0) {
      let handle = groups.get(index);
      if (handle === undefined) {
        if (!Number.isInteger(index) || index < 0 || index >= node.groupCount)
          throw new PaxosError(
            'E_BAD_GROUP',
            `no group ${String(index)} on node ${node.nodeId} (groups: ${node.groupCount})`,
          );
        handle = new Handle<M>(
          node,
          shared,
          index,
          config.machines(index).map((m) => m.smId),
        );
        groups.set(index, handle);
      }
      return handle;
    },
    on: (name, listener) => node.on(name, listener),
    stop() {
      stopping ??= (async () => {
        shared.stopped = true;
        for (const waiter of [...shared.waiters])
          waiter(new PaxosError('E_STOPPED', 'the node stopped', REJECTED));
        await node.stop({ closeStore: config.ownsStore, closeNetwork: config.ownsNetwork });
      })();
      return stopping;
    },
  };
}

class Handle<M extends Machines> implements GroupHandle<M> {
  constructor(
    private readonly node: PaxosNode,
    private readonly shared: Shared,
    readonly index: number,
    private readonly smIds: readonly number[],
  ) {}

  propose<R = unknown>(value: Uint8Array, ...options: ProposeArgs<M>): Promise<ProposeResult<R>> {
    return this.submit<R>(value, options[0], false);
  }

  batchPropose<R = unknown>(
    value: Uint8Array,
    ...options: ProposeArgs<M>
  ): Promise<ProposeResult<R>> {
    return this.submit<R>(value, options[0], true);
  }

  barrier(options: WaitOptions = {}): Promise<{ instanceId: number }> {
    // An empty value for no state machine: batched with other barriers, applied by nobody.
    return this.bounded(
      options,
      (timeoutMs) =>
        this.node.batchPropose(this.index, new Uint8Array(0), {
          smId: NO_SM_ID,
          ...(timeoutMs !== undefined ? { timeoutMs } : {}),
        }),
      'unknown',
    ).then((r) => ({ instanceId: r.instanceId }));
  }

  quorumReadIndex(options: WaitOptions = {}): Promise<{ instanceId: number }> {
    return this.bounded(
      options,
      (timeoutMs) =>
        this.node.quorumReadIndex(this.index, timeoutMs !== undefined ? { timeoutMs } : {}),
      'rejected',
    );
  }

  waitApplied(instanceId: number, options: WaitOptions = {}): Promise<void> {
    if (!Number.isSafeInteger(instanceId) || instanceId < 0)
      return Promise.reject(
        new PaxosError('E_BAD_ARGUMENT', 'instanceId must be a non-negative integer'),
      );
    const problem = checkWait(options.timeoutMs, options.signal);
    if (problem) return Promise.reject(problem);
    if (this.appliedInstanceId() >= instanceId) return Promise.resolve();
    if (this.shared.stopped)
      return Promise.reject(new PaxosError('E_STOPPED', 'the node is stopped', REJECTED));
    const timeoutMs = options.timeoutMs ?? this.node.options.proposeTimeoutMs;
    const signal = options.signal;
    return new Promise<void>((resolve, reject) => {
      const waiter = (error?: PaxosError): void => {
        off();
        cancelTimer();
        cancelRecheck();
        signal?.removeEventListener('abort', onAbort);
        this.shared.waiters.delete(waiter);
        if (error) reject(error);
        else resolve();
      };
      const off = this.node.on('learned', (e) => {
        if (e.group === this.index && this.appliedInstanceId() >= instanceId) waiter();
      });
      // A checkpoint install moves the applied id without a `learned` event: look now and then.
      let cancelRecheck = (): void => {};
      const recheck = (): void => {
        if (this.appliedInstanceId() >= instanceId) waiter();
        else cancelRecheck = this.shared.scheduler.schedule(RECHECK_MS, recheck);
      };
      cancelRecheck = this.shared.scheduler.schedule(RECHECK_MS, recheck);
      // On the node's clock, as every other deadline of the node (virtual in tests).
      const cancelTimer = this.shared.scheduler.schedule(timeoutMs, () =>
        waiter(
          new PaxosError(
            'E_TIMEOUT',
            `instance ${instanceId} of group ${this.index} not applied within ${timeoutMs} ms`,
            REJECTED,
          ),
        ),
      );
      const onAbort = (): void => waiter(aborted('rejected'));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.shared.waiters.add(waiter);
    });
  }

  appliedInstanceId(): number {
    return this.node.instanceId(this.index) - 1;
  }

  status(): GroupStatus {
    return this.node.status(this.index);
  }

  isMaster(): boolean {
    return this.node.isMaster(this.index);
  }

  master(): MasterInfo | undefined {
    return this.node.getMaster(this.index);
  }

  changeMembership(members: readonly number[], options: WaitOptions = {}): Promise<ProposeResult> {
    return this.bounded(
      options,
      (timeoutMs) => this.node.changeMembership(this.index, [...members], timeoutMs),
      'unknown',
    );
  }

  compact(options: { keep: number }): Promise<{ minChosenInstanceId: number }> {
    return this.node.compact(this.index, options);
  }

  dropMaster(): boolean {
    return this.node.dropMaster(this.index);
  }

  private submit<R>(
    value: Uint8Array,
    options: ProposeOptions | undefined,
    batch: boolean,
  ): Promise<ProposeResult<R>> {
    const smId = options?.smId ?? this.defaultSmId();
    if (smId instanceof PaxosError) return Promise.reject(smId);
    return this.bounded(
      options ?? {},
      (timeoutMs) => {
        const opts = { smId, ...(timeoutMs !== undefined ? { timeoutMs } : {}) };
        return batch
          ? this.node.batchPropose(this.index, value, opts)
          : this.node.propose(this.index, value, opts);
      },
      'unknown',
    ) as Promise<ProposeResult<R>>;
  }

  /** The group's only user state machine, or why there is no default. */
  private defaultSmId(): number | PaxosError {
    if (this.smIds.length === 1) return this.smIds[0]!;
    return new PaxosError(
      'E_BAD_ARGUMENT',
      this.smIds.length === 0
        ? `group ${this.index} has no state machine: a value would be applied by nobody`
        : `group ${this.index} has ${this.smIds.length} state machines (smId ${this.smIds.join(', ')}): name one with smId`,
    );
  }

  /**
   * Runs `start` unless the signal already fired (then E_ABORTED, rejected: nothing was handed
   * over), and ends the wait with E_ABORTED (`outcome`) when it fires later.
   */
  private bounded<T>(
    options: WaitOptions,
    start: (timeoutMs: number | undefined) => Promise<T>,
    outcome: 'rejected' | 'unknown',
  ): Promise<T> {
    const problem = checkWait(options.timeoutMs, options.signal);
    if (problem) return Promise.reject(problem);
    const pending = start(options.timeoutMs);
    const signal = options.signal;
    if (signal === undefined) return pending;
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => reject(aborted(outcome));
      signal.addEventListener('abort', onAbort, { once: true });
      pending.then(
        (v) => {
          signal.removeEventListener('abort', onAbort);
          resolve(v);
        },
        (e: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        },
      );
    });
  }
}

function aborted(outcome: 'rejected' | 'unknown'): PaxosError {
  return new PaxosError(
    'E_ABORTED',
    outcome === 'rejected'
      ? 'aborted by the caller'
      : 'aborted by the caller; the value was handed to the group and may still be chosen',
    { outcome },
  );
}

/** A bad timeout or an already-aborted signal (nothing handed over yet), as the error. */
function checkWait(
  timeoutMs: number | undefined,
  signal: AbortSignal | undefined,
): PaxosError | undefined {
  if (timeoutMs !== undefined && (!Number.isFinite(timeoutMs) || timeoutMs <= 0))
    return new PaxosError('E_BAD_ARGUMENT', 'timeoutMs must be positive');
  if (signal?.aborted) return aborted('rejected');
  return undefined;
}
