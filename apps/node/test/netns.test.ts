// Hosts, not only ports (issue 19): three nodes, each in its own network namespace with its own
// loopback and one veth into a bridge on a private subnet this test makes. Every node listens on
// the same ports (7101, 8101) of its own address, so none can lean on sharing 127.0.0.1 with
// another. Setting a namespace's link down is a partition: writes keep flowing through the
// majority, and the cut node catches up once its link is back.
// Needs root and iproute2; where they are missing the test says why and skips (on CI it fails).
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NodeProcess, tempDir, waitConverged, waitFor } from './helpers';
import { ip, netnsUnavailable, reportUnavailable } from './netns';

const TAG = randomBytes(2).toString('hex'); // several runs at once on one machine do not collide
const NODES = [1, 2, 3];
const PAXOS_PORT = 7101;
const HTTP_PORT = 8101;
const namespace = (id: number) => `tspx-${TAG}-${id}`;
const bridge = `tspxbr${TAG}`;
const hostVeth = (id: number) => `tspx${TAG}h${id}`;

/** A /24 under 10.213.0.0/16 that no interface here uses. */
function freeSubnet(): string {
  const used = ip('-4', '-o', 'addr');
  for (let tries = 0; tries < 50; tries++) {
    const octet = 1 + (randomBytes(1)[0]! % 254);
    if (!used.includes(`10.213.${octet}.`)) return `10.213.${octet}`;
  }
  throw new Error('no free 10.213.x.0/24 subnet');
}

const unavailable = netnsUnavailable(`tspx-${TAG}-probe`);
reportUnavailable('netns.test.ts', unavailable);

/** What this test made, deleted in afterAll whatever happened (a namespace takes its veth along). */
const made = { namespaces: [] as string[], bridge: false };
const nodes: NodeProcess[] = [];
let dataRoot: string | undefined;
afterAll(async () => {
  await Promise.all(nodes.map((n) => n.kill('SIGKILL')));
  const failures: string[] = [];
  for (const ns of made.namespaces) {
    try {
      ip('netns', 'del', ns);
    } catch (error) {
      failures.push(`netns ${ns}: ${(error as { stderr?: string }).stderr ?? String(error)}`);
    }
  }
  if (made.bridge) {
    try {
      ip('link', 'del', bridge);
    } catch (error) {
      failures.push(`bridge ${bridge}: ${(error as { stderr?: string }).stderr ?? String(error)}`);
    }
  }
  if (dataRoot) fs.rmSync(dataRoot, { recursive: true, force: true });
  const left = ip('netns', 'list')
    .split('\n')
    .filter((l) => l.includes(`tspx-${TAG}-`));
  expect({ failures, left }).toEqual({ failures: [], left: [] });
});

