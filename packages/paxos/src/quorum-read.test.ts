// Quorum reads (quorum-read.ts) on a 3-node cluster in the virtual world of
// `@tspaxos/paxos/testing`: a write acknowledged through node 1 while node 3 was cut off is seen
// by a quorum read through node 3 (and missed by the planted bugs: the min instead of the max, a
// round that ends before a majority answered); an instance accepted by one member and never
// chosen ends in a fallback barrier; concurrent reads share rounds; stray replies are counted.
import { SeededRandomSource } from '@tspaxos/core';
import { MemoryLogStore } from '@tspaxos/storage';
import {
  ForwardFlag,
  forwardMsg,
  ForwardMsgType,
  type Message,
  type Network,
  PaxosMsgType,
} from '@tspaxos/transport';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestCluster, VirtualWorld } from './adapters/testing-entry';
import { PaxosError } from './errors';
import type { UnsafeFaults } from './faults';
import { type PaxosNode, startNode } from './node';
import { QUORUM_READ_FALLBACK_MS } from './quorum-read';
import type { StateMachine } from './state-machine';

const G = 0;
const SM = 10;
const enc = (s: string) => new TextEncoder().encode(s);

/** One register per node: the last value applied. */
class Register implements StateMachine {
  readonly smId = SM;
  readonly values: string[] = [];
  execute(value: Uint8Array): void {
    this.values.push(new TextDecoder().decode(value));
  }
}

interface World {
  world: VirtualWorld;
  nodes: Map<number, { node: PaxosNode; sm: Register }>;
  /** Sees every frame a node sends; true drops it. */
  drop: (from: number, to: number, message: Message) => boolean;
  stop(): Promise<void>;
}

let running: World | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

async function threeNodes(faults: UnsafeFaults = {}, seed = 5): Promise<World> {
  const world = new VirtualWorld({ seed });
  world.net.setDefaultLink({ delayMs: [1, 3] });
  const w: World = {
    world,
    nodes: new Map(),
    drop: () => false,
    async stop() {
      for (const { node } of w.nodes.values()) await node.stop();
      world.close();
    },
  };
  for (const id of [1, 2, 3]) {
    const endpoint = world.net.endpoint(id);
    const network: Network = {
      ...endpoint,
      send: (to, group, message) => {
        if (!w.drop(id, to, message)) endpoint.send(to, group, message);
      },
    };
    const sm = new Register();
    const node = await startNode({
      nodeId: id,
      cluster: [1, 2, 3],
      groups: 1,
      store: new MemoryLogStore(),
      network,
      scheduler: world.scheduler,
      random: new SeededRandomSource(seed * 10 + id),
      stateMachines: [sm],
      options: { proposeTimeoutMs: 5000 },
      unsafeFaults: faults,
    });
    w.nodes.set(id, { node, sm });
  }
  running = w;
  return w;
}

const node = (w: World, id: number) => w.nodes.get(id)!.node;
const values = (w: World, id: number) => w.nodes.get(id)!.sm.values;

/** Cuts both directions between a and b. */
function cut(w: World, a: number, b: number): void {
  w.world.net.cutOneWay(a, b);
  w.world.net.cutOneWay(b, a);
}

/**
 * Writes 'b' through node 1 while node 3 is cut off, reconnects node 3 to node 2 only, and reads
 * through node 3 with a quorum read index: what node 3's register holds when the read resolves.
 */
async function writeThenReadBehind(faults: UnsafeFaults) {
  const w = await threeNodes(faults);
  await node(w, 1).propose(G, enc('a'), { smId: SM });
  await w.world.until(() => values(w, 3).includes('a'));
  cut(w, 1, 3);
  cut(w, 2, 3);
  const acked = await node(w, 1).propose(G, enc('b'), { smId: SM });
  w.world.net.heal();
  cut(w, 1, 3); // node 3 hears only node 2: its majority is {2, 3}
  const behindAtStart = node(w, 3).instanceId(G) <= acked.instanceId;
  const read = await node(w, 3).quorumReadIndex(G, { timeoutMs: 5000 });
  return {
    w,
    acked,
    behindAtStart,
    read,
    sawWrite: values(w, 3).includes('b'),
    counters: { ...node(w, 3).quorumReadCounters },
    served: node(w, 2).quorumReadCounters.served,
  };
}

