// GET, PUT and DELETE /kv/<key> and GET /kv?prefix=: reads from local state (stale, barrier or
// lease) and writes through the key's group, on any node: the paxos node forwards writes and
// barriers to the group's master and asks it for its read index (@tspaxos/paxos forwarding,
// docs/design.md §5). A write's precondition and Idempotency-Key travel in its command and are
// checked by the state machine when it applies (kv-command.ts).
// `?consistent=true` is a quorum read index (paxos quorum-read.ts: a round to a majority of the
// voters, no disk write, no clock assumption; rounds shared per group); `?consistent=barrier` a
// barrier through the log, concurrent ones sharing barriers (shared-barrier.ts).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ServerError } from '../errors';
import { checkKeyText, groupOfKey } from '../keys';
import { encodeWrite, type IdempotencyWindow, type Precondition } from '../kv-command';
import { listPage } from '../kv-list';
import type { KvResult, KvStateMachine } from '../kv-state-machine';
import type { Metrics } from '../metrics';
import { SharedBarriers } from '../shared-barrier';
import {
  DEFAULT_LIST_LIMIT,
  KV_SM_ID,
  MAX_IDEMPOTENCY_KEY_BYTES,
  MAX_LIST_LIMIT,
  MAX_LIST_PAGE_BYTES,
  MAX_VERSION_BYTES,
  PROPOSE_TIMEOUT_MS,
} from '../options';
import { NO_SM_ID, PaxosError, type PaxosNode, type ProposeResult } from '../stack';
import { errorBody, fromPaxos, settle } from './errors';
import { checkQuery, keyOf } from './request';

/** What the key-value routes need from the node (server.ts implements it). */
export interface KvNode {
  readonly groupCount: number;
  readonly stopping: boolean;
  readonly paxos: Pick<PaxosNode, 'batchPropose' | 'readIndex' | 'quorumReadIndex' | 'instanceId'>;
  readonly kvs: readonly Pick<KvStateMachine, 'read' | 'entries'>[];
  /** The idempotency window this node's writes carry (every replica applies the write's own). */
  readonly idempotencyWindow: IdempotencyWindow;
  readonly metrics: Pick<Metrics, 'commitLatency' | 'consistentReads' | 'consistentReadBarriers'>;
  /** Counts a client proposal until it settles, so that a stop can drain it. */
  trackProposal<T>(proposal: Promise<T>): Promise<T>;
  /**
   * How long the next shared barrier may wait for the reads the last one served
   * (shared-barrier.ts; the paxos batchWaitMs, --batch-wait-ms); undefined: it never waits.
   */
  readonly barrierWaitMs?: number;
  /**
   * Resolves once group g has a master to send to, or its wait bound passed (master-wait.ts);
   * undefined when it has one now.
   */
  waitForMaster(g: number): Promise<void> | undefined;
}

/** Proposes through the group; a refusal is mapped by fromPaxos. */
async function propose(
  node: KvNode,
  g: number,
  value: Uint8Array,
  smId: number,
  write: boolean,
): Promise<ProposeResult> {
  // Not handed to the proposer once the node stops: that is what makes this 503 true.
  if (node.stopping) throw new ServerError('E_STOPPING', 'the node is stopping');
  // No master to send it to (one just died; an election is under way): wait for one here, as
  // etcd holds a proposal until a leader is back, rather than 503 or a duel (master-wait.ts).
  let timeoutMs = PROPOSE_TIMEOUT_MS;
  const held = node.waitForMaster(g);
  if (held !== undefined) {
    const heldFromMs = performance.now();
    await held;
    if (node.stopping) throw new ServerError('E_STOPPING', 'the node is stopping');
    timeoutMs = Math.max(1, Math.round(PROPOSE_TIMEOUT_MS - (performance.now() - heldFromMs)));
  }
  const r = await settle(
    node.trackProposal(node.paxos.batchPropose(g, value, { smId, timeoutMs })),
  );
  if (r.ok) return r.value;
  if (!(r.error instanceof PaxosError)) throw r.error;
  throw fromPaxos(r.error, { queued: r.queued, write }) ?? r.error;
}

/**
 * A read index for group g, applied on this node, by `via`: the master's under its lease
 * (PaxosNode.readIndex) or a majority's (PaxosNode.quorumReadIndex). This node's state then
 * reflects every write completed before the read began. Resolves with the read index's instance;
 * a refusal is mapped by fromPaxos (nothing was written).
 */
