// POST /admin/checkpoint and /admin/compact: every group at once, one entry per group in the
// answer (group 0's also on top, as the first API had it).
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { ServerError } from '../errors';
import type { KvStateMachine } from '../kv-state-machine';
import type { PaxosNode } from '../stack';
import { checkQuery } from './request';

/** What the admin routes need from the node (server.ts implements it). */
export interface AdminNode {
  readonly log: Logger;
  readonly groupCount: number;
  readonly paxos: Pick<PaxosNode, 'compact'>;
  readonly kvs: readonly Pick<KvStateMachine, 'checkpoint'>[];
}

export async function adminRoutes(
  app: FastifyInstance,
  { node }: { node: AdminNode },
): Promise<void> {
  app.post('/admin/checkpoint', async (req) => {
    checkQuery(req, []);
    const now = Date.now();
    const ids = node.kvs.map((kv) => kv.checkpoint(now));
    node.log.info({ group: null, checkpointInstanceIds: ids }, 'checkpoint-written');
    return {
      checkpointInstanceId: ids[0],
      groups: ids.map((id, g) => ({ group: g, checkpointInstanceId: id })),
    };
  });

  app.post('/admin/compact', async (req) => {
    const { keep = '0' } = checkQuery(req, ['keep']);
    if (!/^\d{1,15}$/.test(keep))
      throw new ServerError('E_BAD_QUERY', `keep must be a non-negative integer, got '${keep}'`);
    // Deletes each group's log below its KV checkpoint, keeping `keep` instances; resolves once
    // the new min chosen id is durable (the records go in bounded steps right after).
    const ids: number[] = [];
    for (let g = 0; g < node.groupCount; g++) {
      ids.push((await node.paxos.compact(g, { keep: Number(keep) })).minChosenInstanceId);
    }
    node.log.info({ group: null, keep: Number(keep), minChosenInstanceIds: ids }, 'log-compacted');
    return {
      minChosenInstanceId: ids[0],
      groups: ids.map((id, g) => ({ group: g, minChosenInstanceId: id })),
    };
  });
}
