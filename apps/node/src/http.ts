// The HTTP API of DESIGN §6 on fastify. Every error is `{ error: { code, message } }`; client
// input never produces a 500 (test/http-errors.test.ts sends a corpus of bad requests).
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import * as fs from 'node:fs';
import { ServerError } from './errors';
import { checkKey, groupOfKey } from './keys';
import { encodeOp, OP_DELETE, OP_PUT } from './kv-state-machine';
import {
  KV_SM_ID,
  MAX_BODY_BYTES,
  MAX_PARAM_CHARS,
  PROPOSE_TIMEOUT_MS,
  RETRY_AFTER_SECONDS,
} from './options';
import type { KvServer } from './server';
import { NO_SM_ID, PaxosError, type ProposeResult } from './stack';

const DASHBOARD_FILE = new URL('../public/index.html', import.meta.url);

/** Paths the server answers, with their methods (a known path with another method gets 405). */
const ROUTES: Record<string, string[]> = {
  '/': ['GET', 'HEAD'],
  '/status': ['GET', 'HEAD'],
  '/metrics': ['GET', 'HEAD'],
  '/admin/checkpoint': ['POST'],
  '/admin/compact': ['POST'],
};
const KV_METHODS = ['GET', 'HEAD', 'PUT', 'DELETE'];

interface ErrorBody {
  error: { code: string; message: string; [extra: string]: unknown };
}

function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

/** Where a proposal was when the group refused it, and what it was for. */
export interface Refusal {
  /**
   * The value had entered the group's queue: its proposer may have sent it, so it may be chosen.
   * False when PaxosNode refused it before queueing it (nothing left the node).
   */
  queued: boolean;
  /** A PUT/DELETE (a barrier has no effect, so its outcome is never in doubt). */
  write: boolean;
}

/**
 * Maps every paxos rejection to an HTTP answer; undefined for the codes that mean a bug of ours.
 * A 503 means "not applied, try again" (issue 17): a write the group may have sent before it
 * refused it is answered 504 E_OUTCOME_UNKNOWN instead, as a timeout is.
 */
export function fromPaxos(error: PaxosError, refusal: Refusal): ServerError | undefined {
  const code = error.code;
  const detail = `${code}: ${error.message}`;
  const unavailable = () => new ServerError('E_UNAVAILABLE', detail);
  const unknownOutcome = refusal.queued && refusal.write;
  const outcomeUnknown = () =>
    new ServerError(
      'E_OUTCOME_UNKNOWN',
      `${detail} (the write may have been sent to the other members before: it may or may not be applied; read it back or retry)`,
    );
  switch (code) {
    case 'E_TIMEOUT':
      return new ServerError('E_TIMEOUT', error.message);
    case 'E_STOPPED':
      return unknownOutcome ? outcomeUnknown() : new ServerError('E_STOPPING', error.message);
    case 'E_FOLLOWER':
      return new ServerError(
        'E_FOLLOWER',
        'a follower does not propose: send writes and consistent reads to a voting member',
      );
    case 'E_VALUE_TOO_LARGE':
      return new ServerError('E_TOO_LARGE', error.message);
    case 'E_QUEUE_FULL':
    case 'E_NOT_MEMBER':
      // Refused before it was sent, even when queued (instance.ts checkNewValue).
      return unavailable();
    case 'E_GROUP_STOPPED':
    case 'E_CHECKSUM_MISMATCH':
    case 'E_STORAGE':
    case 'E_NEEDS_CHECKPOINT':
    case 'E_CHECKPOINT_INSTALLED':
    case 'E_CHECKPOINT_INSTALL_FAILED':
      // The group cannot take values now (stopped on a diverged log or a failed write, waiting
      // for or restarting from a checkpoint). Its queue is rejected whole, in-flight value too.
      return unknownOutcome ? outcomeUnknown() : unavailable();
    case 'E_EXECUTE_FAILED':
      // Only ever for the value in flight once chosen: it is in the log, not yet applied here.
      return new ServerError(
        'E_EXECUTE_FAILED',
        `${detail} (the value was chosen; this node applies it once its state machine works again)`,
      );
    case 'E_BAD_GROUP':
    case 'E_BAD_ARGUMENT':
    case 'E_UNKNOWN_STATE_MACHINE':
    case 'E_MEMBERSHIP_CONFLICT':
    case 'E_INVARIANT':
      // The server asked wrongly, a peer runs state machines this node does not have, or an
      // invariant of the consensus core broke (the group stopped): bugs, counted as task errors.
      return undefined;
    default: {
      const unmapped: never = code; // a new code must be mapped above
      return unmapped;
    }
  }
}