async function put(url: string, key: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/kv/${key}`, {
      method: 'PUT',
      body: `v-${key}`,
      signal: AbortSignal.timeout(15_000),
    });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false; // outcome unknown: not counted as acknowledged
  }
}

describe('three nodes in three network namespaces', () => {
  it.skipIf(unavailable !== undefined)(
    `replicate across hosts; a cut link is a partition the majority writes through${unavailable ? ` (skipped: ${unavailable})` : ''}`,
    async () => {
      const subnet = freeSubnet();
      const addr = (id: number) => `${subnet}.${id}`;
      ip('link', 'add', bridge, 'type', 'bridge');
      made.bridge = true;
      ip('addr', 'add', `${subnet}.254/24`, 'dev', bridge); // the test reaches the nodes here
      ip('link', 'set', bridge, 'up');
      for (const id of NODES) {
        const ns = namespace(id);
        ip('netns', 'add', ns);
        made.namespaces.push(ns);
        ip('-n', ns, 'link', 'set', 'lo', 'up');
        ip('link', 'add', hostVeth(id), 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
        ip('link', 'set', hostVeth(id), 'master', bridge);
        ip('link', 'set', hostVeth(id), 'up');
        ip('-n', ns, 'addr', 'add', `${addr(id)}/24`, 'dev', 'eth0');
        ip('-n', ns, 'link', 'set', 'eth0', 'up');
      }
      dataRoot = tempDir('netns');
      const cluster = NODES.map((i) => `${i}=${addr(i)}:${PAXOS_PORT}`).join(',');
      const httpPeers = NODES.map((i) => `${i}=${addr(i)}:${HTTP_PORT}`).join(',');
      for (const id of NODES) {
        nodes.push(
          new NodeProcess(
            id,
            [
              'node',
              '--id',
              String(id),
              '--cluster',
              cluster,
              '--http',
              `${addr(id)}:${HTTP_PORT}`,
              '--data',
              path.join(dataRoot, `node-${id}`),
              '--http-peers',
              httpPeers,
              '--master-lease-ms',
              '2000',
            ],
            `http://${addr(id)}:${HTTP_PORT}`,
            ['ip', 'netns', 'exec', namespace(id)],
          ),
        );
      }
      for (const n of nodes) n.start();
      await Promise.all(nodes.map((n) => n.ready()));
      const [n1, n2, n3] = nodes as [NodeProcess, NodeProcess, NodeProcess];
      // Each node's own view: its paxos address is its namespace's, not loopback.
      for (const n of nodes)
        expect((await n.status()).paxosAddress).toBe(`${addr(n.id)}:${PAXOS_PORT}`);

      const acked: string[] = [];
      const write = async (prefix: string, count: number) => {
        for (let i = 0; i < count; i++)
          if (await put(n1.httpUrl, `${prefix}${i}`)) acked.push(`${prefix}${i}`);
      };
      await write('before-', 50);
      expect(acked.length).toBe(50);
      await waitConverged(nodes, 90_000);

      const learnedBefore = (await n3.group()).learner.counters['valuesLearnedFromPeers'] ?? 0;
      // Cut node 3's link: it is unreachable from everyone, the test included.
      ip('-n', namespace(3), 'link', 'set', 'eth0', 'down');
      const cutAt = (await n1.group()).instanceId;
      await expect(
        fetch(`${n3.httpUrl}/status`, { signal: AbortSignal.timeout(2000) }),
      ).rejects.toThrow();
      const beforeCut = acked.length;
      await write('cut-', 100);
      const duringCut = acked.length - beforeCut;
      // The majority (nodes 1 and 2) kept choosing writes without node 3.
      expect(duringCut).toBeGreaterThanOrEqual(90);
      expect((await n2.group()).instanceId).toBeGreaterThanOrEqual(cutAt + duringCut);

      // Heal: node 3 catches up through the log and reads every write made while it was cut.
      ip('-n', namespace(3), 'link', 'set', 'eth0', 'up');
      await waitConverged(nodes, 120_000);
      const learnedAfter = (await n3.group()).learner.counters['valuesLearnedFromPeers'] ?? 0;
      // It has every instance chosen while it was cut: learned from a peer's stream, or (a short
      // cut) from the Accepts TCP retransmitted once the link was back (a clean-clone CI run
      // learned none from a stream: the connections outlived the cut).
      expect((await n3.group()).instanceId).toBeGreaterThanOrEqual(cutAt + duringCut);
      const missing: string[] = [];
      for (const key of acked) {
        const res = await fetch(`${n3.httpUrl}/kv/${key}`);
        if (res.status !== 200 || (await res.text()) !== `v-${key}`) missing.push(key);
      }
      expect(missing).toEqual([]);
      const statuses = await Promise.all(nodes.map((n) => n.status()));
      for (const s of statuses) expect(s.taskErrors).toEqual([]);
      console.log(
        `netns: ${acked.length} writes acknowledged (${duringCut} while node 3 was cut), node 3 learned ${learnedAfter - learnedBefore} values from peers after the heal`,
      );
      await waitFor(
        'node 3 serves a consistent read',
        async () => {
          const res = await fetch(`${n3.httpUrl}/kv/cut-0?consistent=true`);
          return res.status === 200;
        },
        60_000,
      );
    },
    600_000,
  );
});
