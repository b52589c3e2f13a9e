// GET /status (JSON), /metrics (Prometheus text) and / (the dashboard page, which polls /status).
import type { FastifyInstance } from 'fastify';
import * as fs from 'node:fs';
import { DASHBOARD_FILE } from '../assets';
import type { Metrics } from '../metrics';
import type { NodeStatus } from '../status';
import { checkQuery } from './request';

/** What the status routes need from the node (server.ts implements it). */
export interface StatusNode {
  status(): NodeStatus;
  readonly metrics: Pick<Metrics, 'registry' | 'scrape'>;
}

export async function statusRoutes(
  app: FastifyInstance,
  { node }: { node: StatusNode },
): Promise<void> {
  app.get('/status', async (req) => {
    checkQuery(req, []);
    return node.status();
  });

  app.get('/metrics', async (req, reply) => {
    checkQuery(req, []);
    reply.type(node.metrics.registry.contentType);
    return node.metrics.scrape();
  });

  app.get('/', async (req, reply) => {
    checkQuery(req, ['nodes', 'interval']);
    reply.type('text/html; charset=utf-8');
    return fs.promises.readFile(DASHBOARD_FILE);
  });
}
