// MembershipSync against a scripted paxos node: a change made on a node whose groups learned the
// membership in different orders. Found by test/members.test.ts (1 run in ~20 under load): a node
// that just joined as a voter had learned its addition in group 1 but not yet in group 0, got a
// change, and "finished" the change it saw half-way by copying its older group-0 membership into
// group 1, which removed itself from group 1 for good.
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { decodeMeta, encodeMeta, type NodeAddresses, sourceOfMeta } from './members';
import { MembershipSync } from './membership';
import { SELF_MEMBERSHIP_WAIT_MS } from './options';
import { PaxosError } from './stack';

interface Vars {
  version: number;
  members: number[];
  meta?: string;
}

const at = (n: number): NodeAddresses => ({ peer: `127.0.0.1:${9000 + n}`, http: null });
const nodes = (...ids: number[]) => new Map(ids.map((id) => [id, at(id)]));

/**
 * A paxos node of `groups` groups as MembershipSync sees it: no master (readIndex refuses), a
 * change applies against the version held here (as the system machine does), and learnNow(g)
 * hands group g the next membership queued for it in `unlearned` (what the peers chose).
 */
function scripted(selfId: number, held: Vars[], unlearned: Vars[][]) {
  const proposals: { group: number; members: number[]; source: number | undefined }[] = [];
  const learnAsks: number[] = [];
  const paxos = {
    membership: (g: number) => ({ ...held[g]! }),
    readIndex: () => Promise.reject(new PaxosError('E_NOT_MASTER', 'no master')),
    learnNow: (g: number) => {
      learnAsks.push(g);
      const next = unlearned[g]!.shift();
      if (next !== undefined) held[g] = next;
      return true;
    },
    changeMembership: (g: number, members: number[], _timeoutMs: number, meta: string) => {
      proposals.push({ group: g, members: [...members], source: sourceOfMeta(meta) });
      if (!held[g]!.members.includes(selfId))
        return Promise.reject(new PaxosError('E_NOT_MEMBER', `not a member of group ${g}`));
      held[g] = { version: held[g]!.version + 1, members: [...members], meta };
      return Promise.resolve({
        instanceId: 0,
        result: { applied: true, version: held[g]!.version },
      });
    },
    status: () => ({
      members: [],
      membershipVersion: 0,
      learner: {
        instanceId: 0,
        highestSeenInstanceId: 0,
        highestSeenFromNodeId: 0,
        isLearning: false,
        counters: {},
      },
    }),
  };
  const sync = new MembershipSync({
    nodeId: selfId,
    groups: held.length,
    paxos: paxos as never,
    network: { addPeer: () => undefined, removePeer: () => undefined } as never,
    log: pino({ level: 'silent' }),
    isStopping: () => false,
    fallback: (id) => at(id),
    unlistedAtStart: true,
    initialPeers: new Map(),
    trackProposal: (p) => p,
    onNodes: () => undefined,
  });
  return { sync, held, proposals, learnAsks };
}

/** Group 0's membership version v as every node wrote it (meta source v). */
const g0 = (version: number, members: number[], ids: number[]): Vars => ({
  version,
  members,
  meta: encodeMeta(nodes(...ids), version),
});

afterEach(() => {
  vi.useRealTimers();
});

