// GET, PUT and DELETE /kv/<key>: reads from local state (stale, barrier or lease) and writes
// through the key's group, on any node: the paxos node forwards writes and barriers to the
// group's master and asks it for its read index (@tspaxos/paxos forwarding, docs/design.md §5).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ServerError } from '../errors';
import { groupOfKey } from '../keys';
import { encodeOp, OP_DELETE, OP_PUT, type KvStateMachine } from '../kv-state-machine';
import type { Metrics } from '../metrics';
import { KV_SM_ID, PROPOSE_TIMEOUT_MS } from '../options';
import { NO_SM_ID, PaxosError, type PaxosNode, type ProposeResult } from '../stack';
import { errorBody, fromPaxos, settle } from './errors';
import { checkQuery, keyOf } from './request';

/** What the key-value routes need from the node (server.ts implements it). */
export interface KvNode {
  readonly groupCount: number;
  readonly stopping: boolean;
  readonly paxos: Pick<PaxosNode, 'batchPropose' | 'readIndex' | 'instanceId'>;
  readonly kvs: readonly Pick<KvStateMachine, 'get'>[];
  readonly metrics: Pick<Metrics, 'commitLatency'>;
  /** Counts a client proposal until it settles, so that a stop can drain it. */
  trackProposal<T>(proposal: Promise<T>): Promise<T>;
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
  const r = await settle(
    node.trackProposal(node.paxos.batchPropose(g, value, { smId, timeoutMs: PROPOSE_TIMEOUT_MS })),
  );
  if (r.ok) return r.value;
  if (!(r.error instanceof PaxosError)) throw r.error;
  throw fromPaxos(r.error, { queued: r.queued, write }) ?? r.error;
}

/**
 * The master's read index under its lease, applied on this node (PaxosNode.readIndex): this
 * node's state then reflects every write completed before the read began.
 */
async function readIndex(node: KvNode, g: number): Promise<void> {
  if (node.stopping) throw new ServerError('E_STOPPING', 'the node is stopping');
  const r = await settle(node.paxos.readIndex(g, { timeoutMs: PROPOSE_TIMEOUT_MS }));
  if (r.ok) return;
  if (!(r.error instanceof PaxosError)) throw r.error;
  throw fromPaxos(r.error, { queued: false, write: false }) ?? r.error;
}

export async function kvRoutes(app: FastifyInstance, { node }: { node: KvNode }): Promise<void> {
  const groups = node.groupCount;
  app.get('/kv/*', async (req, reply) => {
    const key = keyOf(req);
    const { consistent = 'false' } = checkQuery(req, ['consistent']);
    const g = groupOfKey(key, groups);
    let instanceId: number;
    if (consistent === 'true') {
      const started = performance.now();
      // The barrier: an empty value for no state machine, batched with the writes waiting here.
      const r = await propose(node, g, new Uint8Array(0), NO_SM_ID, false);
      node.metrics.commitLatency.observe({ op: 'barrier' }, (performance.now() - started) / 1000);
      instanceId = r.instanceId;
    } else if (consistent === 'lease') {
      // The master holds a lease (no other node becomes master before it ends): its applied
      // instance covers every completed write; this node waits until it has applied it too.
      await readIndex(node, g);
      instanceId = node.paxos.instanceId(g) - 1;
    } else if (consistent === 'false') {
      instanceId = node.paxos.instanceId(g) - 1;
    } else {
      throw new ServerError(
        'E_BAD_QUERY',
        `consistent must be true, false or lease, got '${consistent}'`,
      );
    }
    reply.header('x-tspaxos-instance-id', String(instanceId));
    const value = node.kvs[g]!.get(key);
    if (value === undefined) {
      reply.code(404).type('application/json');
      return errorBody('E_NOT_FOUND', `no key '${key}'`);
    }
    reply.type('application/octet-stream');
    return value;
  });

  const write = async (
    req: FastifyRequest,
    reply: FastifyReply,
    op: typeof OP_PUT | typeof OP_DELETE,
  ) => {
    const key = keyOf(req);
    checkQuery(req, []);
    let value: Uint8Array = new Uint8Array(0);
    if (op === OP_PUT) {
      const body = req.body;
      value = body instanceof Uint8Array ? body : new Uint8Array(0);
    }
    const g = groupOfKey(key, groups);
    const started = performance.now();
    const r = await propose(node, g, encodeOp({ op, key, value }), KV_SM_ID, true);
    node.metrics.commitLatency.observe(
      { op: op === OP_PUT ? 'put' : 'delete' },
      (performance.now() - started) / 1000,
    );
    reply.header('x-tspaxos-instance-id', String(r.instanceId));
    return { instanceId: r.instanceId };
  };
  app.put('/kv/*', (req, reply) => write(req, reply, OP_PUT));
  app.delete('/kv/*', (req, reply) => write(req, reply, OP_DELETE));
}
