// The embedder's API (issue 20): each trap the issue lists, shown closed. Type-level traps are
// `@ts-expect-error` lines (this file is type-checked by `npm run typecheck`: an error that goes
// away fails the check), and each also fails at run time with a coded error.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SeededRandomSource } from '@tspaxos/core';
import { MemoryLogStore } from '@tspaxos/storage';
import { SqliteLogStore } from '@tspaxos/storage/sqlite';
import { MemoryNetwork } from '@tspaxos/transport';
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest';
import * as nodeEntry from './adapters/node-entry';
import { parseAddress } from './adapters/address';
import { createNode } from './adapters/node-entry';
import { createTestCluster, type TestCluster } from './adapters/testing-entry';
import type { ExecuteContext, NodeHandle, ProposeResult, StateMachine } from './index';
import * as mainEntry from './index';
import * as internalEntry from './internal';

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** A map of k=v writes; execute returns the map's size. */
class Kv implements StateMachine {
  readonly map = new Map<string, string>();
  applied = 0;
  constructor(readonly smId = 10) {}
  execute(value: Uint8Array): number {
    const [k, v] = text(value).split('=');
    this.map.set(k!, v!);
    this.applied++;
    return this.map.size;
  }
}

/** Counts what it is given. */
class Counter implements StateMachine {
  count = 0;
  constructor(readonly smId: number) {}
  execute(_value: Uint8Array, _ctx: ExecuteContext): number {
    return ++this.count;
  }
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function kvCluster(): Promise<{ c: TestCluster<'single'>; kvs: Map<number, Kv> }> {
  const kvs = new Map<number, Kv>();
  const c = await createTestCluster({
    stateMachine: (id) => {
      const kv = new Kv();
      kvs.set(id, kv);
      return kv;
    },
  });
  cleanups.push(() => c.stop());
  return { c, kvs };
}

describe('one state machine: the default; several: smId required', () => {
  it('with one machine, propose needs no smId and the machine runs (before: NO_SM_ID, nobody ran)', async () => {
    const { c, kvs } = await kvCluster();
    const r = await c.nodes[0]!.group().propose<number>(bytes('a=1'));
    expectTypeOf(r).toEqualTypeOf<ProposeResult<number>>();
    expect(r.result).toBe(1);
    expect(kvs.get(1)!.map.get('a')).toBe('1');
    await c.converged();
    expect([...kvs.values()].map((kv) => kv.map.get('a'))).toEqual(['1', '1', '1']);
  });

  it('with two machines, propose without smId is a type error and throws E_BAD_ARGUMENT (rejected)', async () => {
    const machines = new Map<number, Counter[]>();
    const c = await createTestCluster({
      stateMachines: (id) => {
        const list = [new Counter(10), new Counter(11)];
        machines.set(id, list);
        return list;
      },
    });
    cleanups.push(() => c.stop());
    const g = c.nodes[0]!.group();
    // @ts-expect-error -- smId is required with several state machines
    const missing = g.propose(bytes('x'));
    await expect(missing).rejects.toMatchObject({
      code: 'E_BAD_ARGUMENT',
      outcome: 'rejected',
      message: expect.stringMatching(/2 state machines \(smId 10, 11\): name one with smId/),
    });
    // @ts-expect-error -- an options object without smId is refused too
    await expect(g.batchPropose(bytes('x'), { timeoutMs: 1000 })).rejects.toMatchObject({
      code: 'E_BAD_ARGUMENT',
    });
    expect(g.status().committer.counters.proposed).toBe(0); // nothing reached the group
    const r = await g.propose<number>(bytes('x'), { smId: 11 });
    expect(r.result).toBe(1);
    expect(machines.get(1)!.map((m) => m.count)).toEqual([0, 1]);
  });

  it('the Node entry types it too: stateMachine gives a single-machine node, stateMachines several', () => {
    const base = { nodeId: 1, clusterId: 't', members: [{ id: 1, address: '127.0.0.1:0' }] };
    const single = () => createNode({ ...base, dataDir: '/nowhere', stateMachine: new Kv() });
    const several = () =>
      createNode({ ...base, dataDir: '/nowhere', stateMachines: [new Kv(10), new Kv(11)] });
    expectTypeOf(single).returns.resolves.toEqualTypeOf<NodeHandle<'single'>>();
    expectTypeOf(several).returns.resolves.toEqualTypeOf<NodeHandle<'several'>>();
  });
});

describe('group handles', () => {
  it('groups default to 1; node.group() is group 0; another index is E_BAD_GROUP', async () => {
    const { c } = await kvCluster();
    const node = c.nodes[0]!;
    expect(node.groupCount).toBe(1);
    expect(node.group().index).toBe(0);
    expect(node.group(0)).toBe(node.group());
    expect(() => node.group(1)).toThrow(expect.objectContaining({ code: 'E_BAD_GROUP' }));
  });

  it('appliedInstanceId is the applied instance (not the next one); waitApplied waits for it elsewhere', async () => {
    const { c, kvs } = await kvCluster();
    const [n1, n2] = c.nodes as [(typeof c.nodes)[0], (typeof c.nodes)[0]];
    expect(n1.group().appliedInstanceId()).toBe(-1);
    const r = await n1.group().propose(bytes('k=v'));
    expect(n1.group().appliedInstanceId()).toBe(r.instanceId);
    await n2.group().waitApplied(r.instanceId, { timeoutMs: 30_000 });
    expect(n2.group().appliedInstanceId()).toBeGreaterThanOrEqual(r.instanceId);
    expect(kvs.get(2)!.map.get('k')).toBe('v');
    await expect(n2.group().waitApplied(-1)).rejects.toMatchObject({ code: 'E_BAD_ARGUMENT' });
  });

  it('waitApplied ends with E_TIMEOUT (rejected) on the node clock, with E_ABORTED on a signal, with E_STOPPED on stop', async () => {
    const { c } = await kvCluster();
    const g = c.nodes[0]!.group();
    const start = c.world.nowMs;
    await expect(g.waitApplied(1000, { timeoutMs: 5000 })).rejects.toMatchObject({
      code: 'E_TIMEOUT',
      outcome: 'rejected',
    });
    expect(c.world.nowMs - start).toBeGreaterThanOrEqual(5000);
    const abort = new AbortController();
    const waiting = g.waitApplied(1000, { signal: abort.signal });
    abort.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'E_ABORTED', outcome: 'rejected' });
    const untilStop = g.waitApplied(1000);
    await c.stopNode(1);
    await expect(untilStop).rejects.toMatchObject({ code: 'E_STOPPED' });
  });

