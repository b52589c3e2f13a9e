// Fail fast without a quorum, across real processes: with two of three nodes SIGKILLed, the
// survivor's transport knows its connections to them broke, so a write and a consistent read
// answer 503 E_NO_QUORUM at once (nothing proposed) instead of a 504 after the 10 s proposal
// timeout, and /status says quorum: false; a restarted node brings the quorum and the writes back.
import { afterAll, describe, expect, it } from 'vitest';
import { type Cluster, NodeProcess, put, startCluster, unless503, waitFor } from './helpers';

/** What "at once" means here: well under the 10 s proposal timeout, on a loaded machine. */
const FAST_MS = 1500;

describe('no quorum', () => {
  let cluster: Cluster | undefined;
  afterAll(async () => {
    await cluster?.stop();
  });

  it(
    'answers 503 E_NO_QUORUM at once when a majority is down, and says so in /status',
    {
      timeout: 180_000,
    },
    async () => {
      cluster = await startCluster({
        voters: 3,
        name: 'no-quorum',
        extraArgs: () => ['--master-lease-ms', '2000'],
      });
      const [n1, n2, n3] = cluster.nodes as [NodeProcess, NodeProcess, NodeProcess];
      const ok = await waitFor('a write through node 1', async () => {
        const res = await put(n1.httpUrl, 'k', 'before');
        return res.ok ? res : undefined;
      });
      expect(ok.status).toBe(200);
      expect((await n1.group()).quorum).toBe(true);

      await n2.kill('SIGKILL');
      await n3.kill('SIGKILL');
      // The broken connections are noticed at the next send to them (the lease renewals, the
      // learner's asks): within a moment.
      await waitFor('node 1 to see no quorum', async () => !(await n1.group()).quorum);
      const beforeStatus = await n1.status();
      const before = beforeStatus.forwarding.noQuorum;
      const beforeReads = beforeStatus.quorumReads.noQuorum;

      const t0 = performance.now();
      const write = await put(n1.httpUrl, 'lost', 'after');
      const writeMs = performance.now() - t0;
      expect(write.status).toBe(503);
      expect(await write.json()).toMatchObject({ error: { code: 'E_NO_QUORUM' } });
      expect(write.headers.get('retry-after')).not.toBeNull();
      expect(writeMs).toBeLessThan(FAST_MS);

      const t1 = performance.now();
      const read = await fetch(`${n1.httpUrl}/kv/k?consistent=true`);
      const readMs = performance.now() - t1;
      expect(read.status).toBe(503);
      expect(await read.json()).toMatchObject({ error: { code: 'E_NO_QUORUM' } });
      expect(readMs).toBeLessThan(FAST_MS);
      // Counted where each was refused: nothing reached the proposer, no round was started.
      const after = await n1.status();
      expect(after.forwarding.noQuorum).toBe(before + 1);
      expect(after.quorumReads.noQuorum).toBe(beforeReads + 1);
      // The local state still answers plain reads.
      expect(await (await fetch(`${n1.httpUrl}/kv/k`)).text()).toBe('before');

      // A node comes back: the quorum, and the writes, follow.
      const back = new NodeProcess(2, n2.args, n2.httpUrl);
      cluster.nodes[1] = back;
      back.start();
      await back.ready();
      const again = await waitFor(
        'a write once node 2 is back',
        async () => {
          const res = await put(n1.httpUrl, 'k', 'again');
          return res.ok ? res : undefined;
        },
        60_000,
        200,
      );
      expect(again.status).toBe(200);
      expect((await n1.group()).quorum).toBe(true);
      // The write refused 503 was never applied, on any node.
      for (const n of [n1, back]) {
        const lost = await unless503(
          () => fetch(`${n.httpUrl}/kv/lost?consistent=true`),
          `a consistent read through node ${n.id}`,
        );
        expect(lost.status).toBe(404);
      }
    },
  );
});
