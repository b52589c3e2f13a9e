// The master election loop of one node (PhxPaxos MasterMgr): when no other node's lease is live
// in its view, it proposes through the log to become or stay master. The lease rule and why it is
// safe are in master.ts.
import { PaxosError } from './errors';
import {
  MASTER_CANDIDATE_STAGGER_OF_TRY,
  MASTER_DROP_PAUSE_LEASES,
  MASTER_LEASE_MIN_MS,
  MASTER_TRIES_PER_LEASE,
} from './options';
import type { MasterStateMachine } from './master';
import { encodeMasterOperation, type MasterOperation } from './master-variables';

export interface MasterOptions {
  leaseMs: number;
  leaseMarginMs: number;
}

export interface MasterElectionPort {
  readonly nodeId: number;
  now(): number;
  /** Uniform in [0, 1): jitter of the try interval. */
  random(): number;
  /** Runs fn after delayMs on the group's loop; returns a cancel function. */
  schedule(delayMs: number, fn: () => void): () => void;
  /** Whether this node may propose now (a voting member, not a follower, group running). */
  canPropose(): boolean;
  /** The group's voting members at this point of the log (the candidates' order). */
  members(): readonly number[];
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
 *
 * Failover (issue 22; ours, PhxPaxos waits for the next tick, up to 1½ intervals): when another
 * node's lease ends in this node's view, it tries at that moment, after its rank among the
 * candidates times a stagger (MASTER_CANDIDATE_STAGGER_OF_TRY of the interval). The candidates
 * are the voting members in id order starting after the recorded master (it ranks first itself:
 * it only renews). So two survivors whose views end together do not propose at once and duel.
 */
export class MasterElection {
  private cancelTimer: (() => void) | undefined;
  private cancelExpiry: (() => void) | undefined;
  /** The try at the end of the lease in view (plus this node's stagger), when one is due. */
  private cancelWake: (() => void) | undefined;
  private running = false;
  private inFlight = false;
  private pausedUntilMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly host: MasterElectionPort,
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
    this.cancelWake?.();
    this.cancelWake = undefined;
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
    const mine = master?.nodeId === this.host.nodeId;
    // Another node's lease (live, or ended less than my stagger ago): try when my turn comes.
    const turnMs = mine ? this.host.now() : this.sm.leaseEndMs + this.rank() * this.staggerMs();
    if (turnMs > this.host.now()) {
      this.wakeAt(turnMs);
      return;
    }
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

  /** Tries again at `atMs` on this node's clock (one such wake at a time). */
  private wakeAt(atMs: number): void {
    this.cancelWake?.();
    this.cancelWake = this.host.schedule(atMs - this.host.now(), () => {
      this.cancelWake = undefined;
      this.tryBeMaster();
    });
  }

  /**
   * This node's place among the candidates once the recorded master's lease ends: 0 for the
   * master itself and the next voting member after it in id order (wrapping), 1 for the one
   * after … (the lowest id first when no master was recorded).
   */
  private rank(): number {
    const master = this.sm.variables?.masterNodeId ?? 0;
    const me = this.host.nodeId;
    if (me === master) return 0;
    const others = this.host
      .members()
      .filter((id) => id !== master)
      .sort((a, b) => a - b);
    const after = others.filter((id) => id > master);
    const order = [...after, ...others.filter((id) => id < master)];
    return Math.max(0, order.indexOf(me));
  }

  private staggerMs(): number {
    const tryMs = (this.options.leaseMs - this.options.leaseMarginMs) / MASTER_TRIES_PER_LEASE;
    return Math.floor(tryMs * MASTER_CANDIDATE_STAGGER_OF_TRY);
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
