// One node of the reference server: the paxos node (log, network, groups), a key-value state
// machine per group, the HTTP API, metrics and the members view. `tspaxos node` runs one. It
// implements the narrow interfaces the HTTP layer and the metrics declare (HttpNode,
// MetricsSource); neither imports this file.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger as PinoLogger } from 'pino';
import type { IdempotencyWindow } from './kv-command';
import { KvStateMachine } from './kv-state-machine';
import type { MemberEntry, MemberRequest, NodeAddresses } from './members';
import { MembershipSync, type MembersView } from './membership';
import { buildHttp, type HttpNode } from './http/app';
import { createMetrics, type Metrics, type MetricsSource } from './metrics';
import {
  CLUSTER_ID,
  DEFAULT_CHECKPOINT_EVERY_INSTANCES,
  DEFAULT_IDEMPOTENCY_WINDOW_KEYS,
  DEFAULT_IDEMPOTENCY_WINDOW_MS,
  DEFAULT_KEEP_LOG_INSTANCES,
  DEFAULT_MASTER_LEASE_MS,
  MASTER_WAIT_LEASES,
  MASTER_WAIT_MAX_OF_TIMEOUT,
  MEMBER_POLL_INTERVAL_MS,
  MEMBER_POLL_TIMEOUT_MS,
  MEMBERSHIP_SYNC_INTERVAL_MS,
  PROPOSE_TIMEOUT_MS,
  STOP_DRAIN_MS,
  TASK_ERRORS_KEPT,
} from './options';
import { MasterWait } from './master-wait';
import { formatAddress } from './args';
import type { Access } from './http/auth';
import { OPERATOR_LOG_POLL_MS, OperatorLog } from './operator-log';
import { getJson } from './peer-http';
import { DEFAULT_READY_MAX_LAG_INSTANCES, notReadyReasons, type NotReadyReason } from './readiness';
import type { HttpsOptions, PeerTls } from './tls';
import {
  createNode,
  defaultPaxosOptions,
  NodeFiles,
  type PaxosLogger,
  type PaxosNode,
  type PeerAddress,
  TcpNetwork,
} from './stack';
import { groupView, type MasterView, type MemberView, type NodeStatus } from './status';
import type { FastifyInstance } from 'fastify';

export interface ServerConfig {
  nodeId: number;
  /** Announced in every peer connection's hello; peers of another cluster are refused (default CLUSTER_ID). */
  clusterId?: string;
  /** Mutual TLS on the paxos links (--peer-cert, --peer-key, --peer-ca): plain peers are refused. */
  peerTls?: PeerTls;
  /** HTTPS for the client API (--cert, --key, --client-ca). */
  https?: HttpsOptions;
  /** Tokens and CORS origins given (--auth-file, --auth-metrics, --cors-origin). */
  auth?: Pick<Access, 'tokens' | 'protectObservability'>;
  corsOrigins?: string[];
  /** GET /readyz: most instances a group may be behind its peers (default DEFAULT_READY_MAX_LAG_INSTANCES). */
  readyMaxLagInstances?: number;
  /**
   * How often transfers and the lease are compared for the operator log (default
   * OPERATOR_LOG_POLL_MS; 0: never, for an in-process test that counts status reads).
   */
  operatorLogPollMs?: number;
  /** Voting members and their paxos addresses. */
  cluster: Map<number, PeerAddress>;
  /** Paxos listen address (default: own entry of cluster). */
  listen: PeerAddress;
  http: PeerAddress;
  dataDir: string;
  followTo?: number;
  groups: number;
  /** Where the other members' HTTP APIs are (members view and dashboard). */
  httpPeers: Map<number, string>;
  /** Started with --join: the membership was asked of this member (join.ts). */
  joinedFrom?: string;
  /** Learner sender rate limit in instances per second (default: the learner package's). */
  catchUpRatePerSec?: number;
  /** Master election with leases in every group (default true; followers never run one). */
  masterElection?: boolean;
  /** The master lease (default DEFAULT_MASTER_LEASE_MS, 1 s; the paxos package's is 10 s). */
  masterLeaseMs?: number;
  /** How long a batch instance waits for its values (default: the paxos package's batchWaitMs). */
  batchWaitMs?: number;
  /** Most instances in one catch-up batch (default: the learner package's). */
  catchUpBatchInstances?: number;
  /** Automatic KV checkpoint every this many instances (default DEFAULT_CHECKPOINT_EVERY_INSTANCES; 0: off). */
  checkpointEveryInstances?: number;
  /**
   * Log instances kept below the KV checkpoint when compacting on its own (default
   * DEFAULT_KEEP_LOG_INSTANCES; at least MIN_KEEP_LOG_INSTANCES).
   */
  keepLogInstances?: number;
  /**
   * The idempotency window this node's writes carry (defaults DEFAULT_IDEMPOTENCY_WINDOW_MS and
   * DEFAULT_IDEMPOTENCY_WINDOW_KEYS): how long, and how many, Idempotency-Keys each group keeps.
   */
  idempotencyWindowMs?: number;
  idempotencyWindowKeys?: number;
}