  it('barrier() resolves after every write acknowledged before it, on a node that did not write', async () => {
    const { c, kvs } = await kvCluster();
    for (const i of [1, 2, 3]) await c.nodes[0]!.group().propose(bytes(`k${i}=${i}`));
    const { instanceId } = await c.nodes[2]!.group().barrier();
    expect(instanceId).toBeGreaterThanOrEqual(3);
    expect(kvs.get(3)!.map.size).toBe(3); // read after the barrier: every acknowledged write
    expect(kvs.get(3)!.applied).toBe(3); // the barrier ran no state machine
  });

  it('status(), isMaster() and master() are per group, without the index', async () => {
    const c = await createTestCluster({ stateMachine: () => new Kv(), masterElection: true });
    cleanups.push(() => c.stop());
    await c.world.until(() => c.nodes.some((n) => n.group().isMaster()));
    const master = c.nodes.find((n) => n.group().isMaster())!;
    expect(master.group().master()?.nodeId).toBe(master.nodeId);
    expect(master.group().status().members).toEqual([1, 2, 3]);
  });
});

describe('changeMembership(members, { timeoutMs, signal })', () => {
  it('changes the members; a change that lost to a concurrent one is E_MEMBERSHIP_CONFLICT (rejected, retryable)', async () => {
    const { c } = await kvCluster();
    const [n1, n2] = [c.node(1), c.node(2)];
    await n1.group().changeMembership([1, 2, 3], { timeoutMs: 30_000 }); // version 0 → 1
    await c.converged();
    // Both read version 1, both propose against it: one applies, the other is refused.
    const results = await Promise.allSettled([
      n1.group().changeMembership([1, 2]),
      n2.group().changeMembership([2, 3]),
    ]);
    const refused = results.filter((r) => r.status === 'rejected');
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(refused).toHaveLength(1);
    expect((refused[0] as PromiseRejectedResult).reason).toMatchObject({
      code: 'E_MEMBERSHIP_CONFLICT',
      outcome: 'rejected',
      retryable: true,
    });
    await c.converged();
    const members = c.nodes.map((n) => n.group().status().members);
    expect(new Set(members.map(String)).size).toBe(1);
    expect(c.node(1).group().status().membershipVersion).toBe(2);
  });
});

