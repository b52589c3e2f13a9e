// The master SIGKILLed under writes sent to the survivors (issue 22). Writes that find no master
// this node can send to (the dead master's lease still live in its view, then the election) wait
// for the new master and are acknowledged, instead of 503 at once or a duel between the
// survivors; the 503 contract holds for a write still waiting when its node stops: it is
// answered 503 E_STOPPING and is never applied. 3 s lease, so the wait is long enough to stop a
// node inside it on a loaded machine. When the master dies with a renewal in flight, a survivor
// completes it and the dead master holds a whole lease again from then: two leases and the
// election (seen in ~1 of 10 loaded runs; the hold bound of 2 leases and 5 s answered 503 then).
import { afterAll, describe, expect, it } from 'vitest';
import type { NodeStatus } from '../src/status';
import { type Cluster, type NodeProcess, put, startCluster, waitFor } from './helpers';

const LEASE_MS = 3000;

describe('master SIGKILLed: writes wait for the next master', () => {
  let cluster: Cluster | undefined;
  afterAll(async () => {
    await cluster?.stop();
  });

  it(
    'holds the survivors’ writes until a master is elected (none 503); one held at a stop is 503 and never applied',
    { timeout: 300_000 },
    async () => {
      cluster = await startCluster({
        voters: 3,
        name: 'failover',
        extraArgs: () => ['--master-lease-ms', String(LEASE_MS)],
      });
      const nodes = cluster.nodes;
      const status = (n: NodeProcess): Promise<NodeStatus> => n.status();
      /** The node every live node names as master (its own lease self-held). */
      const agreedMaster = async (): Promise<NodeProcess | undefined> => {
        const live = nodes.filter((n) => n.running);
        const all = await Promise.all(live.map(status));
        const ids = new Set(all.map((s) => s.groups[0]!.master?.nodeId));
        if (ids.size !== 1) return undefined;
        const m = nodes.find((n) => n.id === [...ids][0]);
        return m?.running === true && all.some((s) => s.groups[0]!.master?.self) ? m : undefined;
      };
      const held = async (n: NodeProcess) => (await status(n)).masterWait.held;

      // 1. The master killed; writers on both survivors from that moment.
      const first = await waitFor('a master all agree on', agreedMaster, 60_000);
      expect((await put(first.httpUrl, 'warm', 'x')).status).toBe(200);
      await first.kill('SIGKILL');
      const survivors = nodes.filter((n) => n !== first);
      const answers: { key: string; status: number; code?: string }[] = [];
      await Promise.all(
        survivors.flatMap((n) =>
          [0, 1, 2, 3].map(async (w) => {
            // Each writer until it has 3 acknowledged writes (the first ones wait out the lease).
            for (let i = 0, oks = 0; oks < 3; i++) {
              const key = `s${n.id}-${w}-${i}`;
              const res = await put(n.httpUrl, key, 'v');
              const body = res.ok
                ? undefined
                : ((await res.json()) as { error: { code: string; message: string } });
              answers.push({ key, status: res.status, code: body?.error.message });
              if (res.ok) oks++;
              expect(i, `writer ${n.id}/${w}: ${JSON.stringify(answers.slice(-3))}`).toBeLessThan(
                50,
              );
            }
          }),
        ),
      );
      // No 503: a write waited for the master. A 504 is allowed for one forwarded to the old
      // master in the moment before its connection was seen broken (its outcome is unknown).
      expect(answers.filter((a) => a.status === 503)).toEqual([]);
      expect(answers.filter((a) => a.status !== 200 && a.status !== 504)).toEqual([]);
      expect(answers.filter((a) => a.status === 200).length).toBe(24);
      const heldAfterKill = (await Promise.all(survivors.map(held))).reduce((a, b) => a + b, 0);
      expect(heldAfterKill).toBeGreaterThanOrEqual(1);
      // Let go by a master, or by the wait's bound (then sent as before): never lost.
      const waits = (await Promise.all(survivors.map(status))).map((s) => s.masterWait);
      expect(waits.reduce((a, w) => a + w.released + w.boundReached, 0)).toBe(heldAfterKill);
      expect(waits.reduce((a, w) => a + w.released, 0)).toBeGreaterThanOrEqual(1);

      // 2. The killed node back; the new master killed; writes to the other survivor wait, and
      // that survivor is stopped while they do.
      first.start();
      await first.ready();
      const second = await waitFor('the next master all agree on', agreedMaster, 60_000);
      const other = survivors.find((n) => n !== second) ?? survivors[0]!;
      const heldBefore = await held(other);
      /** The survivor's transport has seen its link to the killed master break (so far). */
      const linkDrops = () =>
        other.lines.filter(
          (l) => l.includes('"msg":"peer-disconnected"') && l.includes(`"peer":${second.id}`),
        ).length;
      const dropsBefore = linkDrops();
      await second.kill('SIGKILL');
      // A write that arrives before the survivor saw the link break is forwarded (and answered
      // 504 or routed again), not held: send them once it has.
      await waitFor(
        'the survivor to see the master gone',
        () => linkDrops() > dropsBefore,
        30_000,
        10,
      );
      const stopped = ['stop-0', 'stop-1', 'stop-2'].map(async (key) => {
        const res = await put(other.httpUrl, key, 'v');
        return { key, status: res.status, body: await res.text() };
      });
      await waitFor(
        'the writes held on the survivor',
        async () => (await held(other)) >= heldBefore + 3,
        30_000,
        10,
      );
      await other.kill('SIGTERM');
      for (const r of await Promise.all(stopped)) {
        expect(r.status, r.body).toBe(503);
        expect(r.body).toContain('E_STOPPING');
      }
      // None of them is in the log: with all three back, a linearizable read on each misses it.
      second.start();
      other.start();
      await Promise.all([second.ready(), other.ready()]);
      await waitFor('a master after the restarts', agreedMaster, 60_000);
      for (const n of nodes)
        for (const key of ['stop-0', 'stop-1', 'stop-2']) {
          const res = await waitFor(`${key} read on node ${n.id}`, async () => {
            const r = await fetch(`${n.httpUrl}/kv/${key}?consistent=true`);
            return r.status === 503 ? undefined : r;
          });
          expect(res.status, `${key} on node ${n.id}`).toBe(404);
        }
      // And the acknowledged ones are there.
      for (const a of answers.filter((x) => x.status === 200)) {
        const res = await fetch(`${first.httpUrl}/kv/${a.key}?consistent=true`);
        expect(res.status, a.key).toBe(200);
      }
    },
  );
});
