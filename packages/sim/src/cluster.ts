// The cluster under test (TigerBeetle's testing/cluster.zig): the simulated nodes, how each
// incarnation starts over its store and dies, and what its logger, state machines and status say,
// fed to the checkers. The orchestrator (simulate.ts) decides when; faults.ts decides why.
import { SeededRandomSource } from '@tspaxos/core';
import {
  startNode as createNode,
  type MasterFaults,
  type UnsafeFaults,
  valueIdentity,
} from '@tspaxos/paxos/internal';
import { type DurabilityPort, MemoryLogStore } from '@tspaxos/storage';
import { type MemoryNetwork } from '@tspaxos/transport';
import type { CheckpointSim } from './checkpoints';
import type { AcknowledgedIdentityChecker } from './checkers/acknowledged-identity';
import type { AgreementChecker } from './checkers/agreement';
import type { ChainChecker } from './checkers/chain';
import type { NodeErrorsChecker } from './checkers/node-errors';
import type { ReplyDurabilityChecker } from './checkers/reply-durability';
import type { StaleLeaseChecker } from './checkers/stale-lease';
import type { Coverage } from './coverage';
import type { EventQueue } from './event-queue';
import type { SimOptions } from './options';
import type { LongDownCatchUp, MasterSettings, SimTopology } from './result';
import { SimNode } from './sim-node';

/** Each node's clock starts at an offset drawn up to this (ms): machines' clocks disagree. */
const CLOCK_OFFSET_MAX_MS = 3 * 3600_000;

export interface ClusterPort {
  options: SimOptions;
  queue: EventQueue;
  votingIds: readonly number[];
  topology: SimTopology;
  coverage: Coverage;
  unsafeFaults: (UnsafeFaults & MasterFaults) | undefined;
  master: MasterSettings | undefined;
  /** Built after the cluster (it starts and crashes the cluster's nodes itself). */
  checkpoints: () => CheckpointSim;
  /** The long-down node's catch-up, once fault injection has scheduled it. */
  longDownCatchUp: () => LongDownCatchUp | undefined;
  agreement: AgreementChecker;
  chain: ChainChecker;
  identities: AcknowledgedIdentityChecker;
  replyDurability: ReplyDurabilityChecker;
  staleLease: StaleLeaseChecker;
  log: (line: string) => void;
  /** Task errors, failed starts and stopped groups of the nodes (checkers/node-errors.ts). */
  nodeErrors: NodeErrorsChecker;
  eventName: () => string;
}

export class Cluster {
  /** Voting nodes 1…n, then the followers (index = id - 1); filled by createNodes. */
  readonly nodes: SimNode[] = [];
  crashes = 0;

  constructor(private readonly h: ClusterPort) {}

  /** Creates the voting nodes, then the followers, over fresh stores. */
  createNodes(d: {
    /** The main stream: which node the second follower follows. */
    rng: SeededRandomSource;
    /** Initial clock offsets (undefined: every clock starts at 0, seeds without faults). */
    clockRng: SeededRandomSource | undefined;
    net: MemoryNetwork;
    /** The simulated fsync of a node's store (faults.ts). */
    durabilityPort: (node: () => SimNode) => DurabilityPort;
  }): void {
    const { nodes, followers } = this.h.topology;
    // The first follower follows the node that dies (the long-down node, or node 1, which is
    // crashed on schedule); the second follows a node drawn from the seed.
    const followTo = [1, 1 + d.rng.int(nodes)];
    const ids = [...this.h.votingIds];
    for (let f = 0; f < followers; f++) ids.push(nodes + 1 + f);
    for (const id of ids) {
      const voting = id <= nodes;
      const sim: SimNode = new SimNode(
        id,
        voting,
        voting ? undefined : followTo[id - nodes - 1],
        new MemoryLogStore(
          {},
          d.durabilityPort(() => sim),
        ),
        d.net.endpoint(id),
      );
      // Clocks of different machines do not agree: each starts at its own offset (up to 3 h).
      if (d.clockRng) sim.clock.jump(d.clockRng.int(CLOCK_OFFSET_MAX_MS), 0);
      this.nodes.push(sim);
    }
  }