export class KvServer implements HttpNode, MetricsSource {
  readonly kvs: KvStateMachine[];
  readonly metrics: Metrics;
  stopping = false;
  httpUrl = '';
  paxosAddress: PeerAddress | undefined;
  /** Unexpected errors raised inside the server (a KV commit, a poll); they also fail the tests. */
  readonly taskErrors: { code: string; message: string }[] = [];
  private node!: PaxosNode;
  private network!: TcpNetwork;
  private app!: FastifyInstance;
  private readonly members = new Map<number, MemberView>();
  private pollTimer: NodeJS.Timeout | undefined;
  private operatorTimer: NodeJS.Timeout | undefined;
  readonly operatorLog: OperatorLog;
  /** Set once start() has created the paxos node (GET /readyz: E_NOT_STARTED before). */
  private started = false;
  access: Access;
  private membershipTimer: NodeJS.Timeout | undefined;
  private membership!: MembershipSync;
  /** Writes waiting for a master (undefined with --no-master-election: nothing to wait for). */
  private masterWait: MasterWait | undefined;
  private stopped: Promise<void> | undefined;
  /** Client proposals handed to the paxos node and not settled yet (a stop drains them). */
  private proposalsInFlight = 0;
  private onDrained: (() => void) | undefined;
  /** What the last stop did with the proposals it found in flight (tests, logs). */
  readonly stopCounters = { inFlightAtStop: 0, drained: 0, leftAtDrainDeadline: 0 };

  constructor(
    readonly config: ServerConfig,
    readonly log: PinoLogger,
    private readonly onFatal: (error: Error) => void,
  ) {
    this.kvs = [];
    for (let g = 0; g < config.groups; g++) {
      this.kvs.push(
        new KvStateMachine({
          dir: config.dataDir,
          group: g,
          checkpointEveryInstances:
            config.checkpointEveryInstances ?? DEFAULT_CHECKPOINT_EVERY_INSTANCES,
          onError: (error) => this.recordTaskError('E_CHECKPOINT', error),
          onFatal: (error) => {
            this.metrics.storageErrors.inc();
            this.log.fatal({ group: g, err: error }, 'kv-commit-failed');
            this.onFatal(error);
          },
        }),
      );
    }
    this.metrics = createMetrics(config.nodeId, this);
    this.operatorLog = new OperatorLog(log);
    this.access = {
      tokens: config.auth?.tokens,
      protectObservability: config.auth?.protectObservability ?? false,
      corsOrigins: new Set(config.corsOrigins ?? []),
    };
  }

  get paxos(): PaxosNode {
    return this.node;
  }

  get tcp(): TcpNetwork {
    return this.network;
  }

