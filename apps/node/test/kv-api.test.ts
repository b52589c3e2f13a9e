// Versions, compare-and-swap, Idempotency-Key and prefix listing over HTTP (design.md §6), on one
// node of 2 groups in this process: what each header does and what the client is told.
import * as path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { groupOfKey } from '../src/keys';
import { KvServer } from '../src/server';
import { freePorts, tempDir, waitFor } from './helpers';

const GROUPS = 2;
/** --idempotency-keys of this node: small, so the window's bound shows. */
const WINDOW_KEYS = 3;
let server: KvServer;
let url = '';

beforeAll(async () => {
  const [paxosPort, httpPort] = await freePorts(2);
  server = new KvServer(
    {
      nodeId: 1,
      cluster: new Map([[1, { host: '127.0.0.1', port: paxosPort! }]]),
      listen: { host: '127.0.0.1', port: paxosPort! },
      http: { host: '127.0.0.1', port: httpPort! },
      dataDir: path.join(tempDir('kv-api'), 'node-1'),
      groups: GROUPS,
      httpPeers: new Map(),
      idempotencyWindowKeys: WINDOW_KEYS,
    },
    pino({ level: 'silent' }),
    (error) => {
      throw error;
    },
  );
  await server.start();
  url = server.httpUrl;
});

afterAll(async () => {
  expect(server.taskErrors).toEqual([]);
  await server?.stop();
});

