// The clients: unique-value proposals (some batched), register writes over few keys and values,
// and linearizable reads of those registers by each path apps/node serves (a barrier, a quorum
// read index, a lease read index), at random times from the seed until the heal. What each was told goes to the
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

/**
 * Workload shares (from their own stream): reads, register writes; the rest unique values. Reads
 * split by the same draw: barrier reads, quorum reads, then lease reads (quorum reads in seeds
 * where lease reads promise nothing: no elections, or nodes that propose without the master).
 */
const REGISTER_WRITE_SHARE = 0.3;
const READ_SHARE = 0.2;
const BARRIER_READ_UNDER = 0.05;
const QUORUM_READ_UNDER = 0.1;
/** Register keys per group, and the values written: few, so equal bytes are written often. */
const REGISTER_KEYS = 2;
const REGISTER_VALUES = ['a', 'b', 'c'] as const;

type ReadVia = 'barrier' | 'quorum' | 'lease';

/** A read begun: its checker id, register, path, and whether its node was behind a live peer. */
interface Read {
  id: number;
  key: string;
  group: number;
  via: ReadVia;
  behind: boolean;
  what: string;
}

/** The coverage count of reads answered, per path (and `…-behind` for those begun behind). */
const READ_PATHS = {
  barrier: 'barrier-reads',
  quorum: 'quorum-reads',
  lease: 'lease-reads',
} as const satisfies Record<ReadVia, PathKind>;

export interface WorkloadPort {
  /** The main stream (shared with fault injection: draws interleave in event order). */
  rng: RandomSource;
  /** Which operation each proposal is: its own stream (the other draws stay as they were). */
  workloadRng: RandomSource;
  queue: EventQueue;
  nodes: readonly SimNode[];
  groups: number;
  /**
   * Whether reads under the master's lease are linearizable in this seed: elections run and every
   * node forwards its proposals to the master (PaxosNode.readIndex's precondition).
   */
  leaseReads: boolean;
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
  private readonly leaseReads: boolean;
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
    this.leaseReads = h.leaseReads;
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
    if (kind < BARRIER_READ_UNDER) return this.barrierRead(n, group);
    if (kind < QUORUM_READ_UNDER || (kind < READ_SHARE && !this.leaseReads))
      return this.indexRead(n, group, 'quorum');
    if (kind < READ_SHARE) return this.indexRead(n, group, 'lease');
    if (kind < READ_SHARE + REGISTER_WRITE_SHARE) return this.registerWrite(n, group);
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
   * A barrier read, as apps/node serves `?consistent=barrier`: an empty batch value for no state
   * machine (every barrier packs to the same user bytes), then the node's own state.
   */
  private barrierRead(n: SimNode, group: number): void {
    const read = this.beginRead(n, group, 'barrier');
    const p = n.node!.batchPropose(group, new Uint8Array(0), {
      smId: NO_SM_ID,
      timeoutMs: PROPOSE_TIMEOUT_MS,
    });
    this.settleWorkload(n, group, read.what, p, (r) => this.endRead(n, read, r.instanceId));
  }

  /**
   * A read through a read index, as apps/node serves `?consistent=true` (a quorum round,
   * PaxosNode.quorumReadIndex) and `?consistent=lease` (the master's applied instance under its
   * lease, PaxosNode.readIndex), then the node's own state. Refusals are counted by code.
   */
  private indexRead(n: SimNode, group: number, via: 'quorum' | 'lease'): void {
    const read = this.beginRead(n, group, via);
    const opts = { timeoutMs: PROPOSE_TIMEOUT_MS };
    const p =
      via === 'quorum' ? n.node!.quorumReadIndex(group, opts) : n.node!.readIndex(group, opts);
    const incarnation = n.incarnation;
    p.then(
      (r) => {
        if (n.incarnation === incarnation) this.endRead(n, read, r.instanceId);
      },
      (e: { code?: string }) => {
        const code = `${via}-read:${e.code ?? 'ERROR'}`;
        this.rejected[code] = (this.rejected[code] ?? 0) + 1;
        this.log(`n${n.id} ${read.what} rejected: ${e.code ?? 'ERROR'}`);
      },
    );
  }

  private beginRead(n: SimNode, group: number, via: ReadVia): Read {
    const key = `g${group}.r${this.workloadRng.int(REGISTER_KEYS)}`;
    const id = ++this.operationSeq;
    const learned = n.node!.instanceId(group);
    const behind = this.nodes.some(
      (m) => m.alive && m.node !== undefined && m.node.instanceId(group) > learned,
    );
    const what = `${via} read of ${key}`;
    this.log(`n${n.id} ${what}${behind ? ' (behind a peer)' : ''}`);
    this.registers.observe({
      kind: 'read-begin',
      id,
      key,
      node: n.id,
      via,
      atMs: this.queue.nowMs,
    });
    return { id, key, group, via, behind, what };
  }

  /** A read answered at `instanceId`: what the node's state holds now goes to the checker. */
  private endRead(n: SimNode, read: Read, instanceId: number): void {
    const now = n.node!.instanceId(read.group);
    const value = this.registerValue(read.group, read.key, now);
    this.registers.observe({
      kind: 'read-ok',
      id: read.id,
      value,
      instanceId,
      atMs: this.queue.nowMs,
    });
    this.paths[READ_PATHS[read.via]]++;
    if (read.behind) this.paths[`${READ_PATHS[read.via]}-behind`]++;
    this.log(
      `n${n.id} ${read.what} at instance ${instanceId} (learned up to ${now - 1}): ${value ?? 'nothing'}`,
    );
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