  async start(): Promise<void> {
    const { config } = this;
    fs.mkdirSync(config.dataDir, { recursive: true });
    const peers = new Map(config.cluster);
    peers.delete(config.nodeId);
    this.network = new TcpNetwork({
      nodeId: config.nodeId,
      clusterId: config.clusterId ?? CLUSTER_ID,
      listen: config.listen,
      peers,
      ...(config.peerTls ? { tls: config.peerTls } : {}),
      onEvent: (event, fields) => this.operatorLog.tcp(event, fields),
    });
    this.paxosAddress = await this.network.start();
    const logger: PaxosLogger = (level, event, fields) =>
      this.log[level]({ group: null, ...fields }, event);
    this.node = await createNode({
      nodeId: config.nodeId,
      cluster: [...config.cluster.keys()],
      groups: config.groups,
      dataDir: path.join(config.dataDir, 'log'),
      network: this.network,
      stateMachines: (g) => [this.kvs[g]!],
      // Checkpoint transfer to lagging peers, compaction on demand (POST /admin/compact) and on
      // its own once the log holds more than keepLogInstances below the KV checkpoint.
      checkpoint: {
        files: new NodeFiles(),
        dir: path.join(config.dataDir, 'checkpoint'),
        options: { holdCount: config.keepLogInstances ?? DEFAULT_KEEP_LOG_INSTANCES },
      },
      ...(config.followTo !== undefined ? { followTo: config.followTo } : {}),
      // A master per group holds a lease and serves GET ?consistent=lease from local state.
      masterElection: config.followTo === undefined && config.masterElection !== false,
      // Writes and barriers go through the master while its lease is live, from every node (so
      // lease reads see them), and fail fast with E_NO_QUORUM when a majority is unreachable.
      forwarding: true,
      onMasterChange: (g, m) => {
        this.log.info(
          { group: g, masterNodeId: m.masterNodeId, version: m.version },
          'master-changed',
        );
        this.masterWait?.masterChanged();
      },
      options: {
        learner: this.learnerOptions(),
        masterLeaseMs: this.masterLeaseMs,
        ...(config.batchWaitMs !== undefined ? { batchWaitMs: config.batchWaitMs } : {}),
      },
      logger,
    });
    if (config.masterElection !== false)
      this.masterWait = new MasterWait({
        nodeId: config.nodeId,
        paxos: this.node,
        reachable: (id) => this.network.reachable(id),
        isStopping: () => this.stopping,
      });
    this.node.on('catchUpStarted', (e) => this.operatorLog.catchUpStarted(e));
    this.node.on('caughtUp', (e) => this.operatorLog.caughtUp(e));
    this.membership = new MembershipSync({
      nodeId: config.nodeId,
      groups: config.groups,
      paxos: this.node,
      network: this.network,
      log: this.log,
      isStopping: () => this.stopping,
      fallback: (id) => this.flagAddresses(id),
      unlistedAtStart: config.joinedFrom !== undefined || config.followTo !== undefined,
      initialPeers: new Map([...peers].map(([id, a]) => [id, formatAddress(a)])),
      trackProposal: (p) => this.trackProposal(p),
      onNodes: (nodes) => this.updateMembers(nodes),
    });
    // A change learned through the log, or adopted from a peer or a checkpoint (the timer).
    this.node.on('learned', () => this.membership.sync());
    const syncLater = () => {
      this.membershipTimer = setTimeout(() => {
        this.membership.sync();
        if (!this.stopping) syncLater();
      }, MEMBERSHIP_SYNC_INTERVAL_MS);
      this.membershipTimer.unref();
    };
    syncLater();
    this.started = true;
    this.app = buildHttp(this, config.https);
    await this.app.listen({ host: config.http.host, port: config.http.port });
    const address = this.app.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : config.http.port;
    this.httpUrl = `${config.https ? 'https' : 'http'}://${formatAddress({ host: config.http.host, port })}`;
    // Browsers may call this node from its own pages and its peers' (the dashboard polls them all).
    const origins = new Set(this.access.corsOrigins);
    origins.add(new URL(this.httpUrl).origin);
    for (const url of config.httpPeers.values()) origins.add(new URL(url).origin);
    this.access = { ...this.access, corsOrigins: origins };
    this.scheduleOperatorLog();
    for (const id of new Set([...config.cluster.keys(), config.nodeId])) {
      const http = id === config.nodeId ? this.httpUrl : (config.httpPeers.get(id) ?? null);
      this.members.set(id, {
        nodeId: id,
        http,
        self: id === config.nodeId,
        reachable: id === config.nodeId ? true : null,
        instanceId: null,
        lastSeenMs: null,
      });
    }
    this.membership.sync();
    if (config.httpPeers.size > 0 || config.joinedFrom !== undefined) this.schedulePoll();
    this.log.info(
      {
        group: null,
        http: this.httpUrl,
        paxos: formatAddress(this.paxosAddress),
        groups: config.groups,
        followTo: config.followTo ?? null,
        instanceIds: this.groupIndices().map((g) => this.node.status(g).instanceId),
      },
      'listening',
    );
  }