describe('AbortSignal', () => {
  it('an aborted signal refuses at once, nothing proposed (rejected); an abort while waiting is unknown', async () => {
    const { c, kvs } = await kvCluster();
    const g = c.nodes[0]!.group();
    await expect(g.propose(bytes('a=1'), { signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: 'E_ABORTED',
      outcome: 'rejected',
    });
    expect(g.status().committer.counters.proposed).toBe(0);
    // The two others down: the value waits in the group; the abort ends the caller's wait.
    await c.stopNode(2);
    await c.stopNode(3);
    const abort = new AbortController();
    const pending = g.propose(bytes('b=2'), { signal: abort.signal, timeoutMs: 60_000 });
    await c.world.until(() => g.status().committer.inFlightInstanceId !== undefined);
    abort.abort();
    await expect(pending).rejects.toMatchObject({ code: 'E_ABORTED', outcome: 'unknown' });
    expect(g.status().committer.counters.proposed).toBe(1);
    expect(kvs.get(1)!.map.has('b')).toBe(false);
  });
});

describe('createNode of @tspaxos/paxos/node', () => {
  it('one list of members (id and address), its own TCP network and SQLite log; stop() closes both', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tspaxos-facade-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const kv = new Kv();
    const node = await createNode({
      nodeId: 1,
      clusterId: 'facade-test',
      members: [{ id: 1, address: '127.0.0.1:0' }],
      dataDir: dir,
      stateMachine: kv,
      proposeTimeoutMs: 20_000, // paxos options at the top level, no `options: {}` inside
    });
    const r = await node.group().propose<number>(bytes('x=1'));
    expect(r).toMatchObject({ instanceId: 0, result: 1 });
    await node.stop();
    // The log it opened is closed (SQLite's lock released: it opens again).
    const again = SqliteLogStore.open(dir);
    await again.close();
  });

  it('a store and a network passed in stay open after stop(): the caller owns them', async () => {
    const store = new MemoryLogStore();
    const net = new MemoryNetwork({ rng: new SeededRandomSource(1) });
    const network = net.endpoint(1);
    let closed = 0;
    const node = await createNode({
      nodeId: 1,
      clusterId: 'facade-test',
      members: [{ id: 1, address: { host: '127.0.0.1', port: 1 } }],
      store,
      network: {
        ...network,
        close: async () => {
          closed++;
          await network.close();
        },
      },
      stateMachine: new Kv(),
    });
    await node.group().propose(bytes('x=1'));
    await node.stop();
    expect(closed).toBe(0);
    // Before: stop() closed them (E_CLOSED here). Now the store still takes writes.
    await store.setMeta(0, 'probe', new Uint8Array([1]), { sync: true });
    await store.close();
  });

  it('refuses a nested `options` object (a type error, and E_BAD_ARGUMENT) and bad input', async () => {
    const base = {
      nodeId: 1,
      clusterId: 't',
      members: [{ id: 1, address: '127.0.0.1:0' }],
      store: new MemoryLogStore(),
      network: new MemoryNetwork({ rng: new SeededRandomSource(1) }).endpoint(1),
      stateMachine: new Kv(),
    };
    // @ts-expect-error -- paxos options sit at the top level
    await expect(createNode({ ...base, options: { proposeTimeoutMs: 5 } })).rejects.toThrow(
      /unknown paxos option options/,
    );
    await expect(createNode({ ...base, members: [] })).rejects.toMatchObject({
      code: 'E_BAD_ARGUMENT',
    });
    await expect(
      // @ts-expect-error -- exactly one of stateMachine and stateMachines
      createNode({ ...base, stateMachines: [new Kv(11)] }),
    ).rejects.toThrow(/exactly one of stateMachine and stateMachines/);
    await expect(createNode({ ...base, members: [{ id: 1, address: 'nowhere' }] })).rejects.toThrow(
      /members\[0\]\.address: 'host:port' expected/,
    );
    expect(parseAddress('[::1]:7000', 'a')).toEqual({ host: '::1', port: 7000 });
    expect(parseAddress('db1:7000', 'a')).toEqual({ host: 'db1', port: 7000 });
  });
});

describe('one createNode, a curated main entry', () => {
  it('the main entry has no builder and no internals; /internal has the lower-level one', () => {
    const exported = Object.keys(mainEntry).sort();
    expect(exported).toEqual(['InvariantError', 'PAXOS_ERROR_CODES', 'PaxosError']);
    expect(Object.keys(nodeEntry).filter((k) => /create|start/i.test(k))).toEqual(['createNode']);
    expect(typeof internalEntry.startNode).toBe('function');
    expect('createNode' in internalEntry).toBe(false);
    for (const name of ['packValue', 'encodeSystemVariables', 'NodeEventEmitter'])
      expect(name in internalEntry, name).toBe(true);
  });
});

describe('createTestCluster (@tspaxos/paxos/testing)', () => {
  it('a node stopped and restarted on its kept log replays and learns what it missed', async () => {
    const { c, kvs } = await kvCluster();
    await c.nodes[0]!.group().propose(bytes('a=1'));
    await c.stopNode(3);
    const { instanceId } = await c.nodes[0]!.group().propose(bytes('b=2'));
    const again = await c.restartNode(3); // a new Kv for node 3: it replays its log, then learns
    await again.group().waitApplied(instanceId);
    expect(kvs.get(3)!.map).toEqual(
      new Map([
        ['a', '1'],
        ['b', '2'],
      ]),
    );
    await c.converged();
    await expect(c.restartNode(3)).rejects.toMatchObject({ code: 'E_BAD_ARGUMENT' });
  });
});
