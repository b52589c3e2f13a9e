// The HTTP API of design.md §6 on fastify: the server-wide parts (logging, the stopping 503, error
// format, 404/405) here, the routes in plugins. Every error is `{ error: { code, message } }`;
// client input never produces a 500 (test/http-errors.test.ts sends a corpus of bad requests).
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { Logger } from 'pino';
import { ServerError } from '../errors';
import type { Metrics } from '../metrics';
import { MAX_BODY_BYTES, MAX_PARAM_CHARS, RETRY_AFTER_SECONDS } from '../options';
import { adminRoutes, type AdminNode } from './admin-routes';
import { type Access, checkAccess } from './auth';
import { clientError, errorBody } from './errors';
import { kvRoutes, type KvNode } from './kv-routes';
import { healthRoutes, type HealthNode } from './health-routes';
import { memberRoutes, type MembersNode } from './member-routes';
import { statusRoutes, type StatusNode } from './status-routes';
import type { HttpsOptions } from '../tls';

/**
 * What the HTTP layer needs from the node: each route plugin declares its part, and server.ts
 * implements the whole (etcd's etcdhttp declares its ServerHealth the same way), so this layer
 * never imports the server.
 */
export type HttpNode = KvNode &
  AdminNode &
  MembersNode &
  StatusNode &
  HealthNode & {
    readonly log: Logger;
    /** Tokens, roles and CORS origins (auth.ts). */
    readonly access: Access;
    readonly stopping: boolean;
    readonly metrics: Pick<Metrics, 'httpRequests'>;
    /** Counts and keeps an unexpected error (a bug): it fails the tests. */
    recordTaskError(code: string, error: Error): void;
  };

/** Paths the server answers, with their methods (a known path with another method gets 405). */
const ROUTES: Record<string, string[]> = {
  '/': ['GET', 'HEAD'],
  '/kv': ['GET', 'HEAD'],
  '/status': ['GET', 'HEAD'],
  '/metrics': ['GET', 'HEAD'],
  '/livez': ['GET', 'HEAD'],
  '/readyz': ['GET', 'HEAD'],
  '/version': ['GET', 'HEAD'],
  '/admin/checkpoint': ['POST'],
  '/admin/compact': ['POST'],
  '/admin/members': ['GET', 'HEAD', 'POST'],
  '/admin/backup': ['GET', 'HEAD'],
};
const KV_METHODS = ['GET', 'HEAD', 'PUT', 'DELETE'];

/** The schema compilers of a server whose routes have no schema: asked for one, a bug. */
function noSchemas(): () => never {
  return () => {
    throw new Error('a route declared a schema: this server has no schema compiler');
  };
}

/** The fastify server: HTTPS when `https` is given (--cert, --key, --client-ca). */
export function buildHttp(node: HttpNode, https?: HttpsOptions): FastifyInstance {
  const app = Fastify({
    ...(https ? { https } : {}),
    loggerInstance: node.log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: MAX_BODY_BYTES,
    routerOptions: { maxParamLength: MAX_PARAM_CHARS },
    // No route declares a schema, so fastify's default compilers (ajv, fast-json-stringify),
    // which it loads and sets up when the app is built, are never used: they were ~0.2 s of
    // every start, ~1.4 s on a loaded machine (issue 22's restart timeline; app.test.ts).
    schemaController: {
      compilersFactory: { buildValidator: noSchemas, buildSerializer: noSchemas },
    },
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

  app.addHook('onRequest', async (req, reply) => {
    if (checkAccess(node.access, req, reply)) return reply;
    // A stopping process still serves: /livez says so (its readiness is 503 E_STOPPING). The
    // route the router matched, not the raw URL: `/livez?x=1` is /livez too.
    if (node.stopping && req.routeOptions.url !== '/livez') {
      reply
        .code(503)
        .header('retry-after', String(RETRY_AFTER_SECONDS))
        .send(errorBody('E_STOPPING', 'the node is stopping'));
      return reply;
    }
    return undefined;
  });
  app.addHook('onResponse', async (req, reply) => {
    node.metrics.httpRequests.inc({
      method: req.method,
      route: req.routeOptions.url ?? 'unknown',
      status: String(reply.statusCode),
    });
  });

  app.setErrorHandler((error: unknown, req: FastifyRequest, reply: FastifyReply) => {
    let e = clientError(error);
    if (e === undefined) {
      // Not the client's fault: a bug. Counted, logged, and answered 500 (the tests fail on it).
      node.recordTaskError('E_INTERNAL', error as Error);
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
    if (pathOnly === '/kv/') {
      void reply.code(400).send(errorBody('E_BAD_KEY', 'the key is empty'));
      return;
    }
    void reply.code(404).send(errorBody('E_NOT_FOUND', `no route ${req.method} ${pathOnly}`));
  });

  app.register(kvRoutes, { node });
  app.register(adminRoutes, { node });
  app.register(memberRoutes, { node });
  app.register(statusRoutes, { node });
  app.register(healthRoutes, { node });
  return app;
}
