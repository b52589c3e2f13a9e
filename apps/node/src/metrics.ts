// /metrics in Prometheus text (prom-client). Counters the packages keep in status() are read at
// scrape time from one NodeStatus built for the whole scrape; what only the server sees (commit
// latency, HTTP requests) is measured here.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { GroupView, NodeStatus } from './status';

/** What the metrics read from the node (server.ts implements it). */
export interface MetricsSource {
  /** The node's status; built once per scrape. */
  status(): NodeStatus;
  /** Bytes queued for each peer and not yet handed to its socket. */
  queuedBytesByPeer(): Map<number, number>;
}

export interface Metrics {
  registry: Registry;
  /** The registry's text, reading the node's status once for every metric of the scrape. */
  scrape(): Promise<string>;
  commitLatency: Histogram<'op'>;
  /** GET ?consistent=true and =barrier reads, and the barriers issued for =barrier (shared-barrier.ts). */
  consistentReads: Counter;
  consistentReadBarriers: Counter;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  storageErrors: Counter;
  taskErrors: Counter<'code'>;
}

type Read = (s: GroupView) => number | undefined;

/**
 * How often prom-client's default metrics sample the event loop's delay (its
 * `eventLoopMonitoringPrecision`; prom-client's default is 10 ms): a timer that wakes the process
 * at every sample, loaded or idle. At 10 ms it was two thirds of an idle node's wake-ups (strace,
 * 3 s: ~740 `epoll_pwait` calls, ~240 at 100 ms), and on shared cores every wake-up of a node
 * costs (BENCHMARKS.md, "Spread writes: where the CPU goes"). The lag histogram
 * (`nodejs_eventloop_lag_*`) takes 10 samples a second; a stall longer than this delays one.
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

export function createMetrics(nodeId: number, source: MetricsSource): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ node_id: String(nodeId) });
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  /** The status of the scrape under way: each metric's collect() reads it. */
  let scraped: NodeStatus | undefined;
  const current = (): NodeStatus => {
    if (scraped === undefined) throw new Error('a status metric was collected outside scrape()');
    return scraped;
  };
  /** One sample per group, read from its status at scrape time; counters skip zeros. */
  const perGroup = (metric: Counter | Gauge, read: Read, counter: boolean): void => {
    metric.reset();
    for (const s of current().groups) {
      const v = read(s);
      if (v === undefined || (counter && v <= 0)) continue;
      const labels = { group: String(s.group) };
      if (counter) (metric as Counter).inc(labels, v);
      else (metric as Gauge).set(labels, v);
    }
  };
  /** A counter whose value is read from a group's status field at scrape time. */
  const c = (name: string, help: string, read: Read): void => {
    new Counter({
      name,
      help,
      labelNames: ['group'],
      registers: [registry],
      collect() {
        perGroup(this, read, true);
      },
    });
  };
  const g = (name: string, help: string, read: Read): void => {
    new Gauge({
      name,
      help,
      labelNames: ['group'],
      registers: [registry],
      collect() {
        perGroup(this, read, false);
      },
    });
  };

  g(
    'tspaxos_instance_id',
    'The now instance id: the first instance not learned here.',
    (s) => s.instanceId,
  );
  g(
    'tspaxos_checkpoint_instance_id',
    'Highest instance in the KV checkpoint (-1: none).',
    (s) => s.kv.checkpointInstanceId,
  );
  g('tspaxos_committer_queued', 'Proposals waiting in the committer.', (s) => s.committer.queued);
  c(
    'tspaxos_proposals_total',
    'Values proposed through this node.',
    (s) => s.committer.counters.proposed,
  );
  c(
    'tspaxos_commits_total',
    'Values proposed here that were chosen and applied.',
    (s) => s.committer.counters.committed,
  );
  c(
    'tspaxos_commit_timeouts_total',
    'Proposals that timed out (may or may not be chosen).',
    (s) => s.committer.counters.timeouts,
  );
  c(
    'tspaxos_commit_conflicts_total',
    'Proposals that lost their instance and were retried.',
    (s) => s.committer.counters.conflicts,
  );
  c(
    'tspaxos_batch_waits_total',
    'Batch instances that waited for their writes (--batch-wait-ms).',
    (s) => s.counters.batchWaits,
  );
  c(
    'tspaxos_batch_waits_filled_total',
    'Batch waits that got every write they waited for before the wait ran out.',
    (s) => s.counters.batchWaitsFilled,
  );
  c(
    'tspaxos_learned_instances_total',
    'Instances learned (from the proposer or a peer).',
    (s) => s.counters.instancesLearned,
  );
  c(
    'tspaxos_values_learned_from_peers_total',
    'Values learned through catch-up streams.',
    (s) => s.learner.counters.valuesLearnedFromPeers,
  );
  c(
    'tspaxos_messages_dropped_total',
    'Paxos messages dropped by the group (full queue, bad sender, unknown type).',
    (s) => s.counters.messagesDropped,
  );
  c(
    'tspaxos_checksum_mismatches_total',
    'Messages whose checksum chain disagreed with ours.',
    (s) => s.counters.checksumMismatches,
  );
  c(
    'tspaxos_execute_failures_total',
    'State machine executions that threw (task errors of the group).',
    (s) => s.counters.executeFailures,
  );
  c(
    'tspaxos_kv_checkpoints_total',
    'Checkpoints written by the KV state machine.',
    (s) => s.kv.counters.checkpoints,
  );
  c(
    'tspaxos_kv_checkpoint_loads_total',
    'Checkpoints loaded into the KV state machine.',
    (s) => s.kv.counters.checkpointLoads,
  );
  g(
    'tspaxos_catch_up_remaining_instances',
    'Instances still to learn while catching up (0 when not).',
    (s) =>
      s.learner.catchUp
        ? Math.max(0, s.learner.catchUp.targetInstanceId - s.learner.instanceId)
        : 0,
  );
  g(
    'tspaxos_catch_up_instances_per_second',
    'Catch-up rate (0 when not catching up).',
    (s) => s.learner.catchUp?.instancesPerSec ?? 0,
  );
  g(
    'tspaxos_catch_up_bytes_per_second',
    'Catch-up rate in value bytes (0 when not catching up).',
    (s) => s.learner.catchUp?.bytesPerSec ?? 0,
  );
  g(
    'tspaxos_catch_up_learned_bytes',
    'Value bytes learned in the catch-up under way (0 when not catching up).',
    (s) => s.learner.catchUp?.learnedBytes ?? 0,
  );
  g(
    'tspaxos_catch_up_eta_seconds',
    'Estimated time to catch up (0 when not catching up or unknown).',
    (s) => (s.learner.catchUp?.etaMs != null ? s.learner.catchUp.etaMs / 1000 : 0),
  );
  // Checkpoint transfers (@tspaxos/checkpoint): as sender, as receiver, and the one under way.
  c(
    'tspaxos_checkpoint_transfers_sent_total',
    'Checkpoint transfers this node started sending to a lagging peer.',
    (s) => s.checkpoint?.counters.sendersStarted,
  );
  c(
    'tspaxos_checkpoint_transfers_sent_done_total',
    'Checkpoint transfers this node sent to the end (the peer acked every chunk).',
    (s) => s.checkpoint?.counters.senderEnds['done'],
  );
  c(
    'tspaxos_checkpoint_sent_bytes_total',
    'Checkpoint file bytes sent by transfers that ended.',
    (s) => s.checkpoint?.counters.bytesSent,
  );
  c(
    'tspaxos_checkpoint_received_bytes_total',
    'Checkpoint file bytes received (chunks accepted).',
    (s) => s.checkpoint?.receiver.counters['bytes'],
  );
  c(
    'tspaxos_checkpoint_installs_total',
    'Checkpoints received and installed.',
    (s) => s.checkpoint?.receiver.counters['installs'],
  );
  g(
    'tspaxos_checkpoint_transfer_active',
    'Checkpoint transfers under way: 1 while sending, 2 while receiving, 0 otherwise.',
    (s) =>
      s.checkpoint === null
        ? undefined
        : s.checkpoint.receiver.phase === 'receiving'
          ? 2
          : s.checkpoint.sender?.phase === 'sending'
            ? 1
            : 0,
  );
  g(
    'tspaxos_checkpoint_mode',
    'Checkpoint mode (1: waiting for or receiving a checkpoint; paxos messages are not processed).',
    (s) => (s.checkpoint === null ? undefined : s.checkpoint.mode ? 1 : 0),
  );
  g(
    'tspaxos_min_chosen_instance_id',
    'Lowest instance still in the log (compaction deletes below it).',
    (s) => s.minChosenInstanceId,
  );
  g(
    'tspaxos_sender_streams',
    'Peers this node is streaming chosen values to.',
    (s) => s.sender.peers.length,
  );
  g(
    'tspaxos_sender_inflight_bytes',
    'Value bytes sent to peers past their last ack (bounded by the byte windows).',
    (s) => s.sender.peers.reduce((n, p) => n + p.inflightBytes, 0),
  );
  g('tspaxos_sender_inflight_instances', 'Instances sent to peers past their last ack.', (s) =>
    s.sender.peers.reduce((n, p) => n + p.inflightInstances, 0),
  );
  c(
    'tspaxos_sender_values_sent_total',
    'Values sent by the learner sender.',
    (s) => s.sender.counters['valuesSent'],
  );

  new Counter({
    name: 'tspaxos_network_frames_dropped_total',
    help: 'Frames or connections the TCP network refused or lost, by reason.',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(current().network.drops)) this.inc({ reason }, n);
    },
  });
  new Gauge({
    name: 'tspaxos_network_queued_bytes',
    help: 'Bytes queued for a peer and not yet handed to its socket (sender inflight), by peer.',
    labelNames: ['peer'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [peer, bytes] of source.queuedBytesByPeer())
        this.set({ peer: String(peer) }, bytes);
    },
  });
  /** A node-wide counter read from the quorum reader's counters at scrape time. */
  const quorum = (name: string, help: string, field: keyof NodeStatus['quorumReads']): void => {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(current().quorumReads[field]);
      },
    });
  };
  quorum(
    'tspaxos_quorum_read_rounds_total',
    'Read-index rounds to a majority of the voters for ?consistent=true reads (shared by the reads that waited for them).',
    'rounds',
  );
  quorum(
    'tspaxos_quorum_read_fallbacks_total',
    'Quorum reads that proposed a barrier after waiting for their index (an instance accepted, never chosen).',
    'fallbacks',
  );
  quorum(
    'tspaxos_quorum_read_positions_served_total',
    "Acceptor positions this node gave other nodes' quorum reads.",
    'served',
  );
  new Counter({
    name: 'tspaxos_network_frames_received_total',
    help: 'Frames received by the TCP network.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(current().network.framesReceived);
    },
  });

  return {
    registry,
    async scrape() {
      const status = source.status();
      scraped = status;
      try {
        return await registry.metrics();
      } finally {
        // A scrape that started meanwhile put its own (newer) status: leave it.
        if (scraped === status) scraped = undefined;
      }
    },
    commitLatency: new Histogram({
      name: 'tspaxos_commit_latency_seconds',
      help: 'From an HTTP write (or barrier) reaching the node to its value applied here.',
      labelNames: ['op'],
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10],
      registers: [registry],
    }),
    consistentReads: new Counter({
      name: 'tspaxos_consistent_reads_total',
      help: 'Reads with ?consistent=true (a quorum read index) or ?consistent=barrier.',
      registers: [registry],
    }),
    consistentReadBarriers: new Counter({
      name: 'tspaxos_consistent_read_barriers_total',
      help: 'Barriers proposed for ?consistent=barrier reads (at most one in flight per group).',
      registers: [registry],
    }),
    httpRequests: new Counter({
      name: 'tspaxos_http_requests_total',
      help: 'HTTP requests answered, by route and status.',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
    storageErrors: new Counter({
      name: 'tspaxos_storage_errors_total',
      help: 'Failed commits of the KV state machine file (the node stops; the log replays them).',
      registers: [registry],
    }),
    taskErrors: new Counter({
      name: 'tspaxos_task_errors_total',
      help: 'Unexpected errors inside the server (each is a bug), by code.',
      labelNames: ['code'],
      registers: [registry],
    }),
  };
}