  /** The heal: every node up again, on a working disk, with no fault pending. */
  restartAll(): void {
    for (const n of this.nodes) {
      n.downUntilMs = -1;
      n.failNextFsync = false;
      if (n.store.failedWith !== undefined) this.replaceDisk(n);
      if (!n.alive) this.start(n);
    }
  }

  /** Starts (or restarts) a node over its store, in the background (replay may write). */
  start(n: SimNode): void {
    n.kill(); // a fresh incarnation
    const incarnation = n.incarnation;
    n.alive = true;
    for (let g = 0; g < this.h.topology.groups; g++) {
      n.executed.push(new Map());
      n.checkedUpTo.push(0);
    }
    this.h.log(`start n${n.id} (incarnation ${incarnation})`);
    createNode({
      nodeId: n.id,
      cluster: this.h.votingIds,
      groups: this.h.topology.groups,
      store: this.h.checkpoints().wrapStore(n, incarnation, n.fencedStore(incarnation)),
      network: this.h.checkpoints().wrapNetwork(n, incarnation, n.network(incarnation)),
      checkpoint: this.h.checkpoints().nodeOptions(n, incarnation),
      scheduler: n.scheduler(this.h.queue, incarnation),
      random: new SeededRandomSource(this.h.options.seed * 7919 + n.id * 131 + incarnation),
      stateMachines: (group) => [
        this.h
          .checkpoints()
          .recorder(n, incarnation, group, (instanceId, value) =>
            this.onExecute(n, incarnation, group, instanceId, value),
          ),
      ],
      ...(n.followTo !== undefined ? { followTo: n.followTo } : {}),
      logger: (level, event, fields) => this.onNodeLog(n, incarnation, level, event, fields),
      ...(this.h.unsafeFaults ? { unsafeFaults: this.h.unsafeFaults } : {}),
      ...(this.h.master
        ? {
            onMasterChange: (group: number, m: { masterNodeId: number; version: number }) => {
              if (n.isLive(incarnation))
                this.h.staleLease.observe({ kind: 'master-changed', group, nodeId: n.id, ...m });
            },
            masterElection: this.h.options.planted !== 'electionsNeverRun',
            forwarding: this.h.master.forwarding,
            options: {
              masterLeaseMs: this.h.master.leaseMs,
              masterLeaseMarginMs: this.h.master.marginMs,
            },
          }
        : {}),
    }).then(
      (node) => {
        if (n.isLive(incarnation)) n.node = node;
      },
      (error: unknown) => {
        if (n.isLive(incarnation))
          this.h.nodeErrors.observe({ kind: 'start-failed', node: n, error });
      },
    );
  }

  crash(n: SimNode, why: string): void {
    this.h.nodeErrors.observe({ kind: 'status', node: n });
    this.harvestCounters(n);
    this.crashes++;
    this.h.log(`crash n${n.id} ${why} (writes not yet durable are lost)`);
    const replies = n.replies;
    n.kill();
    n.store.crash();
    this.h.replyDurability.observe({
      kind: 'crashed',
      node: n.id,
      replies,
      store: n.store,
      during: this.h.eventName(),
    });
    this.h.checkpoints().onCrash(n);
  }

  /** The end of the run: what every live node reports, as crash() takes it from one. */
  harvestAll(): void {
    for (const n of this.nodes) {
      this.h.nodeErrors.observe({ kind: 'status', node: n });
      this.harvestCounters(n);
    }
  }

  /** A node whose fsync failed: its process is stopped, the disk replaced, the durable log kept. */
  replaceDisk(n: SimNode): void {
    if (n.alive) this.crash(n, 'after its fsync failed');
    n.store.repair();
    this.h.coverage.paths['disks-replaced']++;
    this.h.log(`n${n.id} disk replaced (its durable log kept)`);
  }