const QUEUED = Symbol('queued');
const QUEUED_NOW = Promise.resolve(QUEUED);

export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown; queued: boolean };

/**
 * Settles like `pending`, and says whether a rejection was there at once. PaxosNode refuses a
 * value it does not queue with an already-rejected promise, which wins the race below against
 * a resolved one; a rejection that comes later is for a value the group had queued.
 */
export async function settle<T>(pending: Promise<T>): Promise<Settled<T>> {
  let queued = false;
  try {
    const first = await Promise.race([pending, QUEUED_NOW]);
    if (first !== QUEUED) return { ok: true, value: first as T };
    queued = true;
    return { ok: true, value: await pending };
  } catch (error) {
    return { ok: false, error, queued };
  }
}

/** Proposes through the group; a refusal is mapped by fromPaxos. */
async function propose(
  server: KvServer,
  g: number,
  value: Uint8Array,
  smId: number,
  write: boolean,
): Promise<ProposeResult> {
  // Not handed to the proposer once the node stops: that is what makes this 503 true.
  if (server.stopping) throw new ServerError('E_STOPPING', 'the node is stopping');
  const r = await settle(
    server.trackProposal(
      server.paxos.batchPropose(g, value, { smId, timeoutMs: PROPOSE_TIMEOUT_MS }),
    ),
  );
  if (r.ok) return r.value;
  if (!(r.error instanceof PaxosError)) throw r.error;
  throw fromPaxos(r.error, { queued: r.queued, write }) ?? r.error;
}

/** The answer to an error the client or the cluster's state explains; undefined for a bug. */
function clientError(error: unknown): ServerError | undefined {
  if (error instanceof ServerError) return error.code === 'E_INTERNAL' ? undefined : error;
  // Other routes (compact): nothing was proposed.
  if (error instanceof PaxosError) return fromPaxos(error, { queued: false, write: false });
  // fastify's own 4xx (body too large, bad content length …); anything else is ours.
  const err = error as { statusCode?: number; code?: string; message?: string };
  const status = err.statusCode ?? 500;
  if (status === 413)
    return new ServerError('E_TOO_LARGE', `the body is larger than ${MAX_BODY_BYTES} bytes`);
  if (status === 415)
    return new ServerError('E_UNSUPPORTED_MEDIA_TYPE', err.message ?? 'unsupported media type');
  if (status >= 400 && status < 500)
    return new ServerError('E_BAD_REQUEST', `${err.code ?? 'bad request'}: ${err.message ?? ''}`);
  return undefined;
}

function queryOf(req: FastifyRequest): Record<string, unknown> {
  return (req.query ?? {}) as Record<string, unknown>;
}

