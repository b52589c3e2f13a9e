// Membership changes of running processes (issue 19): POST/GET /admin/members, `--join`, and the
// transport following the membership. A 3-node cluster grows to 5 while writing (node 4 joins
// as a follower and is promoted, node 5 joins as a voter), the three old nodes are removed, and
// every acknowledged write reads back from the new members; the removed nodes stop receiving.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { MembersView } from '../src/membership';
import {
  CLI,
  type Cluster,
  NodeProcess,
  startCluster,
  tempDir,
  waitConverged,
  waitFor,
  writeKeys,
} from './helpers';

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function members(url: string): Promise<MembersView> {
  const res = await fetch(`${url}/admin/members`);
  if (!res.ok) throw new Error(`GET /admin/members: ${res.status}`);
  return (await res.json()) as MembersView;
}

async function change(
  url: string,
  body: unknown,
): Promise<{ status: number; json: MembersView & { error?: { code: string } } }> {
  const res = await fetch(`${url}/admin/members`, {
    method: 'POST',
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return {
    status: res.status,
    json: (await res.json()) as MembersView & { error?: { code: string } },
  };
}

/** At the end, every node's log lines under test-output/<name>/, for reading a failure. */
function saveLogs(name: string, nodes: () => readonly NodeProcess[]): void {
  cleanups.push(async () => {
    const dir = path.join(import.meta.dirname, '..', 'test-output', name);
    fs.mkdirSync(dir, { recursive: true });
    for (const n of nodes())
      fs.writeFileSync(path.join(dir, `node-${n.id}.log`), n.lines.join('\n'));
  });
}

/** Every node's GET /status under test-output/<name>/, for reading a failure. */
async function saveStatus(name: string, nodes: readonly NodeProcess[]): Promise<void> {
  const dir = path.join(import.meta.dirname, '..', 'test-output', name);
  fs.mkdirSync(dir, { recursive: true });
  for (const n of nodes) {
    const res = await fetch(`${n.httpUrl}/status`);
    fs.writeFileSync(path.join(dir, `status-${n.id}.json`), await res.text());
  }
}

/** A node that joins through `joinUrl`, on ports the OS picks. */
function joiner(
  id: number,
  joinUrl: string,
  as: 'voter' | 'follower',
  dataRoot: string,
  groups: number,
  extra: string[] = [],
) {
  return new NodeProcess(
    id,
    [
      'node',
      '--id',
      String(id),
      '--join',
      joinUrl,
      '--join-as',
      as,
      '--listen',
      '127.0.0.1:0',
      '--http',
      '127.0.0.1:0',
      '--data',
      path.join(dataRoot, `node-${id}`),
      '--groups',
      String(groups),
      ...extra,
    ],
    '',
  );
}

function runCli(args: string[]): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stderr: r.stderr };
}

