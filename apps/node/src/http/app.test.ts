// What building the HTTP app costs a start (issue 22: a restarted node's time to caught up).
import { createRequire } from 'node:module';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { buildHttp } from './app';

const require = createRequire(import.meta.url);
/** Modules of fastify's default schema compilers (and ajv) this process has loaded. */
const schemaCompilers = () =>
  Object.keys(require.cache).filter((k) =>
    /[/\\](ajv|ajv-formats|@fastify[/\\](ajv-compiler|fast-json-stringify-compiler))[/\\]/.test(k),
  );

describe('the HTTP app', () => {
  it('never loads a schema compiler: no route has a schema', async () => {
    expect(schemaCompilers(), 'loaded before the test').toEqual([]);
    const node = {
      access: { tokens: undefined, protectObservability: false, corsOrigins: new Set() },
      stopping: false,
      log: pino({ level: 'silent' }),
      groupCount: 1,
      metrics: { httpRequests: { inc: () => {} } },
      recordTaskError: (_code: string, e: Error) => {
        throw e;
      },
    };
    const app = buildHttp(node as unknown as Parameters<typeof buildHttp>[0]);
    try {
      await app.ready();
      // Answers in our JSON error format go through fastify's reply serializer too.
      const res = await app.inject({ method: 'GET', url: '/nowhere' });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toMatchObject({ error: { code: 'E_NOT_FOUND' } });
      expect(schemaCompilers()).toEqual([]);
    } finally {
      await app.close();
    }
  });
});