/** Rejects query parameters the route does not know, and repeated ones. */
function checkQuery(req: FastifyRequest, allowed: string[]): Record<string, string> {
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

function keyOf(req: FastifyRequest): string {
  const key = (req.params as { '*'?: string })['*'] ?? '';
  checkKey(key);
  return key;
}

export function buildHttp(server: KvServer): FastifyInstance {
  const app = Fastify({
    loggerInstance: server.log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: MAX_BODY_BYTES,
    routerOptions: { maxParamLength: MAX_PARAM_CHARS },
    // Our own 503 E_STOPPING (onRequest below) answers while the node closes, in our format.
    return503OnClosing: false,
    // Requests Node's HTTP parser refuses (a malformed request line or header, headers over
    // 16 KiB, a request timeout): answered in our error format, then the connection is closed.
    clientErrorHandler: (error, socket) => {
      const e = error as Error & { code?: string };
      if (e.code === 'ECONNRESET' || socket.destroyed) return;
      const [status, code] =
        e.code === 'HPE_HEADER_OVERFLOW'
          ? [431, 'E_TOO_LARGE']
          : e.code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? [408, 'E_TIMEOUT']
            : [400, 'E_BAD_REQUEST'];
      const body = JSON.stringify(errorBody(code, `${e.code ?? 'bad request'}: ${e.message}`));
      if (socket.writable)
        socket.write(
          `HTTP/1.1 ${status} ${code}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
            `Content-Type: application/json\r\nConnection: close\r\n\r\n${body}`,
        );
      socket.destroy();
    },
    // Errors the router raises before any route runs (a bad percent-encoding in the URL).
    frameworkErrors: (error, _req, rawReply) => {
      void (rawReply as unknown as FastifyReply)
        .code(400)
        .type('application/json')
        .send(errorBody('E_BAD_REQUEST', error.message));
    },
  });

  // Raw bodies of any content type (a value is bytes); nothing else is parsed.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.addHook('onRequest', async (_req, reply) => {
    reply.header('access-control-allow-origin', '*');
    if (server.stopping) {
      reply
        .code(503)
        .header('retry-after', String(RETRY_AFTER_SECONDS))
        .send(errorBody('E_STOPPING', 'the node is stopping'));
      return reply;
    }
    return undefined;
  });
  app.addHook('onResponse', async (req, reply) => {
    server.metrics.httpRequests.inc({
      method: req.method,
      route: req.routeOptions.url ?? 'unknown',
      status: String(reply.statusCode),
    });
  });

  app.setErrorHandler((error: unknown, req: FastifyRequest, reply: FastifyReply) => {
    let e = clientError(error);
    if (e === undefined) {
      // Not the client's fault: a bug. Counted, logged, and answered 500 (the tests fail on it).
      server.recordTaskError('E_INTERNAL', error as Error);
      req.log.error({ err: error, url: req.url }, 'request-failed');
      e = new ServerError('E_INTERNAL', (error as Error).message ?? String(error));
    }
    const body = errorBody(e.code, e.message);
    Object.assign(body.error, e.extra);
    // A 503 is "not applied, try again": say when.
    if (e.httpStatus === 503) reply.header('retry-after', String(RETRY_AFTER_SECONDS));
    void reply.code(e.httpStatus).type('application/json').send(body);
  });

  app.setNotFoundHandler((req, reply) => {
    const pathOnly = req.url.split('?')[0]!;
    const allowed = pathOnly.startsWith('/kv/') ? KV_METHODS : ROUTES[pathOnly];
    if (allowed !== undefined) {
      void reply
        .code(405)
        .header('allow', allowed.join(', '))
        .send(
          errorBody(
            'E_METHOD_NOT_ALLOWED',
            `${req.method} is not allowed on ${pathOnly}; use ${allowed.join(', ')}`,
          ),
        );
      return;
    }
    if (pathOnly === '/kv' || pathOnly === '/kv/') {
      void reply.code(400).send(errorBody('E_BAD_KEY', 'the key is empty'));
      return;
    }
    void reply.code(404).send(errorBody('E_NOT_FOUND', `no route ${req.method} ${pathOnly}`));
  });

  const groups = server.config.groups;

  app.get('/kv/*', async (req, reply) => {
    const key = keyOf(req);
    const { consistent = 'false' } = checkQuery(req, ['consistent']);
    const g = groupOfKey(key, groups);
    let instanceId: number;
    if (consistent === 'true') {
      const started = performance.now();
      // The barrier: an empty value for no state machine, batched with the writes waiting here.
      const r = await propose(server, g, new Uint8Array(0), NO_SM_ID, false);
      server.metrics.commitLatency.observe({ op: 'barrier' }, (performance.now() - started) / 1000);
      instanceId = r.instanceId;
    } else if (consistent === 'lease') {
      // The master holds a lease (no other node becomes master before it ends): it serves from
      // its own state, without a paxos round. Any other node names the master it knows.
      if (!server.paxos.isMaster(g)) {
        const master = server.masterView(g);
        throw new ServerError(
          'E_NOT_MASTER',
          master === null
            ? 'no master holds a lease now (an election takes up to 2 leases): try again'
            : `node ${master.nodeId} is the master: read from it`,
          { master: master?.http ?? null, masterNodeId: master?.nodeId ?? null },
        );
      }
      instanceId = server.paxos.status(g).instanceId - 1;
    } else if (consistent === 'false') {
      instanceId = server.paxos.status(g).instanceId - 1;
    } else {
      throw new ServerError(
        'E_BAD_QUERY',
        `consistent must be true, false or lease, got '${consistent}'`,
      );
    }
    reply.header('x-tspaxos-instance-id', String(instanceId));
    const value = server.kvs[g]!.get(key);
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
    const r = await propose(server, g, encodeOp({ op, key, value }), KV_SM_ID, true);
    server.metrics.commitLatency.observe(
      { op: op === OP_PUT ? 'put' : 'delete' },
      (performance.now() - started) / 1000,
    );
    reply.header('x-tspaxos-instance-id', String(r.instanceId));
    return { instanceId: r.instanceId };
  };
  app.put('/kv/*', (req, reply) => write(req, reply, OP_PUT));
  app.delete('/kv/*', (req, reply) => write(req, reply, OP_DELETE));

  app.get('/status', async (req) => {
    checkQuery(req, []);
    return server.status();
  });

  app.get('/metrics', async (req, reply) => {
    checkQuery(req, []);
    reply.type(server.metrics.registry.contentType);
    return server.metrics.registry.metrics();
  });

  app.get('/', async (req, reply) => {
    checkQuery(req, ['nodes', 'interval']);
    reply.type('text/html; charset=utf-8');
    return fs.promises.readFile(DASHBOARD_FILE);
  });

  app.post('/admin/checkpoint', async (req) => {
    checkQuery(req, []);
    const now = Date.now();
    const ids = server.kvs.map((kv) => kv.checkpoint(now));
    server.log.info({ group: null, checkpointInstanceIds: ids }, 'checkpoint-written');
    return {
      checkpointInstanceId: ids[0],
      ...(groups > 1
        ? { groups: ids.map((id, g) => ({ group: g, checkpointInstanceId: id })) }
        : {}),
    };
  });

  app.post('/admin/compact', async (req) => {
    const { keep = '0' } = checkQuery(req, ['keep']);
    if (!/^\d{1,15}$/.test(keep))
      throw new ServerError('E_BAD_QUERY', `keep must be a non-negative integer, got '${keep}'`);
    // Deletes each group's log below its KV checkpoint, keeping `keep` instances; resolves once
    // the new min chosen id is durable (the records go in bounded steps right after).
    const ids: number[] = [];
    for (const g of server.groupIndices()) {
      ids.push((await server.paxos.compact(g, { keep: Number(keep) })).minChosenInstanceId);
    }
    server.log.info(
      { group: null, keep: Number(keep), minChosenInstanceIds: ids },
      'log-compacted',
    );
    return {
      minChosenInstanceId: ids[0],
      ...(groups > 1
        ? { groups: ids.map((id, g) => ({ group: g, minChosenInstanceId: id })) }
        : {}),
    };
  });

  return app;
}