function write(
  method: 'PUT' | 'DELETE',
  key: string,
  body: string | undefined,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${url}/kv/${encodeURIComponent(key)}`, {
    method,
    headers,
    ...(body !== undefined ? { body } : {}),
  });
}

const counters = () => {
  const sum = {
    appliedOps: 0,
    idempotentReplays: 0,
    idempotencyMismatches: 0,
    preconditionFailures: 0,
  };
  for (const kv of server.kvs) {
    const c = kv.status().counters;
    for (const k of Object.keys(sum) as (keyof typeof sum)[]) sum[k] += c[k];
  }
  return sum;
};

describe('versions and compare-and-swap', () => {
  it('ETag on writes and reads; If-Match and If-None-Match hold or answer 412 with the version', async () => {
    const created = await write('PUT', 'cas', 'v1', { 'if-none-match': '*' });
    expect(created.status).toBe(200);
    const body = (await created.json()) as { instanceId: number; version: string };
    expect(body.version).toBe(String(body.instanceId));
    expect(created.headers.get('etag')).toBe(`"${body.version}"`);
    const read = await fetch(`${url}/kv/cas`);
    expect(read.headers.get('etag')).toBe(created.headers.get('etag'));

    const again = await write('PUT', 'cas', 'v1', { 'if-none-match': '*' });
    expect(again.status).toBe(412);
    expect(await again.json()).toMatchObject({
      error: { code: 'E_PRECONDITION', currentVersion: body.version },
    });
    expect(again.headers.get('etag')).toBe(`"${body.version}"`);

    const swapped = await write('PUT', 'cas', 'v2', { 'if-match': `"${body.version}"` });
    expect(swapped.status).toBe(200);
    const v2 = swapped.headers.get('etag')!;
    expect(v2).not.toBe(`"${body.version}"`);
    // The old version no longer holds: the lost update is refused, the value stays.
    const stale = await write('PUT', 'cas', 'lost', { 'if-match': `"${body.version}"` });
    expect(stale.status).toBe(412);
    expect(
      ((await stale.json()) as { error: { currentVersion: string } }).error.currentVersion,
    ).toBe(v2.slice(1, -1));
    expect(await (await fetch(`${url}/kv/cas`)).text()).toBe('v2');

    const staleDelete = await write('DELETE', 'cas', undefined, {
      'if-match': `"${body.version}"`,
    });
    expect(staleDelete.status).toBe(412);
    const deleted = await write('DELETE', 'cas', undefined, { 'if-match': v2 });
    expect(deleted.status).toBe(200);
    expect(deleted.headers.get('etag')).toMatch(/^"\d+(\.\d+)?"$/);
    const gone = await write('PUT', 'cas', 'x', { 'if-match': '*' });
    expect(gone.status).toBe(412);
    expect(await gone.json()).toMatchObject({
      error: { code: 'E_PRECONDITION', currentVersion: null },
    });
    expect((await fetch(`${url}/kv/cas`)).status).toBe(404);
  });
});

describe('Idempotency-Key', () => {
  it('a retry answers the first outcome, marked replayed, and applies nothing', async () => {
    const before = counters();
    const headers = { 'idempotency-key': 'order-17' };
    const first = await write('PUT', 'idem', 'one', headers);
    expect(first.status).toBe(200);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const firstBody = (await first.json()) as { instanceId: number; version: string };
    await write('PUT', 'idem', 'changed since'); // another client's write, no key
    const retry = await write('PUT', 'idem', 'one', headers);
    expect(retry.status).toBe(200);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(retry.headers.get('x-tspaxos-instance-id')).toBe(String(firstBody.instanceId));
    expect(retry.headers.get('etag')).toBe(first.headers.get('etag'));
    expect(await retry.json()).toEqual({ ...firstBody, replayed: true });
    expect(await (await fetch(`${url}/kv/idem`)).text()).toBe('changed since');
    expect(counters()).toMatchObject({
      appliedOps: before.appliedOps + 2,
      idempotentReplays: before.idempotentReplays + 1,
    });
  });

  it('the same key with another body is 422 and applies nothing; a CAS failure replays as 412', async () => {
    await write('PUT', 'idem2', 'a', { 'idempotency-key': 'k2' });
    const other = await write('PUT', 'idem2', 'b', { 'idempotency-key': 'k2' });
    expect(other.status).toBe(422);
    expect(await other.json()).toMatchObject({
      error: { code: 'E_IDEMPOTENCY_KEY_REUSED', firstInstanceId: expect.any(Number) },
    });
    expect(await (await fetch(`${url}/kv/idem2`)).text()).toBe('a');

    const cas = { 'idempotency-key': 'k3', 'if-match': '"1"' };
    const failed = await write('PUT', 'idem2', 'c', cas);
    expect(failed.status).toBe(412);
    const replay = await write('PUT', 'idem2', 'c', cas);
    expect(replay.status).toBe(412);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(await replay.json()).toMatchObject({
      error: { code: 'E_PRECONDITION', replayed: true },
    });
  });

  it('the configured count bounds what each group keeps: a retry past it applies again', async () => {
    // Keys of group 0 only, so the bound of one group is what is seen.
    const keys = Array.from({ length: 40 }, (_, i) => `window/${i}`)
      .filter((k) => groupOfKey(k, GROUPS) === 0)
      .slice(0, WINDOW_KEYS + 1);
    const put = (k: string) => write('PUT', k, 'v', { 'idempotency-key': `w-${k}` });
    for (const k of keys) expect((await put(k)).status).toBe(200);
    expect(server.kvs[0]!.status().idempotencyKeys).toBe(WINDOW_KEYS);
    expect((await put(keys[WINDOW_KEYS]!)).headers.get('idempotent-replayed')).toBe('true');
    // The oldest key was dropped: its retry is a new write (the documented limit of the window).
    const late = await put(keys[0]!);
    expect(late.status).toBe(200);
    expect(late.headers.get('idempotent-replayed')).toBeNull();
  });

  it('without the header a repeated write applies again (as before), at a new version', async () => {
    const before = counters().appliedOps;
    const a = await write('PUT', 'plain', 'same');
    const b = await write('PUT', 'plain', 'same');
    expect(a.headers.get('etag')).not.toBe(b.headers.get('etag'));
    expect(counters().appliedOps).toBe(before + 2);
  });
});

interface Page {
  items: { key: string; value: string; version: string }[];
  next: string | null;
}

describe('listing', () => {
  it('pages through a prefix across both groups in key order, with values and versions', async () => {
    const keys = Array.from({ length: 11 }, (_, i) => `list/${String(i).padStart(2, '0')}`);
    // The prefix spans both groups, or the merge would not be tested.
    expect(new Set(keys.map((k) => groupOfKey(k, GROUPS))).size).toBe(GROUPS);
    const versions = new Map<string, string>();
    for (const k of keys) {
      const res = await write('PUT', k, `value of ${k}`);
      versions.set(k, res.headers.get('etag')!.slice(1, -1));
    }
    await write('PUT', 'listz', 'outside the prefix');
    await write('PUT', 'lis', 'outside the prefix');
    const seen: Page['items'] = [];
    let after: string | null = '';
    let pages = 0;
    while (after !== null) {
      const res = await fetch(
        `${url}/kv?prefix=list%2F&limit=4&after=${encodeURIComponent(after)}&consistent=true`,
      );
      expect(res.status).toBe(200);
      const page = (await res.json()) as Page;
      expect(page.items.length).toBeLessThanOrEqual(4);
      seen.push(...page.items);
      after = page.next;
      pages++;
    }
    expect(pages).toBe(3);
    expect(seen.map((i) => i.key)).toEqual(keys);
    for (const item of seen) {
      expect(Buffer.from(item.value, 'base64').toString()).toBe(`value of ${item.key}`);
      expect(item.version).toBe(versions.get(item.key));
    }
    const all = (await (await fetch(`${url}/kv?prefix=lis&limit=1000`)).json()) as Page;
    expect(all.items.map((i) => i.key)).toEqual(['lis', ...keys, 'listz']);
    expect(all.next).toBeNull();
    const none = (await (await fetch(`${url}/kv?prefix=nothing-here`)).json()) as Page;
    expect(none).toEqual({ items: [], next: null });
  });

  it('consistent=lease lists once this node is the master of every group', async () => {
    await waitFor('master of both groups', () => [0, 1].every((g) => server.paxos.isMaster(g)));
    const res = await fetch(`${url}/kv?prefix=list%2F0&consistent=lease`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as Page).items.map((i) => i.key)).toHaveLength(10);
  });
});
