// Fault injection and topology events of a run, all drawn from the seed: link faults,
// partitions, crashes and restarts, clock jumps and drift, fsync latency and failures (the
// simulated disk), the long-down node and its catch-up links, the follower's node dying, a
// membership change, and master-lease drops. Simulation owns the nodes; this decides when and how
// they are hurt. The scripted scenarios are in scripts.ts.
import type { RandomSource } from '@tspaxos/core';
import type { DurabilityPort } from '@tspaxos/storage';
import { type LinkConfig, type MemoryNetwork } from '@tspaxos/transport';
import type { Coverage, FaultKind } from './coverage';
import type { EventQueue } from './event-queue';
import { LONG_DOWN_AT_MS, LONG_DOWN_FOR_MS, PROPOSE_TIMEOUT_MS } from './options';
import type { SimNode } from './sim-node';
import type { LongDownCatchUp, MasterSettings, SimTopology } from './result';

/** Simulated fsync latency: uniform in this range (ms), or SLOW_FSYNC_MS with SLOW_FSYNC_RATE. */
const FSYNC_MS: [number, number] = [0.1, 5];
const SLOW_FSYNC_MS = 50;
const SLOW_FSYNC_RATE = 0.02;
/** Chance that an fsync during the fault phase is interrupted by a crash of its node. */
const CRASH_IN_FSYNC_RATE = 0.004;
/** At most one crash-in-fsync per this many virtual ms (so the cluster keeps making progress). */
const CRASH_IN_FSYNC_GAP_MS = 1500;
/** The long-down node returns only when the others have chosen this many instances past its log. */
const LONG_DOWN_MIN_BEHIND = 2;
/** …else it stays down this much longer (ms), the network healed, … */
const LONG_DOWN_POSTPONE_MS = 1000;
/** …but comes back at the latest this long before the end of the fault phase (ms). */
const LONG_DOWN_POSTPONE_LIMIT_MS = 1000;
/** While the long-down node is down, a working majority of the others is restored this often (ms). */
const LONG_DOWN_MAJORITY_CHECK_MS = 1000;
/** The links into a node that comes back to catch up are lossy for this long (ms). */
const CATCH_UP_LOSS_MS = 3000;
/** In election seeds the simulator calls dropMaster on a holder every so many ms (uniform). */
const MASTER_DROP_EVERY_MS: [number, number] = [1500, 4500];

/** What fault injection needs of the simulation (its streams, network, nodes and actions). */
export interface FaultsPort {
  /** The main stream (shared with the workload: draws interleave in event order). */
  rng: RandomSource;
  /** Fsync latencies and failures. */
  diskRng: RandomSource;
  /** Master elections' draws (lease, drift, jumps, drops). */
  masterRng: RandomSource;
  queue: EventQueue;
  net: MemoryNetwork;
  nodes: readonly SimNode[];
  votingIds: readonly number[];
  topology: SimTopology;
  coverage: Coverage;
  faults: boolean;
  faultPhaseMs: number;
  master: MasterSettings | undefined;
  masterClocksBounded: boolean;
  /** group → instanceId → values chosen there (AgreementChecker.chosen). */
  chosen: ReadonlyArray<ReadonlyMap<number, readonly string[]>>;
  inFaultPhase: () => boolean;
  log: (line: string) => void;
  crash: (n: SimNode, why: string) => void;
  start: (n: SimNode) => void;
  replaceDisk: (n: SimNode) => void;
}

export class Faults {
  private readonly rng: RandomSource;
  private readonly diskRng: RandomSource;
  private readonly masterRng: RandomSource;
  private readonly queue: EventQueue;
  private readonly net: MemoryNetwork;
  private readonly nodes: readonly SimNode[];
  private readonly votingIds: readonly number[];
  private readonly topology: SimTopology;
  private readonly coverage: Coverage;
  private readonly faults: boolean;
  private readonly faultPhaseMs: number;
  private readonly master: MasterSettings | undefined;
  private readonly masterClocksBounded: boolean;
  private readonly chosen: ReadonlyArray<ReadonlyMap<number, readonly string[]>>;
  private readonly inFaultPhase: () => boolean;
  private readonly log: (line: string) => void;
  private readonly crash: (n: SimNode, why: string) => void;
  private readonly start: (n: SimNode) => void;
  private readonly replaceDisk: (n: SimNode) => void;
  private nextCrashInFsyncAtMs = 0;
  private lastPartition: number[][] | undefined;
  /** node id → virtual time of its last clock jump (election seeds: one per 2 leases). */
  private readonly lastClockJumpAtMs = new Map<number, number>();
  /** Set once the long-down node is scheduled (its catch-up is counted from its return on). */
  longDownCatchUp: LongDownCatchUp | undefined;