describe('MembershipSync: groups learned in different orders', () => {
  // Node 5 was added as a voter (group 0 version 2, copied into group 1 as its version 2). Here
  // it has learned that in group 1 but not in group 0 yet.
  const addedFive = g0(2, [1, 2, 3, 5], [1, 2, 3, 4, 5]);
  const beforeFive = g0(1, [1, 2, 3], [1, 2, 3, 4]);
  const groupOneWithFive: Vars = { ...addedFive, version: 2 };

  it('never copies an older group-0 membership over a newer copy: it learns group 0 first', async () => {
    const { sync, held, proposals, learnAsks } = scripted(
      5,
      [beforeFive, groupOneWithFive],
      [[addedFive], []],
    );
    const view = await sync.change({ action: 'remove', nodeId: 3 });
    // Nothing proposed into group 1 but the new membership, and node 5 a voter in both groups.
    expect(proposals).toEqual([
      { group: 0, members: [1, 2, 5], source: 3 },
      { group: 1, members: [1, 2, 5], source: 3 },
    ]);
    expect(learnAsks).toEqual([0]);
    expect(view.groups.map((g) => g.voters)).toEqual([
      [1, 2, 5],
      [1, 2, 5],
    ]);
    expect(view.consistent).toBe(true);
    expect(view.counters.groupZeroWaits).toBe(1);
    expect(held[1]!.version).toBe(3);
  });

  it('refuses with 503 and changes nothing when group 0 is not learned in time', async () => {
    vi.useFakeTimers();
    const { sync, held, proposals, learnAsks } = scripted(
      5,
      [beforeFive, groupOneWithFive],
      [[], []],
    );
    const change = sync.change({ action: 'remove', nodeId: 3 });
    const failed = expect(change).rejects.toMatchObject({
      code: 'E_UNAVAILABLE',
      message: expect.stringContaining("group 1 here already has group 0's membership version 2"),
    });
    await vi.advanceTimersByTimeAsync(SELF_MEMBERSHIP_WAIT_MS + 1000);
    await failed;
    expect(proposals).toEqual([]);
    expect(learnAsks.length).toBeGreaterThan(10); // it kept asking
    expect(held.map((v) => v.version)).toEqual([1, 2]);
    expect(sync.view().counters.changesFailed).toEqual({ E_UNAVAILABLE: 1 });
  });

  it('still finishes a change left half-way: group 1 behind group 0 is brought to it', async () => {
    // On node 1: the change that added node 5 reached group 0 only (a timeout in group 1).
    const { sync, proposals, learnAsks } = scripted(1, [addedFive, beforeFive], [[], []]);
    const view = await sync.change({ action: 'remove', nodeId: 4 });
    expect(proposals).toEqual([
      { group: 1, members: [1, 2, 3, 5], source: 2 }, // the half-way change, finished
      { group: 0, members: [1, 2, 3, 5], source: 3 },
      { group: 1, members: [1, 2, 3, 5], source: 3 },
    ]);
    expect(learnAsks).toEqual([]);
    expect(view.consistent).toBe(true);
    expect(view.nodes.map((n) => n.nodeId)).toEqual([1, 2, 3, 5]);
  });

  it('takes a membership written by an older server (no source) as before', async () => {
    const legacy = (v: Vars): Vars => ({ ...v, meta: encodeMeta(nodes(...[1, 2, 3, 4, 5])) });
    const { sync, proposals } = scripted(5, [legacy(addedFive), legacy(addedFive)], [[], []]);
    const view = await sync.change({ action: 'remove', nodeId: 3 });
    expect(proposals).toEqual([
      { group: 0, members: [1, 2, 5], source: 3 },
      { group: 1, members: [1, 2, 5], source: 3 },
    ]);
    expect(view.consistent).toBe(true);
  });

  it('reads a source only from a well-formed meta of its format', () => {
    expect(sourceOfMeta(encodeMeta(nodes(1), 7))).toBe(7);
    expect(sourceOfMeta(encodeMeta(nodes(1)))).toBeUndefined();
    const bad = [
      undefined,
      '',
      '{not json',
      'null',
      '7',
      JSON.stringify({ format: 2, nodes: {}, source: 7 }),
      ...[-1, 1.5, '7', null, 2 ** 53].map((source) =>
        JSON.stringify({ format: 1, nodes: {}, source }),
      ),
    ];
    for (const meta of bad)
      expect({ meta, source: sourceOfMeta(meta) }).toEqual({ meta, source: undefined });
    // The addresses of a meta with a damaged source still read (the source is only a guard).
    expect(decodeMeta(JSON.stringify({ format: 1, nodes: { 1: at(1) }, source: 'x' }))).toEqual(
      nodes(1),
    );
    expect(decodeMeta('null')).toBeUndefined();
  });
});