  /**
   * Adds one incarnation's learner and sender counters (every group) to the coverage; called
   * once per incarnation, when it crashes or at the end of the run (counters start at zero in
   * each incarnation).
   */
  harvestCounters(n: SimNode): void {
    if (!n.alive || n.node === undefined) return;
    const paths = this.h.coverage.paths;
    const longDown = n.id === 1 && this.h.longDownCatchUp()?.backAtMs !== undefined;
    for (let g = 0; g < this.h.topology.groups; g++) {
      const { counters, sender } = n.node.status(g).learner;
      paths['gap-nacks-sent'] += counters.nacksSent;
      paths['gap-nacks-received'] += sender.counters.nacks;
      paths['concurrent-streams'] += sender.counters.concurrentStreamsStarted;
      paths['stall-re-asks'] += counters.stalls;
      paths['asks-to-peer-ahead'] += counters.asksToPeerAhead;
      paths['prepares-declined'] += sender.counters.declined;
      paths['prepare-timeouts'] += sender.counters.prepareTimeouts;
      if (longDown) {
        const c = this.h.longDownCatchUp()!;
        c.valuesLearnedFromPeers += counters.valuesLearnedFromPeers;
        c.catchUpsStarted += counters.catchUpsStarted;
        c.catchUpsFinished += counters.catchUpsFinished;
        c.checkpointInstalls += n.node.status(g).counters.checkpointRestarts;
      }
    }
  }

  private onNodeLog(
    n: SimNode,
    incarnation: number,
    level: string,
    event: string,
    fields: Record<string, unknown>,
  ): void {
    if (this.h.options.trace) this.h.log(`n${n.id} ${level} ${event} ${JSON.stringify(fields)}`);
    if (!n.isLive(incarnation)) return; // a dead process's late tasks are not the system's
    this.h.checkpoints().onNodeLog(n, level, event);
    this.h.nodeErrors.observe({ kind: 'log', node: n, event, fields });
    switch (event) {
      case 'sender-confirmed': {
        this.h.coverage.paths['catch-up-streams-started']++;
        const to = this.nodes[Number(fields.to) - 1];
        if (
          to?.followTo !== undefined &&
          to.followTo !== n.id &&
          !this.nodes[to.followTo - 1]!.alive
        )
          this.h.coverage.paths['follower-fallback-streams']++;
        return;
      }
      case 'sender-ended':
        if (fields.reason === 'done') this.h.coverage.paths['catch-up-streams-finished']++;
        return;
      default:
    }
  }

  private onExecute(
    n: SimNode,
    incarnation: number,
    group: number,
    instanceId: number,
    value: string,
  ): void {
    if (n.incarnation !== incarnation) return;
    const executed = n.executed[group]!;
    const mine = executed.get(instanceId) ?? [];
    this.h.agreement.observe({
      kind: 'executed',
      node: n.id,
      group,
      instanceId,
      value,
      before: mine,
      during: this.h.eventName(),
    });
    mine.push(value);
    executed.set(instanceId, mine);
    if (!n.voting) this.h.coverage.paths['follower-values-learned']++;
  }

  /**
   * The chain invariant, incrementally: every instance a node has learned since the last check
   * must carry the checksum the first node to learn it had.
   */
  checkChain(): void {
    for (const n of this.nodes) {
      if (!n.alive || n.node === undefined) continue;
      for (let g = 0; g < this.h.topology.groups; g++) {
        const now = n.node.instanceId(g);
        const from = n.checkedUpTo[g]!;
        if (now <= from) continue;
        for (let i = from; i < now; i++) {
          const record = n.store.get(g, i);
          if (record === undefined) continue;
          this.h.identities.observe({
            kind: 'chosen',
            group: g,
            instanceId: i,
            identity: valueIdentity(record.value),
            node: n.id,
          });
          this.h.chain.observe({
            kind: 'learned',
            node: n.id,
            group: g,
            instanceId: i,
            checksum: record.checksum,
            // Read only where the chain may restart (a 0 checksum): the store read is not free.
            previousChecksum:
              record.checksum === 0 && i > 0 ? n.store.get(g, i - 1)?.checksum : undefined,
            during: () => this.h.eventName(),
          });
        }
        n.checkedUpTo[g] = now;
      }
    }
  }
}