  /** The learner options the flags set (the learner package's defaults for the rest). */
  private learnerOptions(): Record<string, number> {
    const { catchUpRatePerSec: rate, catchUpBatchInstances: batch } = this.config;
    const firstBatch = defaultPaxosOptions(this.config.groups).learner.firstBatchInstances;
    return {
      ...(rate !== undefined ? { sendRateInstancesPerSec: rate } : {}),
      // The rate's token bucket holds one full batch, so a small batch is what makes a small
      // rate hold from the first instance (a catch-up shorter than a batch is never throttled).
      ...(batch !== undefined
        ? { batchMaxInstances: batch, firstBatchInstances: Math.min(batch, firstBatch) }
        : {}),
    };
  }

  get idempotencyWindow(): IdempotencyWindow {
    return {
      ms: this.config.idempotencyWindowMs ?? DEFAULT_IDEMPOTENCY_WINDOW_MS,
      keys: this.config.idempotencyWindowKeys ?? DEFAULT_IDEMPOTENCY_WINDOW_KEYS,
    };
  }

  /** The shared barriers' wait: the same as the paxos batch wait (--batch-wait-ms). */
  get barrierWaitMs(): number {
    return this.node.options.batchWaitMs;
  }

  get groupCount(): number {
    return this.config.groups;
  }

  groupIndices(): number[] {
    return Array.from({ length: this.config.groups }, (_, g) => g);
  }

  /** GET /admin/members. */
  membersView(): MembersView {
    return this.membership.view();
  }

  /** POST /admin/members: through the log, group 0 first. */
  changeMembers(req: MemberRequest): Promise<MembersView> {
    return this.membership.change(req);
  }

  /** A node's addresses from the flags (before any membership change carries them). */
  private flagAddresses(id: number): NodeAddresses | undefined {
    const peer = id === this.config.nodeId ? this.paxosAddress : this.config.cluster.get(id);
    if (peer === undefined) return undefined;
    const http = id === this.config.nodeId ? this.httpUrl || null : this.config.httpPeers.get(id);
    return { peer: formatAddress(peer), http: http ?? null };
  }

  /** The members view (/status, dashboard, master URLs) follows the membership's node list. */
  private updateMembers(nodes: MemberEntry[]): void {
    const ids = new Set(nodes.map((n) => n.nodeId));
    for (const id of this.members.keys())
      if (!ids.has(id) && id !== this.config.nodeId) this.members.delete(id);
    for (const n of nodes) {
      const m = this.members.get(n.nodeId);
      if (n.nodeId === this.config.nodeId) continue;
      if (m === undefined)
        this.members.set(n.nodeId, {
          nodeId: n.nodeId,
          http: n.http,
          self: false,
          reachable: null,
          instanceId: null,
          lastSeenMs: null,
        });
      else if (n.http !== null) m.http = n.http;
    }
  }

  /** The HTTP API of a member (null when this node does not know it). */
  httpOf(nodeId: number): string | null {
    return this.members.get(nodeId)?.http ?? null;
  }

