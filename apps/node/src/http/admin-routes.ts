// POST /admin/checkpoint and /admin/compact: every group at once, one entry per group in the
// answer (group 0's also on top, as the first API had it). GET /admin/backup: every group's KV
// checkpoint in one file (backup.ts).
import type { FastifyInstance } from 'fastify';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { backupChunks } from '../backup';
import { ServerError } from '../errors';
import { KV_FILE, type KvStateMachine } from '../kv-state-machine';
import type { PaxosNode } from '../stack';
import { checkQuery } from './request';

/** What the admin routes need from the node (server.ts implements it). */
export interface AdminNode {
  readonly log: Logger;
  readonly groupCount: number;
  readonly paxos: Pick<PaxosNode, 'compact'>;
  readonly kvs: readonly Pick<
    KvStateMachine,
    'checkpoint' | 'getCheckpointState' | 'getCheckpointInstanceId'
  >[];
  readonly config: { readonly nodeId: number };
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

  app.get('/admin/backup', async (req, reply) => {
    checkQuery(req, []);
    const now = Date.now();
    // Group after group, each checkpoint read in the same synchronous step that wrote it:
    // nothing is applied, and no other checkpoint replaces the file, in between.
    const files = node.kvs.map((kv, group) => {
      try {
        kv.checkpoint(now);
      } catch (error) {
        // A peer is copying the checkpoint: lockCheckpointState brought it up to date, and the
        // lock keeps it as it is; it goes into the backup.
        if (!(error instanceof ServerError && error.code === 'E_CHECKPOINT_LOCKED')) throw error;
      }
      const { dir } = kv.getCheckpointState();
      return {
        group,
        checkpointInstanceId: kv.getCheckpointInstanceId(),
        bytes: fs.readFileSync(path.join(dir, KV_FILE)),
      };
    });
    const ids = files.map((f) => f.checkpointInstanceId);
    const bytes = files.reduce((n, f) => n + f.bytes.length, 0);
    node.log.info({ group: null, checkpointInstanceIds: ids, bytes }, 'backup-sent');
    reply
      .type('application/octet-stream')
      .header(
        'content-disposition',
        `attachment; filename="tspaxos-node${node.config.nodeId}.backup"`,
      );
    return Readable.from(
      backupChunks(
        { nodeId: node.config.nodeId, groupCount: node.groupCount, createdAtMs: now },
        files,
      ),
    );
  });
}