  constructor(h: FaultsPort) {
    this.rng = h.rng;
    this.diskRng = h.diskRng;
    this.masterRng = h.masterRng;
    this.queue = h.queue;
    this.net = h.net;
    this.nodes = h.nodes;
    this.votingIds = h.votingIds;
    this.topology = h.topology;
    this.coverage = h.coverage;
    this.faults = h.faults;
    this.faultPhaseMs = h.faultPhaseMs;
    this.master = h.master;
    this.masterClocksBounded = h.masterClocksBounded;
    this.chosen = h.chosen;
    this.inFaultPhase = h.inFaultPhase;
    this.log = h.log;
    this.crash = h.crash;
    this.start = h.start;
    this.replaceDisk = h.replaceDisk;
  }

  /** The simulated fsync of one node's store: latency and failures from the seed. */
  durabilityPort(node: () => SimNode): DurabilityPort {
    return {
      schedule: (delayMs, fn) => {
        const n = node();
        this.queue.at(this.queue.nowMs + delayMs, fn, `n${n.id} fsync done`);
        if (
          this.faults &&
          this.inFaultPhase() &&
          n.alive &&
          n.downUntilMs < 0 &&
          this.queue.nowMs >= this.nextCrashInFsyncAtMs &&
          this.diskRng.next() < CRASH_IN_FSYNC_RATE
        ) {
          // A crash between a write call and its resolution: the write must be lost.
          this.nextCrashInFsyncAtMs = this.queue.nowMs + CRASH_IN_FSYNC_GAP_MS;
          const at = this.queue.nowMs + delayMs * this.diskRng.next() * 0.9;
          const incarnation = n.incarnation;
          this.queue.at(
            at,
            () => {
              // An fsync begun just before the heal completes after it: no crash then (every
              // node must stay up from the heal on).
              if (!n.isLive(incarnation) || !this.inFaultPhase()) return;
              this.coverage.faults['crash-in-fsync']++;
              this.crash(n, 'in the middle of an fsync');
            },
            `n${n.id} crash in fsync`,
          );
        }
      },
      fsyncDelayMs: () => {
        if (this.diskRng.next() < SLOW_FSYNC_RATE) {
          this.coverage.faults['slow-fsync']++;
          return SLOW_FSYNC_MS;
        }
        const [lo, hi] = FSYNC_MS;
        return Math.round((lo + this.diskRng.next() * (hi - lo)) * 10) / 10;
      },
      fsyncFails: () => {
        const n = node();
        if (!n.failNextFsync) return false;
        n.failNextFsync = false;
        this.log(`n${n.id} fsync FAILS: its store refuses writes from now on`);
        return true;
      },
    };
  }

  scheduleFaults(): void {
    const next = (): void => {
      const delay = 300 + this.rng.int(1500);
      if (this.queue.nowMs + delay >= this.faultPhaseMs) return;
      this.queue.at(
        this.queue.nowMs + delay,
        () => {
          this.injectFault();
          next();
        },
        'fault',
      );
    };
    next();
  }

