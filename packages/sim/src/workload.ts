// The clients: unique-value proposals (some batched), register writes over few keys and values,
// and barrier reads, at random times from the seed until the heal. What each was told goes to the
// checkers (identity, linearizability, durability); rejections are counted by code.
import type { RandomSource } from '@tspaxos/core';
import { NO_SM_ID, type ProposeResult } from '@tspaxos/paxos/internal';
import type { AcknowledgedIdentityChecker } from './checkers/acknowledged-identity';
import type { DurabilityChecker } from './checkers/durability';
import type { RegisterLinearizabilityChecker } from './checkers/register-linearizability';
import type { PathKind } from './coverage';
import type { EventQueue } from './event-queue';
import { PROPOSE_TIMEOUT_MS } from './options';
import { RECORDER_SM_ID } from './recorder';
import type { SimNode } from './sim-node';

/** Workload shares (from their own stream): register writes, barrier reads; the rest unique values. */
const REGISTER_WRITE_SHARE = 0.3;
const BARRIER_READ_SHARE = 0.2;
/** Register keys per group, and the values written: few, so equal bytes are written often. */
const REGISTER_KEYS = 2;
const REGISTER_VALUES = ['a', 'b', 'c'] as const;

export interface WorkloadPort {
  /** The main stream (shared with fault injection: draws interleave in event order). */
  rng: RandomSource;
  /** Which operation each proposal is: its own stream (the other draws stay as they were). */
  workloadRng: RandomSource;
  queue: EventQueue;
  nodes: readonly SimNode[];
  groups: number;
  proposed: Set<string>;
  /** group → instanceId → values chosen there (AgreementChecker.chosen). */
  chosen: ReadonlyArray<ReadonlyMap<number, readonly string[]>>;
  paths: Record<PathKind, number>;
  identities: AcknowledgedIdentityChecker;
  registers: RegisterLinearizabilityChecker;
  durability: DurabilityChecker;
  log: (line: string) => void;
}

export class Workload {
  /** Proposals drawn (unique values, writes and reads: each takes a sequence number). */
  proposals = 0;
  /** Rejections by error code. */
  readonly rejected: Record<string, number> = {};
  private stopped = false;
  private operationSeq = 0;
  /** Workload proposals not yet settled (a dead incarnation's never settle). */
  private readonly proposalsPending = new Set<{ n: SimNode; incarnation: number; group: number }>();
  private readonly rng: RandomSource;
  private readonly workloadRng: RandomSource;
  private readonly queue: EventQueue;
  private readonly nodes: readonly SimNode[];
  private readonly groups: number;
  private readonly proposed: Set<string>;
  private readonly chosen: ReadonlyArray<ReadonlyMap<number, readonly string[]>>;
  private readonly paths: Record<PathKind, number>;
  private readonly identities: AcknowledgedIdentityChecker;
  private readonly registers: RegisterLinearizabilityChecker;
  private readonly durability: DurabilityChecker;
  private readonly log: (line: string) => void;

  constructor(h: WorkloadPort) {
    this.rng = h.rng;
    this.workloadRng = h.workloadRng;
    this.queue = h.queue;
    this.nodes = h.nodes;
    this.groups = h.groups;
    this.proposed = h.proposed;
    this.chosen = h.chosen;
    this.paths = h.paths;
    this.identities = h.identities;
    this.registers = h.registers;
    this.durability = h.durability;
    this.log = h.log;
  }

  /** No more proposals (the heal). */
  stop(): void {
    this.stopped = true;
  }

  schedule(): void {
    const next = (): void => {
      if (this.stopped) return;
      const delay = this.rng.int(150);
      this.queue.at(
        this.queue.nowMs + delay,
        () => {
          this.propose();
          next();
        },
        'propose',
      );
    };
    next();
  }

  private propose(): void {
    const alive = this.nodes.filter((n) => n.alive && n.node && n.voting);
    if (alive.length === 0 || this.stopped) return;
    const n = alive[this.rng.int(alive.length)]!;
    const group = this.rng.int(this.groups);
    const value = `g${group}.v${++this.proposals}`;
    const batch = this.rng.next() < 0.5;
    const kind = this.workloadRng.next();
    if (kind < BARRIER_READ_SHARE) return this.barrierRead(n, group);
    if (kind < BARRIER_READ_SHARE + REGISTER_WRITE_SHARE) return this.registerWrite(n, group);
    this.proposed.add(value);
    this.log(`n${n.id} ${batch ? 'batchPropose' : 'propose'} "${value}"`);
    const bytes = new TextEncoder().encode(value);
    const opts = { smId: RECORDER_SM_ID, timeoutMs: PROPOSE_TIMEOUT_MS };
    const p: Promise<ProposeResult> = batch
      ? n.node!.batchPropose(group, bytes, opts)
      : n.node!.propose(group, bytes, opts);
    this.settleWorkload(n, group, value, p, (r) => {
      this.durability.observe({
        kind: 'acknowledged',
        group,
        instanceId: r.instanceId,
        value,
        node: n.id,
      });
      this.log(`n${n.id} "${value}" chosen at instance ${r.instanceId}`);
    });
  }

