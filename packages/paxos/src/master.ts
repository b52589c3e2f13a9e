// Master election with leases (PhxPaxos src/master: MasterStateMachine in master_sm.cpp, MasterMgr
// in master_mgr.cpp). A node proposes through the log "I am master for leaseMs, against master
// version V"; every node applies the same operations in log order, so all agree on the recorded
// master and its version. Two parts:
//
// - MasterStateMachine (here; system smId MASTER_SM_ID): the deterministic apply rule, the master
//   variables { masterNodeId, version, leaseMs } persisted in meta `masterVariables`, and each
//   node's *local* view of the lease (when it expires on this node's clock). The variables, the
//   operation and their encodings are master-variables.ts.
// - MasterElection (election.ts): the timer loop of one node (PhxPaxos MasterMgr::run /
//   TryBeMaster) that proposes to become or stay master when no other node's lease is live in
//   its view.
//
// Time, and why it is safe. Applying must be deterministic, so the apply rule never reads a clock:
// an operation applies iff it was proposed against the current version (and its proposer is a
// voting member at that point of the log). Time only decides each node's local view:
//   - the proposer reads its clock t0 BEFORE proposing and, when its own operation applies, holds
//     the lease until t0 + leaseMs - marginMs on its own clock (PhxPaxos TryBeMaster passes
//     llAbsMasterTimeout = now + lease - 100 through the SMCtx; LearnMaster uses it for itself);
//   - every other node, when it applies (or adopts) the operation, starts leaseMs on its own clock
//     at that moment (LearnMaster: GetSteadyClockMS() + timeout), which is after t0.
// Another node proposes only once its view has expired, and its operation can apply only if it
// names the version it saw, i.e. only if it had applied the latest operation. So the new master's
// lease starts no earlier than (real time of its apply) + leaseMs of its clock, while the old one
// stopped at t0 + leaseMs - marginMs of its clock. Clock offsets do not matter (each node measures
// only durations on its own monotonic clock); rates do: with every clock's rate within 1 ± ρ of
// real time, the old lease ends first when (L - m)/(1 - ρ) ≤ L/(1 + ρ), i.e. ρ ≤ m / (2L - m)
// (0.5 % for PhxPaxos's 10 s lease and 100 ms margin). A node that learns the master from
// SendNowInstanceID or restarts also starts a full lease then (later still: safe); a node that
// restarts never believes itself master until it proposes again (PhxPaxos MasterStateMachine::Init).
import {
  decodeMasterOperation,
  decodeStoredMaster,
  type MasterVariables,
  NO_MASTER_VERSION,
  NO_MASTER_YET,
} from './master-variables';
import type { ExecuteContext, StateMachine } from './state-machine';
import { MASTER_SM_ID } from './value';

/** What getMaster() reports: the recorded master while its lease is live in this node's view. */
export interface MasterInfo {
  nodeId: number;
  version: number;
  /** When the lease ends on this node's clock (the Scheduler's now()). */
  expiresAtMs: number;
}

export interface MasterCounters {
  /** Operations applied that changed the master node. */
  elections: number;
  /** Operations applied that kept the same master (renewals). */
  renewals: number;
  /** Operations refused because they named an old version. */
  staleVersion: number;
  /** Operations refused because their proposer was not a voting member. */
  notMember: number;
  /** Operations that do not decode (counted, skipped by every node alike). */
  malformed: number;
  /** Master variables adopted from a peer's SendNowInstanceID. */
  adopted: number;
  /** Master variables restored from those a checkpoint carried (its sender's, see restore()). */
  fromCheckpoint: number;
  /** Master variables from a peer that do not decode (counted and dropped). */
  malformedVariables: number;
  /**
   * Master variables from a peer whose log is behind this node's (counted and dropped): they miss
   * operations this node passed, so trusting them could grant a lease the others refuse.
   */
  behindVariables: number;
  /** Operations not evaluated because this node's master state is unknown (see `anchored`). */
  unanchored: number;
  /** This node's own lease ended without a renewal. */
  expiries: number;
  /** dropMaster() calls, and leases dropped because this node left the membership. */
  drops: number;
  /** Proposals this node started to become or stay master. */
  attempts: number;
  /** Of those, proposals that failed with a coded error (timeout, stopped, queue full …). */
  attemptsFailed: number;
}

