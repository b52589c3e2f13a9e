// Issue 17 finding 1 scripted through the link proxies (test/jepsen/): node 3 stops hearing its
// peers; node 1 answers a `?consistent=barrier` read (a lone barrier, chosen at instance i) and a
// write (i+1); a barrier read through node 3, which still thinks i is next, must not be answered
// from instance i once the links heal: the barrier node 3 proposed is not the one chosen at i,
// even though the two have the same bytes. No master election, so no lease renewal takes an
// instance.
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from './helpers';
import { ProxiedCluster, statusOf } from './jepsen/cluster';

describe('a consistent read through a node that was cut off', () => {
  let cluster: ProxiedCluster | undefined;
  afterAll(async () => {
    await cluster?.close();
  });

  it('sees a write acknowledged before it began', { timeout: 120_000 }, async () => {
    cluster = await ProxiedCluster.create('barrier-cut', [1, 2, 3], ['--no-master-election']);
    await cluster.startAll();
    const url = (id: number) => cluster!.node(id).httpUrl;
    const put = async (id: number, value: string) => {
      const res = await fetch(`${url(id)}/kv/k`, { method: 'PUT', body: value });
      expect(res.status, await res.clone().text()).toBe(200);
      return Number(res.headers.get('x-tspaxos-instance-id'));
    };

    const first = await put(1, 'v0');
    await waitFor('node 3 has learned v0', async () => {
      return (await statusOf(url(3))).instanceId > first;
    });

    // Node 3 goes deaf: it can still send, it hears nothing.
    const inbound = [cluster.links.get(1, 3), cluster.links.get(2, 3)];
    for (const link of inbound) link.setCut(true);
    const barrier = await fetch(`${url(1)}/kv/k?consistent=barrier`);
    expect(await barrier.text()).toBe('v0');
    const barrierAt = Number(barrier.headers.get('x-tspaxos-instance-id'));
    const written = await put(1, 'v1');
    expect(written).toBe(barrierAt + 1);
    expect((await statusOf(url(3))).instanceId).toBe(barrierAt); // it missed both

    // The read through node 3: its barrier goes out (counted by the proxies), then the links heal.
    const sentBefore = cluster.links.get(3, 1).counters.bytesForwarded;
    const read = fetch(`${url(3)}/kv/k?consistent=barrier`);
    await waitFor('node 3 proposing', () => {
      return cluster!.links.get(3, 1).counters.bytesForwarded > sentBefore;
    });
    for (const link of inbound) link.setCut(false);
    const res = await read;
    const value = await res.text();
    const at = Number(res.headers.get('x-tspaxos-instance-id'));
    expect(res.status).toBe(200);
    expect({ value, at }).toEqual({ value: 'v1', at: expect.any(Number) as number });
    expect(at, `barrier answered at ${at}, the write was at ${written}`).toBeGreaterThan(written);
    // The cut was real: node 1's open link into node 3 (it had sent v0 there) was cut. Node 2's
    // may have had nothing to carry meanwhile (it only answers node 1), so it is not required.
    const fromProposer = cluster.links.get(1, 3).counters;
    expect(fromProposer.connectionsCut + fromProposer.connectionsRefused).toBeGreaterThan(0);
  });
});