describe('membership changes', () => {
  it.each([
    [
      ['--cluster', '1=127.0.0.1:7101', '--join', 'http://127.0.0.1:8101'],
      /either --cluster .* or --join/,
    ],
    [[], /either --cluster .* or --join/],
    [['--join', 'http://127.0.0.1:8101'], /--join needs --listen/],
    [['--join', 'http://127.0.0.1:8101/admin', '--listen', '127.0.0.1:0'], /origin only/],
    [['--join', '127.0.0.1:8101', '--listen', '0.0.0.0:7101'], /not 0\.0\.0\.0/],
    [['--join', '127.0.0.1:8101', '--listen', '127.0.0.1:0', '--join-as', 'king'], /join-as/],
  ])('--join flags %j: one line, exit 2', (flags, message) => {
    const r = runCli(['node', '--id', '4', '--http', '127.0.0.1:0', '--data', 'unused', ...flags]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('a join under an id listed at other addresses stops with one line, exit 1', async () => {
    const cluster = await startCluster({ voters: 1, name: 'members-join-id' });
    cleanups.push(() => cluster.stop());
    const data = tempDir('members-join-id');
    cleanups.push(async () => fs.rmSync(data, { recursive: true, force: true }));
    const r = runCli([
      'node',
      '--id',
      '1',
      '--join',
      cluster.nodes[0]!.httpUrl,
      '--listen',
      '127.0.0.1:0',
      '--http',
      '127.0.0.1:0',
      '--data',
      data,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/node 1 is listed at 127\.0\.0\.1:\d+ .* use another --id/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect((await members(cluster.nodes[0]!.httpUrl)).version).toBe(0);
  }, 180_000);

  it('refuses bad requests with a code each and changes nothing', async () => {
    const cluster = await startCluster({ voters: 1, name: 'members-bad' });
    cleanups.push(() => cluster.stop());
    const url = cluster.nodes[0]!.httpUrl;
    const add = { action: 'add', role: 'follower', peer: '127.0.0.1:7999', http: '127.0.0.1:8999' };
    const cases: [unknown, number, string][] = [
      [{ action: 'remove', nodeId: 1 }, 400, 'E_LAST_VOTER'],
      [{ action: 'remove', nodeId: 99 }, 400, 'E_UNKNOWN_MEMBER'],
      [{ action: 'promote', nodeId: 99 }, 400, 'E_UNKNOWN_MEMBER'],
      [{ action: 'promote', nodeId: 1 }, 400, 'E_NOT_FOLLOWER'],
      [{ ...add, nodeId: 1 }, 400, 'E_MEMBER_EXISTS'],
      [{ ...add, nodeId: 5, peer: 'nohost' }, 400, 'E_BAD_ADDRESS'],
      [{ ...add, nodeId: 5, peer: '127.0.0.1:0' }, 400, 'E_BAD_ADDRESS'],
      [{ ...add, nodeId: 5, peer: '127.0.0.1:70000' }, 400, 'E_BAD_ADDRESS'],
      [{ ...add, nodeId: 5, http: 'http://127.0.0.1:8999/path' }, 400, 'E_BAD_ADDRESS'],
      [{ ...add, nodeId: 5, http: undefined }, 400, 'E_BAD_ADDRESS'],
      [{ ...add, nodeId: 0 }, 400, 'E_BAD_NODE_ID'],
      [{ ...add, nodeId: 1.5 }, 400, 'E_BAD_NODE_ID'],
      [{ ...add, nodeId: '5' }, 400, 'E_BAD_NODE_ID'],
      [{ ...add, nodeId: 5, role: 'king' }, 400, 'E_BAD_REQUEST'],
      [{ ...add, nodeId: 5, extra: 1 }, 400, 'E_BAD_REQUEST'],
      [{ action: 'grow', nodeId: 5 }, 400, 'E_BAD_REQUEST'],
      ['{"action":', 400, 'E_BAD_REQUEST'],
      ['[1]', 400, 'E_BAD_REQUEST'],
      ['', 400, 'E_BAD_REQUEST'],
    ];
    for (const [body, status, code] of cases) {
      const r = await change(url, body);
      expect({ body, status: r.status, code: r.json.error?.code }).toEqual({ body, status, code });
    }
    const query = await fetch(`${url}/admin/members?x=1`);
    expect(query.status).toBe(400);
    const wrong = await fetch(`${url}/admin/members`, { method: 'DELETE' });
    expect(wrong.status).toBe(405);
    let view = await members(url);
    expect(view.version).toBe(0);
    expect(view.counters.changesProposed).toBe(0);
    // The ones refused against the current membership went through the change queue, counted.
    expect(view.counters.changesFailed).toEqual({
      E_LAST_VOTER: 1,
      E_UNKNOWN_MEMBER: 2,
      E_NOT_FOLLOWER: 1,
      E_MEMBER_EXISTS: 1,
    });
    expect(view.nodes).toEqual([
      {
        nodeId: 1,
        role: 'voter',
        peer: `127.0.0.1:${cluster.paxosPorts[0]}`,
        http: url,
        self: true,
      },
    ]);
    // A good one goes through the log: a follower is listed, removed again.
    expect((await change(url, { ...add, nodeId: 5 })).status).toBe(200);
    view = await members(url);
    expect(view.version).toBe(1);
    expect(view.nodes.map((n) => [n.nodeId, n.role])).toEqual([
      [1, 'voter'],
      [5, 'follower'],
    ]);
    expect((await change(url, { ...add, nodeId: 5 })).json.error?.code).toBe('E_MEMBER_EXISTS');
    expect((await change(url, { action: 'remove', nodeId: 5 })).status).toBe(200);
    view = await members(url);
    expect(view.version).toBe(2);
    expect(view.nodes.map((n) => n.nodeId)).toEqual([1]);
  }, 120_000);

  // With a master, the change reads the membership through its read index; without one
  // (--no-master-election) node 5 waits until it has learned the change that added it.
  it.each([
    ['with a master', []],
    ['with no master election', ['--no-master-election']],
  ])(
    'a change sent to a voter that just joined is applied (%s)',
    async (_, extra: string[]) => {
      const groups = 2;
      const cluster: Cluster = await startCluster({
        voters: 3,
        groups,
        name: 'members-fresh',
        extraArgs: () => extra,
      });
      cleanups.push(() => cluster.stop());
      const joinRoot = tempDir('members-fresh-join');
      const [n1] = cluster.nodes as [NodeProcess];
      await writeKeys(n1.httpUrl, 'f', 0, 100, 4);
      // Node 4 joins as a follower first: a membership without node 5 that node 5 will learn.
      const n4 = joiner(4, n1.httpUrl, 'follower', joinRoot, groups, extra);
      const n5 = joiner(5, n1.httpUrl, 'voter', joinRoot, groups, extra);
      cleanups.push(async () => {
        await Promise.all([n4.kill('SIGTERM'), n5.kill('SIGTERM')]);
        fs.rmSync(joinRoot, { recursive: true, force: true });
      });
      const name = extra.length > 0 ? 'no-master' : 'master';
      saveLogs(`members-fresh-${name}`, () => [...cluster.nodes, n4, n5]);
      n4.start();
      await n4.ready();
      await waitFor('node 4 logged joined', () => n4.json().some((l) => l['msg'] === 'joined'));
      n5.start();
      await n5.ready();
      await waitFor(
        'node 5 a voter in every group, as node 1 sees it',
        async () => {
          const v = await members(n1.httpUrl);
          return v.consistent && v.groups.every((g) => g.voters.includes(5));
        },
        60_000,
      );
      // At once, as an operator would: node 5 may not have learned every group's change yet.
      const r = await change(n5.httpUrl, { action: 'remove', nodeId: 3 });
      console.log(`members, fresh voter: ${r.status}, counters ${JSON.stringify(r.json.counters)}`);
      if (r.status !== 200) await saveStatus(`members-fresh-${name}`, [...cluster.nodes, n4, n5]);
      expect({ status: r.status, error: r.json.error }).toEqual({ status: 200, error: undefined });
      expect(r.json.groups.map((g) => g.voters)).toEqual([
        [1, 2, 5],
        [1, 2, 5],
      ]);
    },
    300_000,
  );

  it('grows 3 -> 5 while writing, removes the old nodes; nothing acknowledged is lost', async () => {
    const groups = 2;
    const joined: NodeProcess[] = [];
    const cluster: Cluster = await startCluster({
      voters: 3,
      groups,
      name: 'members-grow',
      extraArgs: () => ['--master-lease-ms', '2000'],
    });
    cleanups.push(() => cluster.stop());
    saveLogs('members', () => [...cluster.nodes, ...joined]);
    const joinRoot = tempDir('members-join');
    cleanups.push(async () => {
      await Promise.all(joined.map((n) => n.kill('SIGTERM')));
      fs.rmSync(joinRoot, { recursive: true, force: true });
    });
    const [n1, n2, n3] = cluster.nodes as [NodeProcess, NodeProcess, NodeProcess];

    // Writers: unique keys through whichever node `target` names now; only 200s count.
    let target = n1.httpUrl;
    let writing = true;
    let next = 0;
    const acked: string[] = [];
    const refused: Record<string, number> = {};
    const writers = Array.from({ length: 2 }, async () => {
      while (writing) {
        const key = `m${next++}`;
        try {
          const res = await fetch(`${target}/kv/${key}`, { method: 'PUT', body: `v-${key}` });
          if (res.ok) acked.push(key);
          else refused[res.status] = (refused[res.status] ?? 0) + 1;
          await res.arrayBuffer();
        } catch {
          refused['conn'] = (refused['conn'] ?? 0) + 1;
        }
      }
    });
    const ackedAtLeast = (n: number) =>
      waitFor(
        `${n} acknowledged writes`,
        () => {
          if (acked.length >= n) return true;
          throw new Error(`${acked.length} acknowledged, refused ${JSON.stringify(refused)}`);
        },
        120_000,
      );

    await ackedAtLeast(50);
    // Node 4 joins through node 1 as a follower: it registers the ports it bound itself.
    const n4 = joiner(4, n1.httpUrl, 'follower', joinRoot, groups);
    joined.push(n4);
    n4.start();
    await n4.ready();
    await waitFor(
      'node 4 listed as a follower',
      async () =>
        (await members(n2.httpUrl)).nodes.some((n) => n.nodeId === 4 && n.role === 'follower'),
      60_000,
    );
    await waitFor('node 4 logged joined', () => n4.json().some((l) => l['msg'] === 'joined'));
    await ackedAtLeast(acked.length + 50);
    // Node 5 joins through node 2 as a voter.
    const n5 = joiner(5, n2.httpUrl, 'voter', joinRoot, groups);
    joined.push(n5);
    n5.start();
    await n5.ready();
    await waitFor(
      'node 5 a voter in every group',
      async () => {
        const v = await members(n3.httpUrl);
        return v.consistent && v.groups.every((g) => g.voters.includes(5));
      },
      60_000,
    );
    // Promote node 4 through node 3.
    const promoted = await change(n3.httpUrl, { action: 'promote', nodeId: 4 });
    expect({ status: promoted.status, error: promoted.json.error }).toEqual({
      status: 200,
      error: undefined,
    });
    expect(promoted.json.groups.map((g) => g.voters)).toEqual([
      [1, 2, 3, 4, 5],
      [1, 2, 3, 4, 5],
    ]);
    // The new voters catch up and take writes and consistent reads.
    await waitFor(
      'node 4 and 5 serve consistent reads',
      async () => {
        for (const n of [n4, n5]) {
          // The first write acknowledged (m0 itself may have been refused 503 in an election).
          const key = acked[0]!;
          const res = await fetch(`${n.httpUrl}/kv/${key}?consistent=true`);
          const body = await res.text();
          if (res.status !== 200 || body !== `v-${key}`)
            throw new Error(`node ${n.id} answered ${res.status} ${body}`);
        }
        return true;
      },
      90_000,
    );
    target = n4.httpUrl;
    await ackedAtLeast(acked.length + 50);
    // Remove the old nodes, one at a time, through node 5.
    for (const old of [1, 2, 3]) {
      const r = await change(n5.httpUrl, { action: 'remove', nodeId: old });
      expect({ old, status: r.status, error: r.json.error }).toEqual({
        old,
        status: 200,
        error: undefined,
      });
    }
    await ackedAtLeast(acked.length + 50);

    // The removed nodes hear of it (within the grace) and go quiet; the others forget them.
    await waitFor(
      'nodes 1-3 know they were removed',
      async () => {
        const views = await Promise.all([n1, n2, n3].map((n) => members(n.httpUrl)));
        return views.every((v) => v.removed);
      },
      90_000,
    );
    await waitFor(
      'nodes 4 and 5 forgot nodes 1-3',
      async () => {
        const views = await Promise.all([n4, n5].map((n) => members(n.httpUrl)));
        return views.every((v) => v.counters.peersRemoved >= 3 && v.consistent);
      },
      60_000,
    );
    const framesBefore = await Promise.all(
      [n1, n2, n3].map(async (n) => (await n.status()).network.framesReceived),
    );
    const ackedBefore = acked.length;
    await ackedAtLeast(ackedBefore + 100);
    writing = false;
    await Promise.all(writers);
    const framesAfter = await Promise.all(
      [n1, n2, n3].map(async (n) => (await n.status()).network.framesReceived),
    );
    expect(framesAfter).toEqual(framesBefore);

    // Every acknowledged write reads back from both new members.
    const final = await members(n4.httpUrl);
    expect(final.groups.map((g) => g.voters)).toEqual([
      [4, 5],
      [4, 5],
    ]);
    expect(final.nodes.map((n) => [n.nodeId, n.role])).toEqual([
      [4, 'voter'],
      [5, 'voter'],
    ]);
    // add 4, add 5, promote 4, remove 1, 2, 3: one version each, in every group.
    expect(final.groups.map((g) => g.version)).toEqual([6, 6]);
    await waitConverged([n4, n5], 90_000);
    for (const n of [n4, n5]) {
      const missing: string[] = [];
      for (const key of acked) {
        const res = await fetch(`${n.httpUrl}/kv/${key}`);
        if (res.status !== 200 || (await res.text()) !== `v-${key}`) missing.push(key);
      }
      expect({ node: n.id, missing }).toEqual({ node: n.id, missing: [] });
    }
    // A picture of the run for the log (counts only; refusals while the membership moved).
    console.log(
      `members: ${acked.length} writes acknowledged, refused ${JSON.stringify(refused)}, frames at the removed nodes ${framesBefore.join('/')}`,
    );
    for (const n of [...cluster.nodes, n4, n5]) {
      expect((await n.status()).taskErrors).toEqual([]);
    }
  }, 600_000);
});