  /**
   * The master with a live lease in this node's view: `expiresAtMs` on this node's monotonic
   * clock (the paxos Scheduler's), `remainingMs` of the lease here, its HTTP API.
   */
  masterView(g: number): MasterView | null {
    const m = this.node.getMaster(g);
    if (m === undefined) return null;
    return {
      nodeId: m.nodeId,
      version: m.version,
      expiresAtMs: m.expiresAtMs,
      remainingMs: Math.max(0, Math.round(m.expiresAtMs - performance.now())),
      http: this.httpOf(m.nodeId),
      self: m.nodeId === this.config.nodeId && this.node.isMaster(g),
    };
  }

  /** The node's status (GET /status, each metrics scrape, the dashboard): built once per call. */
  status(): NodeStatus {
    const groups = this.groupIndices().map((g) =>
      groupView(
        this.node.status(g),
        this.kvs[g]!.status(),
        this.masterView(g),
        this.node.hasQuorum(g),
      ),
    );
    const self = this.members.get(this.config.nodeId);
    if (self) self.instanceId = groups[0]!.instanceId;
    return {
      nodeId: this.config.nodeId,
      httpUrl: this.httpUrl,
      paxosAddress: this.paxosAddress ? formatAddress(this.paxosAddress) : null,
      groupCount: this.config.groups,
      members: [...this.members.values()]
        .map((m) => ({ ...m }))
        .sort((a, b) => a.nodeId - b.nodeId),
      network: this.network.counters(),
      nodeCounters: { ...this.node.counters },
      forwarding: { ...this.node.forwardingCounters },
      quorumReads: { ...this.node.quorumReadCounters },
      masterWait: { ...(this.masterWait?.counters ?? { held: 0, released: 0, boundReached: 0 }) },
      taskErrors: [...this.taskErrors],
      stopping: this.stopping,
      groups,
    };
  }

  queuedBytesByPeer(): Map<number, number> {
    const out = new Map<number, number>();
    // Every node of the membership this node knows (the flags' voters, then the members view's).
    for (const id of new Set([...this.config.cluster.keys(), ...this.members.keys()]))
      if (id !== this.config.nodeId) out.set(id, this.network.queuedBytes(id));
    return out;
  }

  private get masterLeaseMs(): number {
    return this.config.masterLeaseMs ?? DEFAULT_MASTER_LEASE_MS;
  }

  /**
   * Waits until group g has a master this node can send a write to (or is master), at most
   * MASTER_WAIT_LEASES leases and MASTER_WAIT_MAX_OF_TIMEOUT of a proposal's timeout; at once
   * without master elections.
   */
  waitForMaster(g: number): Promise<void> | undefined {
    if (this.masterWait === undefined) return undefined;
    const boundMs = Math.min(
      MASTER_WAIT_LEASES * this.masterLeaseMs,
      PROPOSE_TIMEOUT_MS * MASTER_WAIT_MAX_OF_TIMEOUT,
    );
    return this.masterWait.wait(g, boundMs);
  }

  /** Counts a client proposal until it settles, so that a stop can drain it. */
  trackProposal<T>(proposal: Promise<T>): Promise<T> {
    this.proposalsInFlight++;
    const settled = () => {
      this.proposalsInFlight--;
      if (this.proposalsInFlight === 0) this.onDrained?.();
    };
    proposal.then(settled, settled);
    return proposal;
  }

  /**
   * Graceful stop: new requests get 503 E_STOPPING (nothing proposed); the writes already handed
   * to the proposer get up to STOP_DRAIN_MS to be chosen and answered; what is left then is
   * rejected by the node and answered 504 E_OUTCOME_UNKNOWN (it may have been sent); then the
   * log and state close.
   */
  stop(): Promise<void> {
    this.stopped ??= this.doStop();
    return this.stopped;
  }

