// Master election with leases (PhxPaxos src/master: MasterStateMachine in master_sm.cpp, MasterMgr
// in master_mgr.cpp). A node proposes through the log "I am master for leaseMs, against master
// version V"; every node applies the same operations in log order, so all agree on the recorded
// master and its version. Two parts:
//
// - MasterStateMachine (system smId MASTER_SM_ID): the deterministic apply rule, the master
//   variables { masterNodeId, version, leaseMs } persisted in meta `masterVariables`, and each
//   node's *local* view of the lease (when it expires on this node's clock).
// - MasterElection: the timer loop of one node (PhxPaxos MasterMgr::run / TryBeMaster) that
//   proposes to become or stay master when no other node's lease is live in its view.
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
import { PaxosError } from './errors';
import { MASTER_DROP_PAUSE_LEASES, MASTER_LEASE_MIN_MS, MASTER_TRIES_PER_LEASE } from './options';
import {
  decodeSystemVariables,
  encodeSystemVariables,
  type ExecuteContext,
  type StateMachine,
  type SystemVariables,
} from './state-machine';
import { MASTER_SM_ID } from './value';

/** The master variables (PhxPaxos MasterVariables): the log's state, the same on every node. */
export interface MasterVariables {
  masterNodeId: number;
  /** Instance id of the operation that made this master (PhxPaxos m_llMasterVersion). */
  version: number;
  leaseMs: number;
}

/** What getMaster() reports: the recorded master while its lease is live in this node's view. */
export interface MasterInfo {
  nodeId: number;
  version: number;
  /** When the lease ends on this node's clock (the Scheduler's now()). */
  expiresAtMs: number;
}

/** The value a node proposes (PhxPaxos MasterOperator). */
export interface MasterOperation {
  nodeId: number;
  /** The master version the proposer saw; NO_MASTER_VERSION when there was none. */
  version: number;
  leaseMs: number;
  /** True when the proposer was the recorded master (a renewal); informational only. */
  renewal: boolean;
  /** Makes each proposal's bytes unique and lets the proposer recognise its own (PhxPaxos sid). */
  nonce: number;
}

/** Version before any master operation was applied (PhxPaxos uses (uint64)-1). */
export const NO_MASTER_VERSION = -1;

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

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function isId(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) > 0;
}

function isVersion(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= NO_MASTER_VERSION;
}

function isLease(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) > 0;
}

function parse(bytes: Uint8Array): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(decoder.decode(bytes)) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined; // not JSON: the caller counts it as malformed
  }
}

export function encodeMasterVariables(v: MasterVariables): Uint8Array {
  return encoder.encode(
    JSON.stringify({ masterNodeId: v.masterNodeId, version: v.version, leaseMs: v.leaseMs }),
  );
}

/** Parses master variables from a peer or the disk; undefined when malformed. */
export function decodeMasterVariables(bytes: Uint8Array): MasterVariables | undefined {
  const v = parse(bytes);
  if (v === undefined) return undefined;
  const { masterNodeId, version, leaseMs } = v;
  if (!isId(masterNodeId) || !isVersion(version) || version < 0 || !isLease(leaseMs))
    return undefined;
  return { masterNodeId, version, leaseMs };
}

/**
 * What meta `masterVariables` holds: the variables, or NO_MASTER_YET, written when a group starts
 * with an empty log, so that a missing record later means "lost" (e.g. a checkpoint install that
 * did not keep it), not "no master operation yet".
 */
export const NO_MASTER_YET = 'none';

/**
 * `asOf`: the first instance the variables do not reflect, when they came from a peer ahead of
 * this node's log (a checkpoint's sender); 0 (left out) when they reflect this node's own log.
 */
export function encodeStoredMaster(
  v: MasterVariables | typeof NO_MASTER_YET,
  asOf = 0,
): Uint8Array {
  const fields = v === NO_MASTER_YET ? { none: true } : { ...v };
  return encoder.encode(JSON.stringify(asOf > 0 ? { ...fields, asOf } : fields));
}

/** The `asOf` of meta `masterVariables` (0 when absent or malformed: nothing skipped). */
export function decodeStoredMasterAsOf(bytes: Uint8Array): number {
  const asOf = parse(bytes)?.asOf;
  return Number.isSafeInteger(asOf) && (asOf as number) > 0 ? (asOf as number) : 0;
}