  /** Shuffles with the seeded RNG (Fisher–Yates), never with a random comparator. */
  private shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.rng.int(i + 1);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  private injectFault(): void {
    const r = this.rng.int(100);
    const ids = this.nodes.map((n) => n.id);
    const pick = (): SimNode => this.nodes[this.rng.int(this.nodes.length)]!;
    const link = (): [number, number] | undefined => {
      const from = pick().id;
      const to = pick().id;
      return from === to ? undefined : [from, to];
    };
    const setLink = (kind: FaultKind, pair: [number, number], config: LinkConfig): void => {
      this.coverage.faults[kind]++;
      this.log(`${kind} n${pair[0]}→n${pair[1]} ${JSON.stringify(config)}`);
      this.net.setLink(pair[0], pair[1], config);
    };
    if (r < 10) {
      const pair = link();
      if (pair === undefined) return;
      setLink('link-fault', pair, {
        dropRate: this.rng.next() * 0.3,
        delayMs: [1, 1 + this.rng.int(80)],
        duplicateRate: this.rng.next() * 0.1,
        reorderRate: this.rng.next() * 0.3,
      });
    } else if (r < 16) {
      // Heavy loss one way only: the other direction works.
      const pair = link();
      if (pair === undefined) return;
      setLink('asymmetric-loss', pair, { dropRate: 0.5 + this.rng.next() * 0.5 });
    } else if (r < 21) {
      const pair = link();
      if (pair === undefined) return;
      setLink('corrupting-link', pair, { corruptRate: 0.05 + this.rng.next() * 0.3 });
    } else if (r < 29) {
      const shuffled = this.shuffle(ids);
      const cut = 1 + this.rng.int(shuffled.length - 1);
      this.lastPartition = [shuffled.slice(0, cut), shuffled.slice(cut)];
      this.coverage.faults.partition++;
      this.log(`partition ${JSON.stringify(this.lastPartition)}`);
      this.net.partition(this.lastPartition);
    } else if (r < 35) {
      const pair = link();
      if (pair === undefined) return;
      this.coverage.faults['one-way-partition']++;
      this.log(`one-way partition n${pair[0]}→n${pair[1]} cut`);
      this.net.cutOneWay(pair[0], pair[1]);
    } else if (r < 44) {
      this.coverage.faults.heal++;
      this.log('heal partition');
      this.net.heal();
    } else if (r < 48) {
      if (this.lastPartition === undefined) return;
      this.coverage.faults['fault-returns-after-heal']++;
      this.log(`partition returns ${JSON.stringify(this.lastPartition)}`);
      this.net.partition(this.lastPartition);
    } else if (r < 60) {
      const n = pick();
      if (!n.alive) return;
      this.coverage.faults.crash++;
      this.crash(n, 'at a fault event');
    } else if (r < 76) {
      const dead = this.nodes.filter((n) => !n.alive && n.downUntilMs < 0);
      if (dead.length === 0) return;
      const n = dead[this.rng.int(dead.length)]!;
      this.coverage.faults.restart++;
      if (n.store.failedWith !== undefined) n.store.repair();
      this.start(n);
    } else if (r < 80) {
      const n = pick();
      const jump = 500 + this.rng.int(5000);
      if (this.master && this.masterClocksBounded) return this.boundedClockJump(n, 1);
      n.clock.jump(jump, this.queue.nowMs);
      this.coverage.faults['clock-jump-forward']++;
      this.log(`clock of n${n.id} jumps +${jump} ms`);
    } else if (r < 84) {
      const n = pick();
      const jump = 200 + this.rng.int(3000);
      if (this.master && this.masterClocksBounded) return this.boundedClockJump(n, -1);
      n.clock.jump(-jump, this.queue.nowMs);
      this.coverage.faults['clock-jump-backward']++;
      this.log(`clock of n${n.id} jumps back -${jump} ms`);
    } else if (r < 88) {
      const n = pick();
      let rate = 1 + (this.rng.next() - 0.5) * 0.1; // ±5 %
      if (this.master && this.masterClocksBounded)
        rate = 1 + (this.masterRng.next() * 2 - 1) * this.master.driftMax;
      n.clock.setRate(rate, this.queue.nowMs);
      this.coverage.faults['clock-drift']++;
      this.log(`clock of n${n.id} drifts: rate ${rate.toFixed(4)}`);
    } else if (r < 93) {
      const n = pick();
      if (!n.alive || n.store.failedWith !== undefined) return;
      n.failNextFsync = true;
      this.coverage.faults['fsync-failure']++;
      this.log(`n${n.id}: its next fsync will fail`);
    } else if (r < 96) {
      // A faulted node (fsync failed, groups stopped) is taken down and its disk replaced.
      const faulted = this.nodes.filter((n) => n.store.failedWith !== undefined);
      if (faulted.length === 0) return;
      this.replaceDisk(faulted[this.rng.int(faulted.length)]!);
    } else {
      this.coverage.faults['links-reset']++;
      this.log('links reset');
      this.net.clearLinks();
    }
  }

