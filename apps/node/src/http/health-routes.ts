// GET /livez (the process serves HTTP), /readyz (readiness.ts) and /version.
import type { FastifyInstance } from 'fastify';
import { ServerError } from '../errors';
import type { NotReadyReason } from '../readiness';
import { VERSION } from '../version';
import { checkQuery } from './request';

/** What the health routes need from the node (server.ts implements it). */
export interface HealthNode {
  notReadyReasons(): NotReadyReason[];
  readonly groupCount: number;
}

export async function healthRoutes(
  app: FastifyInstance,
  { node }: { node: HealthNode },
): Promise<void> {
  app.get('/livez', async (req) => {
    checkQuery(req, []);
    return { live: true };
  });

  app.get('/readyz', async (req) => {
    checkQuery(req, []);
    const reasons = node.notReadyReasons();
    if (reasons.length === 0) return { ready: true, groups: node.groupCount };
    throw new ServerError('E_NOT_READY', reasons.map((r) => r.message).join('; '), { reasons });
  });

  app.get('/version', async (req) => {
    checkQuery(req, []);
    return { name: VERSION.name, version: VERSION.version, node: process.version };
  });
}