/**
 * What meta `masterVariables` holds after a checkpoint install (or a skip to a checkpoint) passed
 * master operations this node never applied: read back as "unknown" (decodeStoredMaster gives
 * undefined), so a restart does not trust stale variables either.
 */
export function encodeUnknownMaster(): Uint8Array {
  return encoder.encode('{"unknown":true}');
}

/** Parses meta `masterVariables`; undefined when malformed. */
export function decodeStoredMaster(
  bytes: Uint8Array,
): MasterVariables | typeof NO_MASTER_YET | undefined {
  if (parse(bytes)?.none === true) return NO_MASTER_YET;
  return decodeMasterVariables(bytes);
}

/**
 * The group state a checkpoint carries to its receiver (BEGIN's buffer, then the manifest; see
 * MasterStateMachine.restore): the sender's master variables (undefined: unknown there too) and
 * membership, both as of its log up to `asOf`, its now instance id when BEGIN left.
 */
export interface CarriedGroupState {
  asOf: number;
  master: MasterVariables | typeof NO_MASTER_YET | undefined;
  system: SystemVariables;
}

export function encodeCarriedGroupState(s: CarriedGroupState): string {
  return JSON.stringify({
    asOf: s.asOf,
    master: s.master === undefined ? null : decoder.decode(encodeStoredMaster(s.master)),
    system: decoder.decode(encodeSystemVariables(s.system)),
  });
}

/** Parses a checkpoint's carried state; undefined when none ('') or malformed. */
export function decodeCarriedGroupState(text: string): CarriedGroupState | undefined {
  const v = parse(encoder.encode(text));
  if (v === undefined || !isId(v.asOf) || typeof v.system !== 'string') return undefined;
  const system = decodeSystemVariables(encoder.encode(v.system));
  if (system === undefined) return undefined;
  if (v.master === null) return { asOf: v.asOf, master: undefined, system };
  if (typeof v.master !== 'string') return undefined;
  const master = decodeStoredMaster(encoder.encode(v.master));
  return master === undefined ? undefined : { asOf: v.asOf, master, system };
}

export function encodeMasterOperation(op: MasterOperation): Uint8Array {
  return encoder.encode(
    JSON.stringify({
      nodeId: op.nodeId,
      version: op.version,
      leaseMs: op.leaseMs,
      renewal: op.renewal,
      nonce: op.nonce,
    }),
  );
}

/** Parses an operation from the log; undefined when malformed. */
export function decodeMasterOperation(bytes: Uint8Array): MasterOperation | undefined {
  const v = parse(bytes);
  if (v === undefined) return undefined;
  const { nodeId, version, leaseMs, renewal, nonce } = v;
  if (!isId(nodeId) || !isVersion(version) || !isLease(leaseMs)) return undefined;
  if (typeof renewal !== 'boolean' || !Number.isSafeInteger(nonce)) return undefined;
  return { nodeId, version, leaseMs, renewal, nonce: nonce as number };
}

export interface MasterHost {
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

export interface MasterOptions {
  leaseMs: number;
  leaseMarginMs: number;
}

/**
 * The master state machine (PhxPaxos MasterStateMachine). `variables` are the log's state;
 * `expiresAtMs` is this node's view of the lease on its own clock.
 */
export class MasterStateMachine implements StateMachine {
  readonly smId = MASTER_SM_ID;
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
    private readonly host: MasterHost,
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

export interface MasterElectionHost {
  readonly nodeId: number;
  now(): number;
  /** Uniform in [0, 1): jitter of the try interval. */
  random(): number;
  /** Runs fn after delayMs on the group's loop; returns a cancel function. */
  schedule(delayMs: number, fn: () => void): () => void;
  /** Whether this node may propose now (a voting member, not a follower, group running). */
  canPropose(): boolean;
  /** Proposes an operation to the master state machine; settles once applied here or failed. */
  propose(value: Uint8Array, timeoutMs: number): Promise<unknown>;
  event(name: string, fields: Record<string, unknown>): void;
  /** An unexpected error (a bug): it must reach the group's error path, not vanish. */
  fail(error: unknown): void;
}

export function checkMasterOptions(o: MasterOptions): void {
  if (!Number.isSafeInteger(o.leaseMs) || o.leaseMs < MASTER_LEASE_MIN_MS)
    throw new PaxosError(
      'E_BAD_ARGUMENT',
      `masterLeaseMs must be an integer ≥ ${MASTER_LEASE_MIN_MS}, got ${String(o.leaseMs)}`,
    );
  if (
    !Number.isSafeInteger(o.leaseMarginMs) ||
    o.leaseMarginMs < 0 ||
    o.leaseMarginMs * 2 > o.leaseMs
  )
    throw new PaxosError(
      'E_BAD_ARGUMENT',
      `masterLeaseMarginMs must be an integer in 0 … masterLeaseMs/2, got ${String(o.leaseMarginMs)}`,
    );
}

/**
 * One node's election loop for one group (PhxPaxos MasterMgr::run and TryBeMaster). Every try
 * interval it proposes to become (or stay) master unless another node's lease is live in its
 * view. The interval is (lease - margin)/4, jittered to [½, 1½) of that (MasterMgr::run), so a
 * master renews several times per lease. dropMaster() ends the local lease and skips tries for
 * two leases (MasterMgr::run, m_bNeedDropMaster).
 */
export class MasterElection {
  private cancelTimer: (() => void) | undefined;
  private cancelExpiry: (() => void) | undefined;
  private running = false;
  private inFlight = false;
  private pausedUntilMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly host: MasterElectionHost,
    private readonly sm: MasterStateMachine,
    private readonly options: MasterOptions,
  ) {
    checkMasterOptions(options);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.arm(0);
  }