  /** The per-seed topology's events: the long-down node, the follower's node dying, a membership change. */
  scheduleTopologyEvents(): void {
    const t = this.topology;
    if (t.longDown) {
      // Node 1 goes down early and stays down while the others move on; it must catch up.
      const n = this.nodes[0]!;
      this.longDownCatchUp = {
        backAtMs: undefined,
        behindAtReturn: 0,
        valuesLearnedFromPeers: 0,
        catchUpsStarted: 0,
        catchUpsFinished: 0,
        checkpointInstalls: 0,
      };
      const [atLo, atHi] = LONG_DOWN_AT_MS;
      const [forLo, forHi] = LONG_DOWN_FOR_MS;
      const downAt = atLo + this.rng.int(atHi - atLo);
      const upAt = downAt + forLo + this.rng.int(forHi - forLo);
      this.queue.at(
        downAt,
        () => {
          n.downUntilMs = upAt;
          if (n.alive) this.crash(n, '(kept down: it will need catch-up)');
          this.restoreMajority(n);
        },
        'long-down crash',
      );
      // Before the heal: checkSimOptions and the draw keep the fault phase long enough.
      this.queue.at(upAt, () => this.longDownReturn(n, downAt), 'long-down restart');
    } else if (t.followers > 0) {
      // The first follower follows node 1, which dies.
      const n = this.nodes[0]!;
      this.queue.at(
        2000 + this.rng.int(8000),
        () => {
          // With a short pinned fault phase this may come after the heal: no crash then.
          if (n.alive && this.inFaultPhase()) this.crash(n, '(the node a follower follows dies)');
        },
        'followed node crash',
      );
    }
    if (t.membershipChange) {
      const group = this.rng.int(t.groups);
      const drawn = this.votingIds[this.rng.int(this.votingIds.length)]!;
      // With a long-down node, the member removed is that node (an operator removes the dead
      // member): removing another would leave, with 3 voters, a group that cannot choose while
      // node 1 is down, so nothing would be there to catch up.
      const removed = t.longDown ? 1 : drawn;
      const removeAt = 1500 + this.rng.int(5000);
      this.changeMembership(group, removed, 'remove', removeAt, 5);
    }
  }

  /**
   * The long-down node comes back, once the others have moved on: while they have chosen fewer
   * than LONG_DOWN_MIN_BEHIND instances past its log (partitions or lossy links among them
   * held them back), the network heals and it stays down LONG_DOWN_POSTPONE_MS more, until
   * LONG_DOWN_POSTPONE_LIMIT_MS before the end of the fault phase.
   */
  private longDownReturn(n: SimNode, downAt: number): void {
    const behind = this.behind(n);
    if (
      behind < LONG_DOWN_MIN_BEHIND &&
      this.queue.nowMs + LONG_DOWN_POSTPONE_MS <= this.faultPhaseMs - LONG_DOWN_POSTPONE_LIMIT_MS
    ) {
      this.log(
        `n${n.id} stays down: the others are ${behind} instances past its log (network heals)`,
      );
      this.net.heal();
      this.net.clearLinks();
      n.downUntilMs = this.queue.nowMs + LONG_DOWN_POSTPONE_MS;
      this.queue.at(n.downUntilMs, () => this.longDownReturn(n, downAt), 'long-down restart');
      return;
    }
    n.downUntilMs = -1;
    if (n.store.failedWith !== undefined) n.store.repair();
    this.coverage.paths['long-down-restarts']++;
    const c = this.longDownCatchUp!;
    c.backAtMs = this.queue.nowMs;
    c.behindAtReturn = behind;
    this.log(`n${n.id} comes back after being down since ${downAt} ms, ${behind} instances behind`);
    if (!n.alive) this.start(n);
    this.lossyLinksInto(n);
  }

  /** A checkpoint install a restart finished: the long-down node caught up through it. */
  installFinishedAtStart(node: number): void {
    const c = this.longDownCatchUp;
    if (node === 1 && c?.backAtMs !== undefined) c.checkpointInstalls++;
  }

  /** Voting nodes other than `except` that work: up, with a disk that takes writes. */
  private workingVoters(except: SimNode): number {
    return this.nodes.filter(
      (m) => m.voting && m !== except && m.alive && m.store.failedWith === undefined,
    ).length;
  }

  /**
   * While the long-down node is kept down, the other voters get a working majority back every
   * LONG_DOWN_MAJORITY_CHECK_MS (so they move on and it has something to catch up): crashes
   * and failing fsyncs still hit them, two voters of five may be down at once, but a crashed
   * or faulted voter the majority needs is restarted (its disk replaced) at the next check.
   */
  private restoreMajority(longDown: SimNode): void {
    if (longDown.downUntilMs < 0 || !this.inFaultPhase()) return;
    const majority = Math.floor(this.topology.nodes / 2) + 1;
    for (const m of this.nodes) {
      if (this.workingVoters(longDown) >= majority) break;
      if (!m.voting || m === longDown) continue;
      if (m.store.failedWith !== undefined) this.replaceDisk(m);
      if (!m.alive) {
        this.log(`n${m.id} restarts: a majority must work while n1 is kept down`);
        this.start(m);
      }
    }
    this.queue.at(
      this.queue.nowMs + LONG_DOWN_MAJORITY_CHECK_MS,
      () => this.restoreMajority(longDown),
      'long-down majority check',
    );
  }

  /** Instances executed anywhere, in any group, past the end of n's durable log. */
  private behind(n: SimNode): number {
    let most = 0;
    for (let g = 0; g < this.topology.groups; g++) {
      const mine = (n.store.maxInstanceId(g) ?? -1) + 1;
      let end = 0;
      for (const instanceId of this.chosen[g]!.keys()) end = Math.max(end, instanceId + 1);
      most = Math.max(most, end - mine);
    }
    return most;
  }

