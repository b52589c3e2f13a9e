import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryLogStore } from '@tspaxos/storage';
import { MemoryNetwork, paxosMsg, PaxosMsgType, SeededRng } from '@tspaxos/transport';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createNode as createNodeWithDataDir,
  realRandom,
  realScheduler,
} from './adapters/node-entry';
import { createNode, type PaxosNode, PaxosError, type StateMachine } from './index';

/** A KV-ish state machine that records what it applied. */
class ListMachine implements StateMachine {
  readonly smId = 10;
  readonly applied: string[] = [];
  execute(value: Uint8Array): string {
    const text = new TextDecoder().decode(value);
    this.applied.push(text);
    return `ok:${text}`;
  }
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Three nodes in one process over a MemoryNetwork pumped on a real 1 ms timer. */
async function cluster(opts: { follower?: boolean } = {}) {
  const net = new MemoryNetwork({ rng: new SeededRng(1) });
  let virtualMs = 0;
  const pump = setInterval(() => {
    // Virtual network time runs 1 s per real ms: every frame sent since the last pump is due.
    virtualMs += 1000;
    net.setTime(virtualMs);
    net.deliverDue(virtualMs);
  }, 1);
  cleanups.push(() => clearInterval(pump));
  const ids = [1, 2, 3];
  const machines = new Map<number, ListMachine>();
  const nodes: PaxosNode[] = [];
  const all = opts.follower ? [...ids, 9] : ids;
  for (const id of all) {
    const sm = new ListMachine();
    machines.set(id, sm);
    const node = await createNode({
      nodeId: id,
      cluster: ids,
      groups: 2,
      store: new MemoryLogStore(),
      network: net.endpoint(id),
      scheduler: realScheduler(),
      random: realRandom(),
      stateMachines: [sm],
      ...(id === 9 ? { followTo: 1 } : {}),
      options: {
        learner: {
          askforLearnIntervalMs: 100,
          askforLearnJitterMs: 20,
          followerAskforLearnIntervalMs: 100,
        },
      },
    });
    nodes.push(node);
    cleanups.push(() => node.stop());
  }
  return { nodes, machines, net };
}

const bytes = (s: string) => new TextEncoder().encode(s);

async function eventually(cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('PaxosNode', () => {
  it('chooses values, applies them everywhere in the same order, and returns the result', async () => {
    const { nodes, machines } = await cluster();
    const r = await nodes[0]!.propose(0, bytes('a'), { smId: 10 });
    expect(r).toEqual({ instanceId: 0, result: 'ok:a' });
    const batch = await Promise.all(
      ['b', 'c', 'd'].map((v) => nodes[1]!.batchPropose(0, bytes(v), { smId: 10 })),
    );
    expect(batch.map((x) => x.result)).toEqual(['ok:b', 'ok:c', 'ok:d']);
    await nodes[2]!.propose(1, bytes('other group'), { smId: 10 });
    await eventually(() => [...machines.values()].every((m) => m.applied.length === 5));
    const orders = [...machines.values()].map((m) => m.applied.join());
    expect(new Set(orders).size).toBe(1);
    const status = nodes[0]!.status(0);
    expect(status.members).toEqual([1, 2, 3]);
    expect(status.instanceId).toBeGreaterThanOrEqual(2);
  });

  it('lets a follower learn every value without voting, and refuses its proposals', async () => {
    const { nodes, machines } = await cluster({ follower: true });
    for (const v of ['x', 'y', 'z']) await nodes[0]!.propose(0, bytes(v), { smId: 10 });
    await eventually(() => machines.get(9)!.applied.length === 3);
    expect(machines.get(9)!.applied).toEqual(['x', 'y', 'z']);
    expect(nodes[3]!.status(0).isFollower).toBe(true);
    await expect(nodes[3]!.propose(0, bytes('nope'), { smId: 10 })).rejects.toMatchObject({
      code: 'E_FOLLOWER',
    });
  });

  it('changes membership through the system state machine, on every node, once per version', async () => {
    const { nodes } = await cluster();
    const r = await nodes[0]!.changeMembership(0, [1, 2]);
    expect(r.result).toEqual({ applied: true, version: 1 });
    await nodes[1]!.propose(0, bytes('after'), { smId: 10 }); // two members now make a majority
    await eventually(() => nodes.every((n) => n.status(0).membershipVersion === 1));
    expect(nodes.map((n) => n.status(0).members)).toEqual([
      [1, 2],
      [1, 2],
      [1, 2],
    ]);
    expect(nodes[0]!.status(1).members).toEqual([1, 2, 3]); // per group
    await expect(nodes[0]!.changeMembership(0, [])).rejects.toMatchObject({
      code: 'E_BAD_ARGUMENT',
    });
  });

  it("stops only the diverged group when a peer's chain checksum disagrees, and says why", async () => {
    const { nodes, net } = await cluster();
    for (const v of ['a', 'b']) await nodes[0]!.propose(0, bytes(v), { smId: 10 });
    await eventually(() => nodes.every((n) => n.status(0).instanceId >= 2));
    const before = nodes[0]!.status(0);
    expect(before.lastChecksum).not.toBe(0);
    // A member whose log diverged: a Prepare for node 1's current instance, carrying a checksum
    // of the instance before it that is not node 1's.
    net.endpoint(2).send(1, 0, {
      kind: 'paxos',
      msg: paxosMsg({
        msgType: PaxosMsgType.Prepare,
        instanceId: before.instanceId,
        nodeId: 2,
        proposalId: before.proposer.proposalId + 100,
        proposalNodeId: 2,
        lastChecksum: (before.lastChecksum ^ 1) >>> 0,
      }),
    });
    await eventually(() => nodes[0]!.status(0).stopped !== undefined);
    const after = nodes[0]!.status(0);
    expect(after.stopped?.code).toBe('E_CHECKSUM_MISMATCH');
    expect(after.stopped?.message).toMatch(/diverged/);
    expect(after.counters.checksumMismatches).toBe(1);
    expect(after.instanceId).toBe(before.instanceId); // nothing learned or accepted after it
    await expect(nodes[0]!.propose(0, bytes('refused'), { smId: 10 })).rejects.toMatchObject({
      code: 'E_CHECKSUM_MISMATCH',
    });
    // The node's other group, and the group on the other two nodes (still a majority), go on.
    expect((await nodes[0]!.propose(1, bytes('group 1'), { smId: 10 })).instanceId).toBe(0);
    expect((await nodes[1]!.propose(0, bytes('c'), { smId: 10 })).instanceId).toBe(2);
    expect(nodes[1]!.status(0).stopped).toBeUndefined();
  });

  it('refuses bad input with clear errors', async () => {
    const { nodes } = await cluster();
    const n = nodes[0]!;
    await expect(n.propose(5, bytes('x'))).rejects.toMatchObject({ code: 'E_BAD_GROUP' });
    await expect(n.propose(0, 'text' as unknown as Uint8Array)).rejects.toMatchObject({
      code: 'E_BAD_ARGUMENT',
    });
    await expect(n.propose(0, bytes('x'), { smId: 77 })).rejects.toMatchObject({
      code: 'E_UNKNOWN_STATE_MACHINE',
    });
    await expect(n.propose(0, new Uint8Array(10 * 1024 * 1024 + 1))).rejects.toMatchObject({
      code: 'E_VALUE_TOO_LARGE',
    });
    await expect(n.propose(0, bytes('x'), { timeoutMs: -1 })).rejects.toBeInstanceOf(PaxosError);
    const base = {
      cluster: [1, 2, 3],
      groups: 1,
      store: new MemoryLogStore(),
      network: new MemoryNetwork({ rng: new SeededRng(1) }).endpoint(1),
      scheduler: realScheduler(),
      random: realRandom(),
    };
    await expect(createNode({ ...base, nodeId: 4 })).rejects.toThrow(/not in the cluster/);
    await expect(createNodeWithDataDir({ ...base, nodeId: 1, dataDir: '/tmp/x' })).rejects.toThrow(
      /exactly one of store and dataDir/,
    );
    await expect(createNode({ ...base, nodeId: 1.5 })).rejects.toThrow(/positive safe integer/);
    await expect(createNode({ ...base, nodeId: 1, groups: 0 })).rejects.toThrow(/groups/);
    await expect(
      createNode({ ...base, nodeId: 1, stateMachines: [{ smId: 1, execute: () => 0 }] }),
    ).rejects.toThrow(/reserved/);
  });

  it('opens its own SQLite log from dataDir, and keeps what was chosen across a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tspaxos-node-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const net = new MemoryNetwork({ rng: new SeededRng(1) });
    const start = (sm: ListMachine) =>
      createNodeWithDataDir({
        nodeId: 1,
        cluster: [1],
        groups: 1,
        dataDir: dir,
        network: net.endpoint(1),
        stateMachines: [sm],
      });
    const first = await start(new ListMachine());
    expect(await first.propose(0, bytes('kept'), { smId: 10 })).toEqual({
      instanceId: 0,
      result: 'ok:kept',
    });
    await first.propose(0, bytes('also'), { smId: 10 });
    await first.stop();
    const sm = new ListMachine();
    const second = await start(sm);
    cleanups.push(() => second.stop());
    // Replayed up to the last instance; that one is learned again by the recovery no-op.
    await eventually(() => sm.applied.length === 2);
    expect(sm.applied).toEqual(['kept', 'also']);
    await second.propose(0, bytes('third'), { smId: 10 });
    expect(sm.applied).toEqual(['kept', 'also', 'third']);
  });

  it('rejects pending proposals with E_STOPPED on a graceful stop', async () => {
    const { nodes } = await cluster();
    const lonely = nodes[0]!;
    await nodes[1]!.stop();
    await nodes[2]!.stop();
    const pending = lonely.propose(0, bytes('never'), { smId: 10, timeoutMs: 60_000 });
    await new Promise((r) => setTimeout(r, 20));
    await lonely.stop();
    await expect(pending).rejects.toMatchObject({ code: 'E_STOPPED' });
    await expect(lonely.propose(0, bytes('after'))).rejects.toMatchObject({ code: 'E_STOPPED' });
  });
});