  /**
   * A workload proposal's outcome: acknowledged (its identity goes to the identity checker), or
   * rejected and counted by code. A dead incarnation's late answers are not the system's.
   */
  private settleWorkload(
    n: SimNode,
    group: number,
    what: string,
    p: Promise<ProposeResult>,
    acknowledged: (r: ProposeResult) => void,
  ): void {
    const incarnation = n.incarnation;
    const pending = { n, incarnation, group };
    this.proposalsPending.add(pending);
    p.finally(() => this.proposalsPending.delete(pending)).then(
      (r) => {
        if (n.incarnation !== incarnation) return;
        this.identities.observe({
          kind: 'acknowledged',
          group,
          instanceId: r.instanceId,
          identity: r.identity,
          node: n.id,
          what,
        });
        acknowledged(r);
      },
      (e: { code?: string }) => {
        const code = e.code ?? 'ERROR';
        this.rejected[code] = (this.rejected[code] ?? 0) + 1;
        this.log(`n${n.id} ${what} rejected: ${code}`);
      },
    );
  }

  /**
   * A register write: few keys and values, so different clients write equal bytes (issue 17).
   * Never batched: one write per instance keeps the recorder's "executed twice" check exact.
   */
  registerWrite(n: SimNode, group: number): void {
    const key = `g${group}.r${this.workloadRng.int(REGISTER_KEYS)}`;
    const value = `${key}=${REGISTER_VALUES[this.workloadRng.int(REGISTER_VALUES.length)]!}`;
    const id = ++this.operationSeq;
    this.proposed.add(value);
    this.log(`n${n.id} write "${value}"`);
    this.registers.observe({ kind: 'write-begin', id, key, value, atMs: this.queue.nowMs });
    const p = n.node!.propose(group, new TextEncoder().encode(value), {
      smId: RECORDER_SM_ID,
      timeoutMs: PROPOSE_TIMEOUT_MS,
    });
    this.settleWorkload(n, group, `write "${value}"`, p, (r) => {
      this.durability.observe({
        kind: 'acknowledged',
        group,
        instanceId: r.instanceId,
        value,
        node: n.id,
      });
      this.registers.observe({ kind: 'write-ok', id, atMs: this.queue.nowMs });
      this.paths['register-writes-acknowledged']++;
      this.log(`n${n.id} write "${value}" chosen at instance ${r.instanceId}`);
    });
  }

  /**
   * A barrier read, as apps/node serves `?consistent=true`: an empty batch value for no state
   * machine (every barrier packs to the same user bytes), then the node's own state.
   */
  private barrierRead(n: SimNode, group: number): void {
    const key = `g${group}.r${this.workloadRng.int(REGISTER_KEYS)}`;
    const id = ++this.operationSeq;
    const learned = n.node!.instanceId(group);
    const behind = this.nodes.some(
      (m) => m.alive && m.node !== undefined && m.node.instanceId(group) > learned,
    );
    this.log(`n${n.id} barrier read of ${key}${behind ? ' (behind a peer)' : ''}`);
    this.registers.observe({ kind: 'read-begin', id, key, node: n.id, atMs: this.queue.nowMs });
    const p = n.node!.batchPropose(group, new Uint8Array(0), {
      smId: NO_SM_ID,
      timeoutMs: PROPOSE_TIMEOUT_MS,
    });
    this.settleWorkload(n, group, `barrier read of ${key}`, p, (r) => {
      const now = n.node!.instanceId(group);
      const value = this.registerValue(group, key, now);
      this.registers.observe({
        kind: 'read-ok',
        id,
        value,
        instanceId: r.instanceId,
        atMs: this.queue.nowMs,
      });
      this.paths['barrier-reads']++;
      if (behind) this.paths['barrier-reads-behind']++;
      this.log(
        `n${n.id} barrier read of ${key} at instance ${r.instanceId} (learned up to ${now - 1}): ${value ?? 'nothing'}`,
      );
    });
  }

  /**
   * The register `key` as a node that has executed every instance below `now` holds it: the last
   * write to it chosen below `now` (agreement and the checkpoint checks hold the node to the log).
   */
  private registerValue(group: number, key: string, now: number): string | undefined {
    let at = -1;
    let value: string | undefined;
    const prefix = `${key}=`;
    for (const [instanceId, values] of this.chosen[group]!) {
      if (instanceId >= now || instanceId < at) continue;
      for (const v of values) {
        if (!v.startsWith(prefix)) continue;
        at = instanceId;
        value = v;
      }
    }
    return value;
  }

  /** Whether a live node still has a workload proposal of group g pending (acknowledged or not). */
  backlogged(g: number): boolean {
    for (const p of this.proposalsPending)
      if (p.group === g && p.n.isLive(p.incarnation)) return true;
    return false;
  }
}