async function readIndex(node: KvNode, g: number, via: 'lease' | 'quorum'): Promise<number> {
  if (node.stopping) throw new ServerError('E_STOPPING', 'the node is stopping');
  const opts = { timeoutMs: PROPOSE_TIMEOUT_MS };
  const r = await settle(
    via === 'lease' ? node.paxos.readIndex(g, opts) : node.paxos.quorumReadIndex(g, opts),
  );
  if (r.ok) return r.value.instanceId;
  if (!(r.error instanceof PaxosError)) throw r.error;
  throw fromPaxos(r.error, { queued: false, write: false }) ?? r.error;
}

/**
 * The instance a read of group `g` reflects once this returns: this node's applied one after a
 * quorum read index (`true`), a barrier's (`barrier`), the master's applied one (`lease`), or
 * this node's (`false`).
 */
async function readPoint(
  node: KvNode,
  barriers: SharedBarriers,
  g: number,
  consistent: string,
): Promise<number> {
  if (consistent === 'true') {
    const started = performance.now();
    node.metrics.consistentReads.inc();
    const instanceId = await readIndex(node, g, 'quorum');
    node.metrics.commitLatency.observe({ op: 'read-index' }, (performance.now() - started) / 1000);
    return instanceId;
  } else if (consistent === 'barrier') {
    const started = performance.now();
    node.metrics.consistentReads.inc();
    // A barrier that started after this read arrived, shared with the reads that arrived
    // while the previous one was in flight.
    const instanceId = await barriers.through(g);
    node.metrics.commitLatency.observe({ op: 'barrier' }, (performance.now() - started) / 1000);
    return instanceId;
  } else if (consistent === 'lease') {
    // The master holds a lease (no other node becomes master before it ends): its applied
    // instance covers every completed write; this node waits until it has applied it too.
    await readIndex(node, g, 'lease');
    return node.paxos.instanceId(g) - 1;
  } else if (consistent === 'false') {
    return node.paxos.instanceId(g) - 1;
  }
  throw new ServerError(
    'E_BAD_QUERY',
    `consistent must be true, barrier, lease or false, got '${consistent}'`,
  );
}

/** A version in an ETag / If-Match: quoted, as RFC 9110 §8.8.3 has entity tags. */
const etag = (version: string) => `"${version}"`;
const VERSION_TAG = /^"(\d+(?:\.\d+)?)"$/;

function headerOf(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  if (Array.isArray(v)) throw new ServerError('E_BAD_HEADER', `${name} given more than once`);
  return v;
}

/** If-Match / If-None-Match of a PUT or DELETE; the state machine checks it when it applies. */
function preconditionOf(req: FastifyRequest): Precondition {
  const ifMatch = headerOf(req, 'if-match')?.trim();
  const ifNoneMatch = headerOf(req, 'if-none-match')?.trim();
  if (ifMatch !== undefined && ifNoneMatch !== undefined)
    throw new ServerError('E_BAD_HEADER', 'give If-Match or If-None-Match, not both');
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch !== '*')
      throw new ServerError(
        'E_BAD_HEADER',
        `If-None-Match on a write must be * (create only), got '${ifNoneMatch}'`,
      );
    return { kind: 'absent' };
  }
  if (ifMatch === undefined) return { kind: 'none' };
  if (ifMatch === '*') return { kind: 'exists' };
  const version = VERSION_TAG.exec(ifMatch)?.[1];
  if (version === undefined || version.length > MAX_VERSION_BYTES)
    throw new ServerError(
      'E_BAD_HEADER',
      `If-Match must be * or one version in quotes as an ETag gives it ("12"), got '${ifMatch}'`,
    );
  return { kind: 'version', version };
}

/** The Idempotency-Key's bytes (Node reads header bytes as latin1, one char a byte). */
function idempotencyKeyOf(req: FastifyRequest): Uint8Array | undefined {
  const header = headerOf(req, 'idempotency-key');
  if (header === undefined) return undefined;
  const key = Buffer.from(header, 'latin1');
  if (key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_BYTES)
    throw new ServerError(
      'E_BAD_HEADER',
      `Idempotency-Key must have 1 … ${MAX_IDEMPOTENCY_KEY_BYTES} bytes, got ${key.length}`,
      { header: 'idempotency-key' },
    );
  return key;
}