/** Deliberate bugs for proving the multi-node test can fail. Never set in production. */
export interface MasterFaults {
  /** Starts the holder's lease when its operation applies, not before it proposed. */
  lateLeaseStart?: boolean;
  /** Applies a renewal whatever version it names. */
  renewWithoutVersionCheck?: boolean;
}

export interface MasterPort {
  readonly nodeId: number;
  /** This node's clock (the injected Scheduler's now()). */
  now(): number;
  /** Whether a node is a voting member at this point of the log (the system variables). */
  isMember(nodeId: number): boolean;
  /** The first instance this node has not executed yet (its learner's now instance id). */
  nowInstanceId(): number;
  /** Persists the master variables (meta `masterVariables`, synced before the instance ends). */
  persist(v: MasterVariables): void;
  /** The recorded master changed (PhxPaxos MasterChangeCallback). */
  changed(v: MasterVariables): void;
}

/**
 * The master state machine (PhxPaxos MasterStateMachine). `variables` are the log's state;
 * `expiresAtMs` is this node's view of the lease on its own clock.
 */
export class MasterStateMachine implements StateMachine {
  readonly smId = MASTER_SM_ID;
  /** An operation is parsed into numbers: nothing keeps the value's bytes. */
  readonly copiesValues = true;
  readonly counters: MasterCounters = {
    elections: 0,
    renewals: 0,
    staleVersion: 0,
    notMember: 0,
    malformed: 0,
    adopted: 0,
    fromCheckpoint: 0,
    malformedVariables: 0,
    behindVariables: 0,
    unanchored: 0,
    expiries: 0,
    drops: 0,
    attempts: 0,
    attemptsFailed: 0,
  };
  private vars: MasterVariables | undefined;
  /** My view of the lease end on my clock; -∞ when I know of no live lease (clocks may be < 0). */
  private expiresAtMs = Number.NEGATIVE_INFINITY;
  /** My proposals in flight: nonce → my clock when I decided to propose (before proposing). */
  private readonly starts = new Map<number, number>();

  /**
   * False when this node's master state is unknown: its log has history but its master variables
   * were lost (PhxPaxos keeps them across a checkpoint install, Database::ClearAllLog; a reset
   * that does not would leave this node applying operations against the wrong version, and
   * granting itself a lease the others refused). Until a peer's variables are adopted, it
   * evaluates no operation, reports no master and never holds a lease.
   */
  private known: boolean;

  /**
   * Instances below this are reflected in `vars` already: they came from a peer whose log had
   * passed them (a checkpoint's sender). Such operations are not evaluated again, whatever they
   * name: the membership they were judged against on the peer may differ from this node's now.
   */
  private reflectsBelow = 0;

  constructor(
    private readonly host: MasterPort,
    /** Stored variables; NO_MASTER_YET: none applied yet; undefined: unknown (lost). */
    initial: MasterVariables | typeof NO_MASTER_YET | undefined,
    /** Subtracted from my own leases (PhxPaxos TryBeMaster: lease - 100 ms). */
    private readonly leaseMarginMs: number,
    private readonly faults: MasterFaults = {},
    /** See `reflectsBelow` (meta `masterVariables`' asOf). */
    reflectsBelow = 0,
  ) {
    this.known = false;
    this.reset(initial, reflectsBelow);
  }

  /**
   * Starts over from stored (or carried) variables, as after a restart: nobody is trusted to be
   * myself; another master gets a full lease from now (PhxPaxos MasterStateMachine::Init).
   * undefined: unknown.
   */
  private reset(
    initial: MasterVariables | typeof NO_MASTER_YET | undefined,
    reflectsBelow: number,
  ): void {
    this.known = initial !== undefined;
    this.vars = initial !== undefined && initial !== NO_MASTER_YET ? { ...initial } : undefined;
    this.reflectsBelow = reflectsBelow;
    this.starts.clear();
    this.expiresAtMs =
      this.vars === undefined || this.vars.masterNodeId === this.host.nodeId
        ? Number.NEGATIVE_INFINITY
        : this.host.now() + this.vars.leaseMs;
  }

