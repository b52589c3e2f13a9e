// A follower (--follow-to) learns everything the voters chose, keeps following new writes, serves
// local reads, forwards writes and consistent reads to the master (it proposes nothing itself),
// and keeps learning when the node it follows dies.
import { afterAll, describe, expect, it } from 'vitest';
import {
  type Cluster,
  NodeProcess,
  put,
  startCluster,
  waitConverged,
  waitFor,
  writeKeys,
} from './helpers';

describe('a follower', () => {
  let cluster: Cluster | undefined;
  afterAll(async () => {
    await cluster?.stop();
  });

  it(
    'catches up, keeps following, and keeps learning when its node dies',
    { timeout: 120_000 },
    async () => {
      cluster = await startCluster({ voters: 3, followers: [{ followTo: 1 }], name: 'follower' });
      const [n1, n2, n3] = cluster.nodes as [NodeProcess, NodeProcess, NodeProcess];
      let follower = cluster.nodes[3]!;
      // The follower is down while the first 300 writes are chosen, then catches up.
      await cluster.nodes[3]!.kill('SIGKILL');
      await writeKeys(n1.httpUrl, 'f', 0, 300, 8);
      const restarted = new NodeProcess(4, cluster.nodes[3]!.args, cluster.nodes[3]!.httpUrl);
      cluster.nodes[3] = restarted;
      follower = restarted;
      restarted.start();
      await restarted.ready();
      let all = await waitConverged([n1, n2, n3, follower]);
      expect(all[3]!.isFollower).toBe(true);
      expect(all[3]!.instanceId).toBeGreaterThan(0);
      expect(all[3]!.learner.counters['valuesLearnedFromPeers']).toBeGreaterThan(0);

      // Keeps following: new writes reach it too.
      await writeKeys(n1.httpUrl, 'f', 300, 100, 4);
      all = await waitConverged([n1, n2, n3, follower]);
      const res = await fetch(`${follower.httpUrl}/kv/f399`);
      expect(await res.text()).toBe('v399');

      // A follower proposes nothing itself: writes and barriers go to the master it knows.
      await waitFor('the follower to know the master', async () => {
        return (await follower.group()).master !== null;
      });
      const forwarded = await put(follower.httpUrl, 'through-follower', 'x');
      expect(forwarded.status).toBe(200);
      expect(await (await fetch(`${follower.httpUrl}/kv/through-follower`)).text()).toBe('x');
      const consistent = await fetch(`${follower.httpUrl}/kv/f1?consistent=true`);
      expect(consistent.status).toBe(200);
      const barrier = await fetch(`${follower.httpUrl}/kv/f1?consistent=barrier`);
      expect(barrier.status).toBe(200);
      const lease = await fetch(`${follower.httpUrl}/kv/f1?consistent=lease`);
      expect(lease.status).toBe(200);
      const status = await follower.status();
      const counters = status.forwarding;
      expect(counters.proposalsForwarded).toBeGreaterThanOrEqual(2);
      expect(counters.readIndexesAsked).toBeGreaterThanOrEqual(1);
      // A quorum read from a non-voter: positions from a majority of the voters.
      expect(status.quorumReads.rounds).toBeGreaterThanOrEqual(1);

      // The node it follows dies; the others go on, and the follower learns from them.
      await n1.kill('SIGKILL');
      await writeKeys(n2.httpUrl, 'f', 400, 100, 4);
      const after = await waitConverged([n2, n3, follower]);
      expect(after[2]!.instanceId).toBeGreaterThan(all[0]!.instanceId);
      const last = await fetch(`${follower.httpUrl}/kv/f499`);
      expect(await last.text()).toBe('v499');
      await waitFor(
        'follower status has no task errors',
        async () => (await follower.status()).taskErrors.length === 0,
      );
    },
  );
});