  stop(): void {
    this.running = false;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.cancelExpiry?.();
    this.cancelExpiry = undefined;
  }

  /** Gives up the lease here now and does not try again for two leases. */
  drop(): boolean {
    this.pausedUntilMs = this.host.now() + MASTER_DROP_PAUSE_LEASES * this.options.leaseMs;
    const dropped = this.sm.dropLocal();
    if (dropped) this.host.event('master-dropped', { version: this.sm.version });
    return dropped;
  }

  /** One try (PhxPaxos MasterMgr::TryBeMaster). Public for the unit tests. */
  tryBeMaster(): void {
    if (!this.running || this.inFlight || this.host.now() < this.pausedUntilMs) return;
    if (!this.host.canPropose() || !this.sm.anchored) return;
    const master = this.sm.master();
    if (master !== undefined && master.nodeId !== this.host.nodeId) return;
    const nonce = Math.floor(this.host.random() * 0x1_0000_0000);
    // The lease counts from now, before the proposal leaves (see the header comment).
    const startMs = this.host.now();
    const op: MasterOperation = {
      nodeId: this.host.nodeId,
      version: this.sm.version,
      leaseMs: this.options.leaseMs,
      renewal: this.sm.variables?.masterNodeId === this.host.nodeId,
      nonce,
    };
    this.sm.expectOwn(nonce, startMs);
    this.sm.counters.attempts++;
    this.inFlight = true;
    // Applied later than its own lease end, the operation would give no lease: wait no longer.
    const timeoutMs = this.options.leaseMs - this.options.leaseMarginMs;
    this.host.propose(encodeMasterOperation(op), timeoutMs).then(
      () => this.settled(nonce, undefined),
      (error: unknown) => this.settled(nonce, error),
    );
  }

  private settled(nonce: number, error: unknown): void {
    this.sm.forgetOwn(nonce);
    this.inFlight = false;
    if (error !== undefined) {
      // Every way a proposal fails is a coded PaxosError (timeout, stopped, queue full, not a
      // member …): the next try handles it. Anything else is a bug and must surface.
      if (!(error instanceof PaxosError)) {
        this.host.fail(error);
        return;
      }
      this.sm.counters.attemptsFailed++;
      this.host.event('master-propose-failed', { code: error.code });
      return;
    }
    const end = this.sm.ownLeaseEndMs;
    if (end > this.host.now() && this.running) {
      this.cancelExpiry?.();
      this.cancelExpiry = this.host.schedule(end - this.host.now(), () => {
        this.cancelExpiry = undefined;
        this.sm.checkExpiry(end);
      });
    }
  }

  /** The next try in [½, 1½) × (lease - margin)/4 (PhxPaxos MasterMgr::run). */
  private arm(delayMs: number): void {
    if (!this.running) return;
    this.cancelTimer = this.host.schedule(delayMs, () => {
      this.cancelTimer = undefined;
      this.tryBeMaster();
      const base = (this.options.leaseMs - this.options.leaseMarginMs) / MASTER_TRIES_PER_LEASE;
      this.arm(Math.floor(base / 2 + this.host.random() * base));
    });
  }
}
