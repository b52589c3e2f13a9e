// Issue 18's exactly-once test: every write goes in through node 1 with an Idempotency-Key, its
// reply is cut on the way back (the link proxy of test/jepsen/ in front of node 1's HTTP API,
// `cutReplies`: the node has applied the write, the client saw a connection cut), and the client
// retries it through another node. Each retry must answer the first outcome, marked replayed,
// and the state machines' own history must show one application per write: the applied-op and
// replay counters of every node, and each key's version (the instance of its last write) equal
// to the first outcome's. Then the same write sent to all three nodes at once: one applies.
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { startCluster, waitConverged, writeKeys, type Cluster } from './helpers';
import { LinkProxy } from './jepsen/proxy';

/** Writes without a key before the test, so that a master holds a lease when it starts. */
const WARM_WRITES = 8;

const WRITES = 24;
const RACES = 8;
const GROUPS = 2;

interface Answer {
  status: number;
  replayed: boolean;
  instanceId: number;
  etag: string | null;
}

async function putOnce(base: string, key: string, value: string, idempotencyKey: string) {
  const res = await fetch(`${base}/kv/${encodeURIComponent(key)}`, {
    method: 'PUT',
    headers: { 'idempotency-key': idempotencyKey },
    body: value,
  });
  await res.arrayBuffer();
  return {
    status: res.status,
    replayed: res.headers.get('idempotent-replayed') === 'true',
    instanceId: Number(res.headers.get('x-tspaxos-instance-id')),
    etag: res.headers.get('etag'),
  } satisfies Answer;
}

describe('a write retried through another node after its reply was cut', () => {
  let cluster: Cluster | undefined;
  let proxy: LinkProxy | undefined;
  afterAll(async () => {
    await proxy?.close();
    await cluster?.stop();
  });

  it('is applied exactly once', { timeout: 180_000 }, async () => {
    cluster = await startCluster({ voters: 3, groups: GROUPS, name: 'exactly-once' });
    const nodes = cluster.nodes;
    proxy = new LinkProxy(0, 1, { host: '127.0.0.1', port: cluster.httpPorts[0]! });
    const proxied = `http://127.0.0.1:${await proxy.start()}`;
    proxy.cutReplies = true;

    // A master first: while an election settles, a write can be answered 503 (not applied), and
    // then its cut reply would hide a write that never happened.
    await writeKeys(nodes[0]!.httpUrl, 'warm', 0, WARM_WRITES, 2);

    let cut = 0;
    let refused = 0;
    const retries: Answer[] = [];
    for (let i = 0; i < WRITES; i++) {
      const key = `once/${i}`;
      const idempotencyKey = randomUUID();
      try {
        const answered = await putOnce(proxied, key, `v${i}`, idempotencyKey);
        throw new Error(`the reply to write ${i} was not cut: ${JSON.stringify(answered)}`);
      } catch (error) {
        if (!(error instanceof TypeError)) throw error; // fetch failed: the connection was cut
        cut++;
      }
      // Through another node (2 or 3), as a client behind a round-robin would.
      // A 503 is "not applied": retried with the same key, as a client would.
      for (;;) {
        const answer = await putOnce(nodes[1 + (i % 2)]!.httpUrl, key, `v${i}`, idempotencyKey);
        if (answer.status !== 503) {
          retries.push(answer);
          break;
        }
        refused++;
        if (refused > 100) throw new Error(`write ${i}: 503 on 100 retries`);
      }
    }
    expect(cut).toBe(WRITES);
    expect(proxy.counters.repliesCut).toBe(WRITES);
    expect(retries.map((r) => r.status)).toEqual(Array(WRITES).fill(200));
    expect(retries.filter((r) => r.replayed)).toHaveLength(WRITES);

    // The same write to every node at once: one application, the other two replay it.
    const races: Answer[][] = [];
    for (let i = 0; i < RACES; i++) {
      const idempotencyKey = randomUUID();
      races.push(
        await Promise.all(
          nodes.map((n) => putOnce(n.httpUrl, `race/${i}`, `r${i}`, idempotencyKey)),
        ),
      );
    }
    for (const answers of races) {
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
      expect(answers.filter((a) => !a.replayed)).toHaveLength(1);
      expect(new Set(answers.map((a) => a.instanceId)).size).toBe(1);
      expect(new Set(answers.map((a) => a.etag)).size).toBe(1);
    }

    // Every node applied each write once and replayed each retry: the state machines' history.
    await waitConverged(nodes);
    for (const node of nodes) {
      const groups = (await node.status()).groups;
      const sum = (f: (c: (typeof groups)[0]['kv']['counters']) => number) =>
        groups.reduce((n, g) => n + f(g.kv.counters), 0);
      expect(
        sum((c) => c.appliedOps),
        `node ${node.id}`,
      ).toBe(WARM_WRITES + WRITES + RACES);
      expect(
        sum((c) => c.idempotentReplays),
        `node ${node.id}`,
      ).toBe(WRITES + 2 * RACES);
      expect(groups.reduce((n, g) => n + g.kv.idempotencyKeys, 0)).toBe(WRITES + RACES);
    }
    // Each key's version is still the first outcome's instance: nothing wrote it again.
    for (let i = 0; i < WRITES; i++) {
      const res = await fetch(`${nodes[i % 3]!.httpUrl}/kv/once%2F${i}?consistent=true`);
      expect(await res.text()).toBe(`v${i}`);
      expect(res.headers.get('etag')).toBe(`"${retries[i]!.instanceId}"`);
    }
  });
});