  /** False while this node's master state is unknown (lost variables, not yet adopted). */
  get anchored(): boolean {
    return this.known;
  }

  /** The log's master variables (undefined before the first operation applied). */
  get variables(): Readonly<MasterVariables> | undefined {
    return this.vars;
  }

  get version(): number {
    return this.vars?.version ?? NO_MASTER_VERSION;
  }

  /** The master in this node's view, or undefined when none or its lease has expired here. */
  master(): MasterInfo | undefined {
    const v = this.vars;
    if (v === undefined || this.host.now() >= this.expiresAtMs) return undefined;
    return { nodeId: v.masterNodeId, version: v.version, expiresAtMs: this.expiresAtMs };
  }

  /** True while this node holds the lease on its own clock (PhxPaxos IsIMMaster). */
  isMaster(): boolean {
    return this.master()?.nodeId === this.host.nodeId;
  }

  /** Remembers when I decided to propose `nonce`: my lease will count from there. */
  expectOwn(nonce: number, startMs: number): void {
    this.starts.set(nonce, startMs);
  }

  /** My proposal settled: an operation applied later is not mine to trust. */
  forgetOwn(nonce: number): void {
    this.starts.delete(nonce);
  }

  /** Ends my lease here now (dropMaster, or I left the membership); the log is unchanged. */
  dropLocal(): boolean {
    if (!this.isMaster()) return false;
    this.expiresAtMs = Number.NEGATIVE_INFINITY;
    this.counters.drops++;
    return true;
  }

  /** Counts an expiry if my lease that ended at `expiresAtMs` was not renewed. */
  checkExpiry(expiresAtMs: number): void {
    if (
      this.vars?.masterNodeId === this.host.nodeId &&
      this.expiresAtMs === expiresAtMs &&
      this.host.now() >= expiresAtMs
    ) {
      this.counters.expiries++;
    }
  }

  /**
   * When the last lease this node knows of ends on its clock, whoever holds it (-∞: none seen
   * since the start). The election tries right then, not at its next tick (election.ts).
   */
  get leaseEndMs(): number {
    return this.vars === undefined ? Number.NEGATIVE_INFINITY : this.expiresAtMs;
  }

  /** The lease end on my clock when I am the recorded master (-∞ otherwise). */
  get ownLeaseEndMs(): number {
    return this.vars?.masterNodeId === this.host.nodeId
      ? this.expiresAtMs
      : Number.NEGATIVE_INFINITY;
  }

  /**
   * The apply rule (PhxPaxos MasterStateMachine::LearnMaster), the same on every node: an
   * operation applies iff it names the current version and its proposer is a voting member. It
   * never reads the clock: only the local view of the lease does.
   */
  execute(value: Uint8Array, ctx: ExecuteContext): { applied: boolean; version: number } {
    if (!this.known) {
      this.counters.unanchored++;
      return { applied: false, version: this.version };
    }
    if (ctx.instanceId <= this.version || ctx.instanceId < this.reflectsBelow) {
      // Already reflected: master variables adopted from a peer are newer than this operation.
      return { applied: false, version: this.version };
    }
    const op = decodeMasterOperation(value);
    if (op === undefined) {
      this.counters.malformed++;
      return { applied: false, version: this.version };
    }
    const skipVersion = this.faults.renewWithoutVersionCheck === true && op.renewal;
    if (!skipVersion && op.version !== this.version) {
      this.counters.staleVersion++;
      return { applied: false, version: this.version };
    }
    if (!this.host.isMember(op.nodeId)) {
      this.counters.notMember++;
      return { applied: false, version: this.version };
    }
    const previous = this.vars?.masterNodeId;
    this.vars = { masterNodeId: op.nodeId, version: ctx.instanceId, leaseMs: op.leaseMs };
    const now = this.host.now();
    if (op.nodeId === this.host.nodeId) {
      const start = this.faults.lateLeaseStart ? now : this.starts.get(op.nonce);
      // An operation of mine I no longer wait for (replayed, or its proposal timed out) gives me
      // no lease: I cannot tell when it started. I will renew it (PhxPaxos: no SMCtx → timeout 0).
      this.expiresAtMs =
        start === undefined ? Number.NEGATIVE_INFINITY : start + op.leaseMs - this.leaseMarginMs;
    } else {
      this.expiresAtMs = now + op.leaseMs;
    }
    if (previous === op.nodeId) this.counters.renewals++;
    else this.counters.elections++;
    this.host.persist(this.vars);
    if (previous !== op.nodeId) this.host.changed(this.vars);
    return { applied: true, version: ctx.instanceId };
  }