describe('quorum read index', () => {
  it('sees a write acknowledged through another node before the read began, with no barrier', async () => {
    const r = await writeThenReadBehind({});
    expect(r.behindAtStart).toBe(true);
    expect(r.sawWrite).toBe(true);
    expect(r.read.instanceId).toBeGreaterThanOrEqual(r.acked.instanceId);
    expect(r.counters).toMatchObject({ reads: 1, rounds: 1, fallbacks: 0, malformed: 0 });
    expect(r.counters.asked).toBeGreaterThanOrEqual(2);
    expect(r.served).toBeGreaterThanOrEqual(1);
    // Nothing was proposed for the read: node 3's log holds only the two writes.
    expect(node(r.w, 3).instanceId(G)).toBe(r.acked.instanceId + 1);
  });

  it('the planted min instead of the max misses the write', async () => {
    const r = await writeThenReadBehind({ quorumReadTakesMin: true });
    expect(r.behindAtStart).toBe(true);
    expect(r.sawWrite).toBe(false);
    expect(r.counters.rounds).toBe(1);
  });

  it('the planted round that ends before a majority answered misses the write', async () => {
    const r = await writeThenReadBehind({ quorumReadFewerThanMajority: true });
    expect(r.behindAtStart).toBe(true);
    expect(r.sawWrite).toBe(false);
    expect(r.counters.rounds).toBe(1);
  });

  it('falls back to a barrier when its index names an instance accepted but never chosen', async () => {
    const w = await threeNodes();
    await node(w, 1).propose(G, enc('a'), { smId: SM });
    await w.world.until(() => values(w, 3).includes('a'));
    const before = node(w, 1).instanceId(G);
    // Node 1's Accepts never leave it: only its own acceptor accepts 'b', which is never chosen.
    w.drop = (from, to, m) =>
      from === 1 && to !== 1 && m.kind === 'paxos' && m.msg.msgType === PaxosMsgType.Accept;
    const lost = await node(w, 1)
      .propose(G, enc('b'), { smId: SM, timeoutMs: 300 })
      .then(
        () => 'chosen',
        (e: PaxosError) => e.code,
      );
    expect(lost).toBe('E_TIMEOUT');
    expect(node(w, 1).instanceId(G)).toBe(before);
    // Node 3 asks nodes 1 and 3 (node 2 cut off): the index is past the unchosen instance.
    cut(w, 2, 3);
    const startMs = w.world.nowMs;
    const read = await node(w, 3).quorumReadIndex(G, { timeoutMs: 5000 });
    expect(node(w, 3).quorumReadCounters).toMatchObject({ reads: 1, rounds: 1, fallbacks: 1 });
    expect(w.world.nowMs - startMs).toBeGreaterThanOrEqual(QUORUM_READ_FALLBACK_MS);
    // The barrier's prepare found node 1's accepted 'b' and chose it first.
    expect(read.instanceId).toBeGreaterThan(before);
    expect(values(w, 3)).toContain('b');
  });

  it('runs the round again with the new members when a membership change was below its index', async () => {
    const w = await threeNodes();
    await node(w, 1).propose(G, enc('a'), { smId: SM });
    await w.world.until(() => values(w, 3).includes('a'));
    cut(w, 1, 3);
    cut(w, 2, 3);
    // While node 3 hears nothing, nodes 1 and 2 make themselves the voters and write 'b'.
    await node(w, 1).changeMembership(G, [1, 2]);
    await node(w, 1).propose(G, enc('b'), { smId: SM });
    w.world.net.heal();
    expect(node(w, 3).membership(G).members).toEqual([1, 2, 3]);
    const read = await node(w, 3).quorumReadIndex(G, { timeoutMs: 5000 });
    // The first round (old members) reached past the change; the second asked the new ones
    // (both: node 3, no longer a voter, counts for nothing).
    expect(node(w, 3).membership(G).members).toEqual([1, 2]);
    expect(node(w, 3).quorumReadCounters).toMatchObject({
      reads: 1,
      rounds: 2,
      membershipRetries: 1,
      fallbacks: 0,
    });
    expect(values(w, 3)).toContain('b');
    expect(read.instanceId).toBe(node(w, 1).instanceId(G) - 1);
  });

  it('shares rounds: reads arriving while one is out wait for the next, not the one in flight', async () => {
    const w = await threeNodes();
    await node(w, 1).propose(G, enc('a'), { smId: SM });
    const n3 = node(w, 3);
    const first = n3.quorumReadIndex(G);
    const later = Array.from({ length: 5 }, () => n3.quorumReadIndex(G));
    await Promise.all([first, ...later]);
    expect(n3.quorumReadCounters).toMatchObject({ reads: 6, rounds: 2, fallbacks: 0 });
    // A read after those starts a round of its own.
    await n3.quorumReadIndex(G);
    expect(n3.quorumReadCounters.rounds).toBe(3);
  });

  it('fails fast without a quorum and counts stray or malformed replies as drops', async () => {
    const w = await threeNodes();
    await node(w, 1).propose(G, enc('a'), { smId: SM });
    const n3 = node(w, 3);
    cut(w, 1, 3);
    cut(w, 2, 3);
    const refused = await n3.quorumReadIndex(G).catch((e: PaxosError) => e);
    expect(refused).toBeInstanceOf(PaxosError);
    expect(refused).toMatchObject({ code: 'E_NO_QUORUM', outcome: 'rejected', retryable: true });
    w.world.net.heal();
    const stray = world9(w);
    const reply = (fields: Parameters<typeof forwardMsg>[0]) =>
      stray.send(3, G, { kind: 'forward', msg: forwardMsg(fields) });
    // A reply for no round, and one whose node id is not its sender's.
    reply({ msgType: ForwardMsgType.QuorumReadIndexReply, requestId: 999, nodeId: 9 });
    reply({ msgType: ForwardMsgType.QuorumReadIndexReply, requestId: 1, nodeId: 2 });
    await w.world.until(
      () => n3.quorumReadCounters.repliesUnknown + n3.quorumReadCounters.malformed === 2,
    );
    expect(n3.quorumReadCounters).toMatchObject({ repliesUnknown: 1, malformed: 1, noQuorum: 1 });
    // While a round is out, a position from a non-member is not counted toward its majority.
    w.drop = (from, to) => from !== 3 && to === 3 && from !== 9;
    const pending = n3.quorumReadIndex(G, { timeoutMs: 1000 }).catch((e: PaxosError) => e.code);
    await w.world.until(() => n3.quorumReadCounters.asked >= 2);
    reply({
      msgType: ForwardMsgType.QuorumReadIndexReply,
      requestId: 1, // node 3's first round (the refused read started none)
      nodeId: 9,
      instanceId: 1_000_000,
      flag: ForwardFlag.Accepted,
    });
    expect(await pending).toBe('E_TIMEOUT');
    expect(n3.quorumReadCounters.malformed).toBe(2);
    // A request for a group this node does not have: a counted drop, no answer, no crash.
    const served = n3.quorumReadCounters.served;
    const unknown = n3.counters.messagesForUnknownGroup;
    stray.send(3, 7, {
      kind: 'forward',
      msg: forwardMsg({ msgType: ForwardMsgType.QuorumReadIndex, requestId: 5, nodeId: 9 }),
    });
    await w.world.until(() => n3.counters.messagesForUnknownGroup === unknown + 1);
    expect(n3.quorumReadCounters.served).toBe(served);
  });

  it('is on the group handle of the façade', async () => {
    const cluster = await createTestCluster({ stateMachine: () => new Register() });
    try {
      const written = await cluster.node(1).group().propose(enc('x'));
      const read = await cluster.node(2).group().quorumReadIndex({ timeoutMs: 5000 });
      expect(read.instanceId).toBeGreaterThanOrEqual(written.instanceId);
      const aborted = new AbortController();
      aborted.abort();
      await expect(
        cluster.node(2).group().quorumReadIndex({ signal: aborted.signal }),
      ).rejects.toMatchObject({ code: 'E_ABORTED', outcome: 'rejected' });
    } finally {
      await cluster.stop();
    }
  });
});

/** An endpoint for node 9, not a member: frames from it reach the cluster as from node 9. */
function world9(w: World): Network {
  return w.world.net.endpoint(9);
}