  /**
   * A node that comes back to catch up does it over lossy, reordering links for a while: a
   * batch of its stream lost or overtaken makes it NACK, and a stream that goes silent makes it
   * re-ask. The links go back to the default after CATCH_UP_LOSS_MS (or at the heal).
   */
  private lossyLinksInto(n: SimNode): void {
    const config: LinkConfig = {
      dropRate: 0.1 + this.rng.next() * 0.2,
      reorderRate: 0.2 + this.rng.next() * 0.3,
    };
    this.coverage.faults['catch-up-link-loss']++;
    this.log(`catch-up-link-loss into n${n.id} ${JSON.stringify(config)}`);
    const from = this.nodes.filter((m) => m !== n).map((m) => m.id);
    for (const id of from) this.net.setLink(id, n.id, config);
    this.queue.at(
      this.queue.nowMs + CATCH_UP_LOSS_MS,
      () => {
        if (!this.inFaultPhase()) return; // the heal cleared every link
        this.log(`links into n${n.id} back to the default`);
        for (const id of from) this.net.setLink(id, n.id, {});
      },
      'catch-up links heal',
    );
  }

  /** Proposes removing (then, once applied, adding back) a member, retrying a few times. */
  private changeMembership(
    group: number,
    target: number,
    kind: 'remove' | 'add',
    atMs: number,
    triesLeft: number,
  ): void {
    if (triesLeft === 0 || atMs >= this.faultPhaseMs) return;
    this.queue.at(
      atMs,
      () => {
        const proposers = this.nodes.filter(
          (n) => n.alive && n.node !== undefined && n.voting && n.id !== target,
        );
        const retry = (): void =>
          this.changeMembership(group, target, kind, this.queue.nowMs + 1000, triesLeft - 1);
        if (proposers.length === 0) return retry();
        const n = proposers[this.rng.int(proposers.length)]!;
        const current = n.node!.status(group).members;
        const members =
          kind === 'remove'
            ? current.filter((m) => m !== target)
            : [...new Set([...current, target])];
        this.log(
          `n${n.id} proposes membership of group ${group}: ${members.join(',')} (${kind} n${target})`,
        );
        n.node!.changeMembership(group, members, PROPOSE_TIMEOUT_MS).then(
          (r) => {
            const applied = (r.result as { applied?: boolean } | undefined)?.applied === true;
            this.log(`membership ${kind} n${target} in group ${group}: applied=${applied}`);
            if (!applied) return retry();
            this.coverage.paths['membership-changes']++;
            if (kind === 'remove')
              this.changeMembership(group, target, 'add', this.queue.nowMs + 2000, 5);
          },
          (e: { code?: string }) => {
            this.log(`membership ${kind} n${target} in group ${group} rejected: ${e.code}`);
            retry();
          },
        );
      },
      `membership ${kind}`,
    );
  }

  /** A clock jump within the lease's bound: at most jumpMaxMs, one per node per 2 leases. */
  private boundedClockJump(n: SimNode, sign: 1 | -1): void {
    const m = this.master!;
    const last = this.lastClockJumpAtMs.get(n.id);
    if (m.jumpMaxMs < 1 || (last !== undefined && this.queue.nowMs - last < 2 * m.leaseMs)) return;
    this.lastClockJumpAtMs.set(n.id, this.queue.nowMs);
    const jump = 1 + this.masterRng.int(m.jumpMaxMs);
    n.clock.jump(sign * jump, this.queue.nowMs);
    this.coverage.faults[sign > 0 ? 'clock-jump-forward' : 'clock-jump-backward']++;
    this.log(`clock of n${n.id} jumps ${sign > 0 ? '+' : '-'}${jump} ms (within the lease bound)`);
  }

  /** Now and then the holder of a group's lease gives it up (node.dropMaster). */
  scheduleMasterDrops(): void {
    const [lo, hi] = MASTER_DROP_EVERY_MS;
    const next = (): void => {
      const at = this.queue.nowMs + lo + this.masterRng.int(hi - lo);
      if (at >= this.faultPhaseMs) return;
      this.queue.at(
        at,
        () => {
          const g = this.masterRng.int(this.topology.groups);
          const holder = this.nodes.find((n) => n.alive && n.node?.isMaster(g) === true);
          if (holder !== undefined) {
            const dropped = holder.node!.dropMaster(g);
            this.log(`n${holder.id} drops its master lease of group ${g}: ${dropped}`);
          }
          next();
        },
        'master drop',
      );
    };
    next();
  }
}