  /**
   * Forgets the master state: a checkpoint install (or a skip to a checkpoint) passed master
   * operations this node never applied, so its variables may be stale, and judging later
   * operations against a stale version could grant this node a lease the others refused (the
   * simulator found it: two masters after an install). Until a peer's variables are adopted
   * (SendNowInstanceID carries them), no operation is evaluated, none proposed, no lease held.
   */
  forget(): void {
    this.reset(undefined, 0);
  }

  /**
   * Takes the master variables a checkpoint's sender carried (PhxPaxos GetCheckpointBuffer /
   * UpdateByCheckpoint): its state as of its log up to `asOf` (its now instance id when it sent
   * BEGIN, past the checkpoint). Safe although ahead of this node's log: operations below
   * `asOf` are reflected and not evaluated again, and any later one applies only if it names
   * the version every node holds then, as on the sender. Never a lease of mine: a lease starts
   * only from an operation of mine this node applied; another master is waited out a full lease.
   * Without this, a group whose every member installed a checkpoint would have nobody to give
   * variables and never elect a master again. undefined: the sender did not know them either.
   */
  restore(carried: MasterVariables | typeof NO_MASTER_YET | undefined, asOf: number): void {
    this.reload(carried, asOf);
    if (carried !== undefined) this.counters.fromCheckpoint++;
    if (this.vars !== undefined) this.host.changed(this.vars);
  }

  /** restore() again, uncounted: the group's restart after the install (nothing new). */
  reload(carried: MasterVariables | typeof NO_MASTER_YET | undefined, asOf: number): void {
    this.reset(carried, carried === undefined ? 0 : asOf);
  }

  /**
   * adopt() for the bytes of a peer's SendNowInstanceID, which reflect the peer's log up to
   * `asOfInstanceId` (its now instance id); malformed ones are counted and dropped.
   */
  adoptEncoded(bytes: Uint8Array, asOfInstanceId: number): boolean {
    const v = decodeStoredMaster(bytes);
    if (v === undefined) {
      this.counters.malformedVariables++;
      return false;
    }
    if (!this.reflectsMyLog(asOfInstanceId)) return false;
    if (v === NO_MASTER_YET) {
      // A peer at least as far as me applied no master operation at all: for a node that forgot
      // its state (a checkpoint install) that is the state to start from; anyone else knows it.
      if (this.known) return false;
      this.known = true;
      this.counters.adopted++;
      return true;
    }
    return this.adopt(v, asOfInstanceId);
  }

  /**
   * Adopts a peer's newer master variables (SendNowInstanceID, PhxPaxos UpdateByCheckpoint):
   * another master gets a full lease from now; myself, none. True when they were newer.
   * `asOfInstanceId` is the peer's now instance id: variables of a peer behind me miss operations
   * I passed (while unknown, after an install), so they are refused, known or not.
   */
  adopt(v: MasterVariables, asOfInstanceId: number): boolean {
    if (!this.reflectsMyLog(asOfInstanceId)) return false;
    if (this.known && v.version <= this.version) return false;
    this.known = true;
    const previous = this.vars?.masterNodeId;
    this.vars = { ...v };
    this.expiresAtMs =
      v.masterNodeId === this.host.nodeId ? Number.NEGATIVE_INFINITY : this.host.now() + v.leaseMs;
    this.counters.adopted++;
    this.host.persist(this.vars);
    if (previous !== v.masterNodeId) this.host.changed(this.vars);
    return true;
  }

  /** Whether a peer's variables as of its now instance id cover every instance I executed. */
  private reflectsMyLog(asOfInstanceId: number): boolean {
    if (asOfInstanceId >= this.host.nowInstanceId()) return true;
    this.counters.behindVariables++;
    return false;
  }
}