  private async doStop(): Promise<void> {
    this.stopping = true;
    // Held writes were never handed to the proposer: they are refused 503 now (kv-routes).
    this.masterWait?.stop();
    if (this.pollTimer) clearTimeout(this.pollTimer);
    if (this.operatorTimer) clearInterval(this.operatorTimer);
    if (this.membershipTimer) clearTimeout(this.membershipTimer);
    const inFlight = this.proposalsInFlight;
    this.stopCounters.inFlightAtStop = inFlight;
    this.log.info({ group: null, proposalsInFlight: inFlight }, 'stopping');
    if (inFlight > 0) {
      await new Promise<void>((resolve) => {
        const deadline = setTimeout(resolve, STOP_DRAIN_MS);
        this.onDrained = () => {
          clearTimeout(deadline);
          resolve();
        };
      });
      this.onDrained = undefined;
      this.stopCounters.leftAtDrainDeadline = this.proposalsInFlight;
      this.stopCounters.drained = inFlight - this.proposalsInFlight;
      this.log.info({ group: null, ...this.stopCounters }, 'proposals-drained');
    }
    await this.node.stop();
    await this.app.close();
    for (const kv of this.kvs) kv.close();
    this.log.info({ group: null }, 'stopped');
  }

  /** GET /readyz: why this node should not get traffic now (empty: ready). */
  notReadyReasons(): NotReadyReason[] {
    return notReadyReasons(
      this.started ? this.status() : undefined,
      this.config.readyMaxLagInstances ?? DEFAULT_READY_MAX_LAG_INSTANCES,
    );
  }

  private scheduleOperatorLog(): void {
    const everyMs = this.config.operatorLogPollMs ?? OPERATOR_LOG_POLL_MS;
    if (everyMs === 0) return;
    this.operatorTimer = setInterval(() => {
      const now = performance.now();
      for (const g of this.groupIndices()) this.operatorLog.observe(this.node.status(g), now);
    }, everyMs);
    this.operatorTimer.unref();
  }

  private schedulePoll(): void {
    this.pollTimer = setTimeout(() => {
      this.pollMembers().then(
        () => {
          if (!this.stopping) this.schedulePoll();
        },
        (error: Error) => this.recordTaskError('E_POLL', error),
      );
    }, MEMBER_POLL_INTERVAL_MS);
    this.pollTimer.unref();
  }

  private async pollMembers(): Promise<void> {
    await Promise.all(
      [...this.members.values()]
        .filter((m) => !m.self && m.http !== null)
        .map(async (m) => {
          try {
            const res = await getJson(`${m.http}/status`, this.peerHttpOptions());
            const body = res.body as { groups?: { instanceId?: unknown }[] };
            const instanceId = body.groups?.[0]?.instanceId;
            if (res.status !== 200 || typeof instanceId !== 'number')
              throw new Error(`status ${res.status}`);
            m.reachable = true;
            m.instanceId = instanceId;
            m.lastSeenMs = Date.now();
            delete m.error;
          } catch (error) {
            // Expected: the peer is down or slow. It is the data this view shows, not a failure.
            m.reachable = false;
            m.error = (error as Error).message;
          }
        }),
    );
  }

  /** How this node calls its peers' HTTP APIs: the CAs and certificate it has, its token. */
  private peerHttpOptions(): Parameters<typeof getJson>[1] {
    const { https, peerTls } = this.config;
    const ca = [https?.ca, peerTls?.ca].filter((c): c is Buffer => c !== undefined);
    // The peers may protect /status (--auth-metrics): a cluster shares its auth file.
    const token = this.access.tokens?.ownToken;
    return {
      timeoutMs: MEMBER_POLL_TIMEOUT_MS,
      ...(ca.length > 0 ? { ca } : {}),
      ...(https ? { cert: https.cert, key: https.key } : {}),
      ...(token !== undefined ? { token } : {}),
    };
  }

  recordTaskError(code: string, error: Error): void {
    this.taskErrors.push({ code, message: error.message });
    if (this.taskErrors.length > TASK_ERRORS_KEPT) this.taskErrors.shift();
    this.metrics.taskErrors.inc({ code });
    this.log.error({ group: null, err: error, code }, 'task-error');
  }
}