/** How a write's outcome in the state machine answers the client (design.md §6). */
function answerWrite(reply: FastifyReply, key: string, result: unknown): WriteAnswer {
  const r = result as KvResult | undefined;
  if (r === undefined || !r.ok || !('outcome' in r))
    // This node proposed the write with encodeWrite and applied it: anything else is a bug.
    throw new Error(`the KV state machine answered a write with ${JSON.stringify(result)}`);
  const o = r.outcome;
  if (o.replayed) reply.header('idempotent-replayed', 'true');
  reply.header('x-tspaxos-instance-id', String(o.instanceId));
  switch (o.status) {
    case 'applied':
      reply.header('etag', etag(o.version!));
      return { instanceId: o.instanceId, version: o.version!, replayed: o.replayed };
    case 'precondition_failed':
      if (o.version !== null) reply.header('etag', etag(o.version));
      throw new ServerError(
        'E_PRECONDITION',
        o.version === null ? `'${key}' does not exist` : `'${key}' is at version ${o.version}`,
        { currentVersion: o.version, instanceId: o.instanceId, replayed: o.replayed },
      );
    case 'idempotency_mismatch':
      throw new ServerError(
        'E_IDEMPOTENCY_KEY_REUSED',
        'this Idempotency-Key was first used for another request (method, key, body or precondition): nothing applied',
        { firstInstanceId: o.instanceId },
      );
  }
}

interface WriteAnswer {
  instanceId: number;
  version: string;
  replayed: boolean;
}

/** `limit` of a listing: 1 … MAX_LIST_LIMIT. */
function limitOf(text: string | undefined): number {
  if (text === undefined) return DEFAULT_LIST_LIMIT;
  const n = /^\d{1,7}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= MAX_LIST_LIMIT))
    throw new ServerError('E_BAD_QUERY', `limit must be 1 … ${MAX_LIST_LIMIT}, got '${text}'`);
  return n;
}

export async function kvRoutes(app: FastifyInstance, { node }: { node: KvNode }): Promise<void> {
  const groups = node.groupCount;
  // The barrier: an empty value for no state machine, batched with the writes waiting here.
  const barriers = new SharedBarriers(async (g) => {
    node.metrics.consistentReadBarriers.inc();
    return (await propose(node, g, new Uint8Array(0), NO_SM_ID, false)).instanceId;
  }, node.barrierWaitMs);
  app.get('/kv/*', async (req, reply) => {
    const key = keyOf(req);
    const { consistent = 'false' } = checkQuery(req, ['consistent']);
    const g = groupOfKey(key, groups);
    const instanceId = await readPoint(node, barriers, g, consistent);
    reply.header('x-tspaxos-instance-id', String(instanceId));
    const entry = node.kvs[g]!.read(key);
    if (entry === undefined) {
      reply.code(404).type('application/json');
      return errorBody('E_NOT_FOUND', `no key '${key}'`);
    }
    reply.header('etag', etag(entry.version));
    reply.type('application/octet-stream');
    return entry.value;
  });

  // Listing by prefix, across the groups (the shape agreed for issue 18).
  app.get('/kv', async (req) => {
    const q = checkQuery(req, ['prefix', 'after', 'limit', 'consistent']);
    const prefix = q.prefix ?? '';
    checkKeyText(prefix, 'prefix', 'E_BAD_QUERY');
    const after = q.after === '' ? undefined : q.after;
    if (after !== undefined) checkKeyText(after, 'after', 'E_BAD_QUERY');
    const limit = limitOf(q.limit);
    const consistent = q.consistent ?? 'false';
    await Promise.all(
      Array.from({ length: groups }, (_, g) => readPoint(node, barriers, g, consistent)),
    );
    const page = listPage(
      node.kvs.map((kv) => kv.entries(prefix, after)),
      limit,
      MAX_LIST_PAGE_BYTES,
    );
    return {
      items: page.items.map((e) => ({
        key: e.key,
        value: e.value.toString('base64'),
        version: e.version,
      })),
      next: page.next,
    };
  });

  const write = async (req: FastifyRequest, reply: FastifyReply, action: 'put' | 'delete') => {
    const key = keyOf(req);
    checkQuery(req, []);
    let value: Uint8Array = new Uint8Array(0);
    if (action === 'put') {
      const body = req.body;
      value = body instanceof Uint8Array ? body : new Uint8Array(0);
    }
    const precondition = preconditionOf(req);
    const idempotencyKey = idempotencyKeyOf(req);
    const command = encodeWrite({
      action,
      key,
      value,
      precondition,
      ...(idempotencyKey !== undefined ? { idempotencyKey } : {}),
      // The state machine's clock for the idempotency window is the proposers' (design.md §6).
      proposedAtMs: Date.now(),
      window: node.idempotencyWindow,
    });
    const g = groupOfKey(key, groups);
    const started = performance.now();
    const r = await propose(node, g, command, KV_SM_ID, true);
    node.metrics.commitLatency.observe({ op: action }, (performance.now() - started) / 1000);
    return answerWrite(reply, key, r.result);
  };
  app.put('/kv/*', (req, reply) => write(req, reply, 'put'));
  app.delete('/kv/*', (req, reply) => write(req, reply, 'delete'));
}
