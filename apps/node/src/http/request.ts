// What every route checks in a request: its query parameters and, under /kv/, its key.
import type { FastifyRequest } from 'fastify';
import { ServerError } from '../errors';
import { checkKey } from '../keys';

function queryOf(req: FastifyRequest): Record<string, unknown> {
  return (req.query ?? {}) as Record<string, unknown>;
}

/** Rejects query parameters the route does not know, and repeated ones. */
export function checkQuery(req: FastifyRequest, allowed: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(queryOf(req))) {
    if (!allowed.includes(k))
      throw new ServerError('E_BAD_QUERY', `unknown query parameter '${k}'`);
    if (typeof v !== 'string')
      throw new ServerError('E_BAD_QUERY', `query parameter '${k}' given more than once`);
    out[k] = v;
  }
  return out;
}

export function keyOf(req: FastifyRequest): string {
  const key = (req.params as { '*'?: string })['*'] ?? '';
  checkKey(key);
  return key;
}
