// Forwarding to the master (forwarding.ts) on a 3-node cluster over the MemoryNetwork, on one
// virtual clock: writes through every node end up proposed by the master, read indexes from any
// node, a master change in flight, deadlines, unknown and malformed replies, and fast E_NO_QUORUM.
import { MemoryLogStore } from '@tspaxos/storage';
import {
  ForwardFlag,
  forwardMsg,
  ForwardMsgType,
  type Message,
  type MemoryNetwork,
  PaxosMsgType,
} from '@tspaxos/transport';
import { describe, expect, it } from 'vitest';
import { PaxosError } from './errors';
import { ForwardManyFlag } from './forward-batch';
import type { UnsafeFaults } from './faults';
import { startNode as createNode, type PaxosNode } from './node';
import type { PaxosOptionsInput } from './options';
import { SeededRandomSource } from '@tspaxos/core';
import { VirtualWorld } from './adapters/testing-entry';
import type { StateMachine } from './state-machine';
import { SYSTEM_SM_ID } from './value';

const G = 0;
const SM = 10;
const LEASE_MS = 1000;

/** Counts how often each value was applied on its node (exactly once is the promise). */
class Applied implements StateMachine {
  readonly smId = SM;
  readonly counts = new Map<string, number>();
  execute(value: Uint8Array): string {
    const key = new TextDecoder().decode(value);
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    return `applied ${key}`;
  }
}

/** Three nodes on one VirtualWorld (the testing entry), its clock moved only by until(). */
class Harness {
  /** Its onSend sees every message sent; returning false drops it (tests script the network). */
  readonly world: VirtualWorld;
  readonly nodes = new Map<number, { node: PaxosNode; sm: Applied }>();

  constructor(maxFrameBytes?: number) {
    this.world = new VirtualWorld({
      seed: 7,
      autoRun: false,
      ...(maxFrameBytes !== undefined ? { maxFrameBytes } : {}),
    });
    this.net.setDefaultLink({ delayMs: [1, 3] });
  }

  get net(): MemoryNetwork {
    return this.world.net;
  }

  get nowMs(): number {
    return this.world.nowMs;
  }

  async start(faults: UnsafeFaults = {}, options: PaxosOptionsInput = {}): Promise<void> {
    for (const id of [1, 2, 3]) {
      const sm = new Applied();
      const node = await createNode({
        nodeId: id,
        cluster: [1, 2, 3],
        groups: 1,
        store: new MemoryLogStore(),
        network: this.world.endpoint(id),
        scheduler: this.world.scheduler,
        random: new SeededRandomSource(id),
        stateMachines: [sm],
        masterElection: true,
        forwarding: true,
        options: { masterLeaseMs: LEASE_MS, proposeTimeoutMs: 5000, ...options },
        unsafeFaults: faults,
      });
      this.nodes.set(id, { node, sm });
    }
  }

  node(id: number): PaxosNode {
    return this.nodes.get(id)!.node;
  }

  /** Runs timers and deliveries in time order until `cond` holds (or fails at `limitMs`). */
  async until(cond: () => boolean, what: string, limitMs = 30_000): Promise<void> {
    const end = this.world.nowMs + limitMs;
    for (;;) {
      await settle();
      if (cond()) return;
      if (!this.world.runNext(end)) throw new Error(`timed out waiting for ${what}`);
    }
  }

  /** Runs until the promise settles; returns its outcome. */
  async settle<T>(p: Promise<T>, what: string): Promise<{ value?: T; error?: PaxosError }> {
    let out: { value?: T; error?: PaxosError } | undefined;
    p.then(
      (value) => (out = { value }),
      (error: PaxosError) => (out = { error }),
    );
    await this.until(() => out !== undefined, what);
    return out!;
  }

  master(): number | undefined {
    return [...this.nodes].find(([, n]) => n.node.isMaster(G))?.[0];
  }

  /**
   * A master every node knows, once the start's concurrent election proposals have settled (half
   * a lease): a node whose own losing proposal was chosen by a peer's ballot learns that instance
   * only at its learner's next ask (a gap of the learner, not of forwarding), which would stall
   * the master's first proposals past its lease.
   */
  async electedMaster(): Promise<number> {
    const known = () =>
      this.master() !== undefined &&
      [...this.nodes.values()].every((n) => n.node.getMaster(G)?.nodeId === this.master());
    await this.until(known, 'a master every node knows');
    const settledAt = this.nowMs + LEASE_MS / 2;
    await this.until(() => this.nowMs >= settledAt, 'half a lease');
    const ids = [...this.nodes.values()].map((n) => n.node.instanceId(G));
    await this.until(
      () => known() && ids.every((id) => id === ids[0]),
      'every node at the same instance under one master',
    );
    return this.master()!;
  }

  async stop(): Promise<void> {
    for (const { node } of this.nodes.values()) await node.stop();
  }
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const bytes = (s: string) => new TextEncoder().encode(s);

/** Writes through every node; how many came back proposed by another node than the master. */
async function writesNotThroughMaster(faults: UnsafeFaults): Promise<{
  master: number;
  results: number;
  notThroughMaster: number;
  forwarded: number;
  proposeFrames: number;
  replyFrames: number;
}> {
  const h = new Harness();
  await h.start(faults);
  const master = await h.electedMaster();
  const pending = [];
  for (let i = 0; i < 30; i++) {
    const via = (i % 3) + 1;
    pending.push(h.node(via).batchPropose(G, bytes(`w${i}`), { smId: SM }));
  }
  const all = await h.settle(Promise.all(pending), 'every write');
  expect(all.error).toBeUndefined();
  const results = all.value!;
  const notThroughMaster = results.filter((r) => r.identity.nodeId !== master).length;
  let forwarded = 0;
  let proposeFrames = 0;
  let replyFrames = 0;
  for (const id of [1, 2, 3]) {
    const c = h.node(id).forwardingCounters;
    forwarded += c.proposalsForwarded;
    proposeFrames += c.proposeFramesSent;
    replyFrames += c.replyFramesSent;
  }
  await h.stop();
  return {
    master,
    results: results.length,
    notThroughMaster,
    forwarded,
    proposeFrames,
    replyFrames,
  };
}

describe('forwarding to the master', () => {
  it('sends every write given to another node to the master; a planted self-proposer is caught', async () => {
    const ok = await writesNotThroughMaster({});
    expect(ok.results).toBe(30);
    expect(ok.forwarded).toBe(20); // the 20 writes given to the two other nodes
    expect(ok.notThroughMaster).toBe(0);
    // Given in one turn: one frame from each of the two nodes; the master answers the values of
    // one instance to one node in one frame (at most one per node and instance).
    expect(ok.proposeFrames).toBe(2);
    expect(ok.replyFrames).toBeGreaterThanOrEqual(2);
    expect(ok.replyFrames).toBeLessThan(20);
    // Planted: nodes propose their own writes while the master's lease is live.
    const planted = await writesNotThroughMaster({ proposeDespiteLiveLease: true });
    expect(planted.forwarded).toBe(0);
    expect(planted.notThroughMaster).toBeGreaterThan(0);
  });

  it('answers a forwarded write once the forwarding node applied it, with the master result', async () => {
    const h = new Harness();
    await h.start();
    const master = await h.electedMaster();
    const via = master === 1 ? 2 : 1;
    // A fractional timeout, as the remainder of a deadline on a real clock is (it once failed
    // to encode: the wire carries whole milliseconds).
    const r = await h.settle(
      h.node(via).propose(G, bytes('x'), { smId: SM, timeoutMs: 4999.5 }),
      'the write',
    );
    expect(r.value?.result).toBe('applied x');
    expect(r.value?.identity.nodeId).toBe(master);
    // Applied here when the caller hears of it: a read here afterwards sees it.
    expect(h.nodes.get(via)!.sm.counts.get('x')).toBe(1);
    expect(h.node(via).instanceId(G)).toBeGreaterThan(r.value!.instanceId);
    expect(h.node(master).forwardingCounters.proposalsServed).toBe(1);
    await h.stop();
  });

  it('holds a forwarded write whose reply beats the chosen value here until it is applied; counts the wait', async () => {
    const h = new Harness();
    await h.start();
    const master = await h.electedMaster();
    const via = master === 1 ? 2 : 1;
    // The chosen value reaches `via` only through its learner's later ask: the reply comes first.
    let dropped = 0;
    h.world.onSend = (from, to, m) => {
      const success =
        m.kind === 'paxos' && m.msg.msgType === PaxosMsgType.ProposerSendSuccess && to === via;
      if (success && from === master) dropped++;
      return !success;
    };
    const r = await h.settle(h.node(via).propose(G, bytes('z'), { smId: SM }), 'the write');
    h.world.onSend = undefined;
    expect(dropped).toBeGreaterThan(0);
    expect(r.value?.result).toBe('applied z');
    expect(h.nodes.get(via)!.sm.counts.get('z')).toBe(1);
    const c = h.node(via).forwardingCounters;
    expect(c.repliesBeforeApplied).toBe(1);
    expect(c.applyWaitMs).toBeGreaterThan(0);
    await h.stop();
  });

  it('gives a read index from any node that covers a write made through another node', async () => {
    const h = new Harness();
    await h.start();
    const master = await h.electedMaster();
    const [a, b] = [1, 2, 3].filter((id) => id !== master) as [number, number];
    const w = await h.settle(h.node(a).propose(G, bytes('y'), { smId: SM }), 'the write');
    const read = await h.settle(h.node(b).readIndex(G), 'the read index');
    expect(read.value!.instanceId).toBeGreaterThanOrEqual(w.value!.instanceId);
    expect(h.nodes.get(b)!.sm.counts.get('y')).toBe(1);
    expect(h.node(b).forwardingCounters.readIndexesAsked).toBe(1);
    expect(h.node(master).forwardingCounters.readIndexesServed).toBe(1);
    // The master answers its own from its state.
    const own = await h.settle(h.node(master).readIndex(G), 'the master read index');
    expect(own.value!.instanceId).toBe(h.node(master).instanceId(G) - 1);
    await h.stop();
  });

  it('routes again a write the former master refused unqueued, and applies it once', async () => {
    const h = new Harness();
    await h.start();
    const old = await h.electedMaster();
    const via = old === 1 ? 2 : 1;
    // The master gives up its lease; the others wait it out (it stays live in their view).
    expect(h.node(old).dropMaster(G)).toBe(true);
    const r = await h.settle(h.node(via).propose(G, bytes('z'), { smId: SM }), 'the write');
    expect(r.error).toBeUndefined();
    // Refused unqueued by the former master at least once, then routed again until it went through.
    expect(h.node(old).forwardingCounters.proposalsServed).toBeGreaterThan(0);
    expect(h.node(via).forwardingCounters.reroutes).toBeGreaterThan(0);
    await h.until(
      () => [1, 2, 3].every((id) => h.nodes.get(id)!.sm.counts.get('z') === 1),
      'every node to apply z',
    );
    await h.stop();
  });

  it('routes a value queued here to a master whose lease became live meanwhile; each applied once', async () => {
    const h = new Harness();
    // No batch wait (batchWaitMs): this scenario needs values still queued on the other nodes
    // when the lease becomes live, and the timing of the 60 writes on virtual time is the whole
    // setup. With the default wait, node 3 waited 3 ms for a 20th value that never came (its
    // first instance carried 1 value, 19 were queued), which moved the duel: every node proposed
    // all its values itself before the lease was live, and none was handed back.
    await h.start({}, { batchWaitMs: 0 });
    // Writes through every node at once, before any master is known: each node queues its own
    // and proposes them itself; the election's lease then becomes live while they wait, and every
    // node but the master hands its waiting values back (proposing.ts) to send them to it.
    const pending = [];
    for (let i = 0; i < 60; i++) {
      const via = (i % 3) + 1;
      pending.push(h.node(via).batchPropose(G, bytes(`q${i}`), { smId: SM }));
    }
    const outcomes = await h.settle(Promise.allSettled(pending), 'every write');
    const refused = outcomes.value!.flatMap((o) =>
      o.status === 'rejected' ? [(o.reason as PaxosError).code] : [],
    );
    expect(refused).toEqual([]);
    let rerouted = 0;
    let handedBack = 0;
    for (const id of [1, 2, 3]) {
      rerouted += h.node(id).forwardingCounters.handedBackRerouted;
      handedBack += h.node(id).status(G).counters.valuesHandedBack;
    }
    // The case under test happened: values queued here were handed back and sent to the master
    // (the rest handed back were forwarded ones, refused to their sender, which routed them again).
    expect(rerouted).toBeGreaterThan(0);
    expect(rerouted).toBeLessThanOrEqual(handedBack);
    await h.until(
      () =>
        [1, 2, 3].every((id) =>
          Array.from({ length: 60 }, (_, i) => `q${i}`).every(
            (k) => h.nodes.get(id)!.sm.counts.get(k) === 1,
          ),
        ),
      'every node to apply every write',
    );
    for (const id of [1, 2, 3])
      expect([...h.nodes.get(id)!.sm.counts.values()].every((n) => n === 1)).toBe(true);
    await h.stop();
  });

  it('passes a refusal before queueing on as an already-rejected promise', async () => {
    const h = new Harness();
    await h.start({}, { committerQueueMaxProposals: 1 });
    // No master known yet: node 1 proposes itself. Callers tell "never queued" from a promise
    // that is rejected already (apps/node answers 503 then, never 504).
    const state = async (p: Promise<unknown>) => {
      const pending = Symbol('pending');
      try {
        return (await Promise.race([p, Promise.resolve(pending)])) === pending
          ? 'pending'
          : 'resolved';
      } catch (error) {
        return (error as PaxosError).code;
      }
    };
    const node = h.node(1);
    expect(node.getMaster(G)).toBeUndefined();
    expect(await state(node.propose(G, bytes('x'), { smId: 99 }))).toBe('E_UNKNOWN_STATE_MACHINE');
    // One value in flight, one waiting, the third finds the queue (1 proposal) full.
    const writes = ['a', 'b', 'c'].map((v) => node.propose(G, bytes(v), { smId: SM }));
    const states = await Promise.all(writes.map(state)); // each raced at once
    expect(states).toEqual(['pending', 'pending', 'E_QUEUE_FULL']);
    await h.settle(Promise.all(writes.slice(0, 2)), 'the first two writes');
    await h.stop();
  });

  it('answers outcome-unknown when the master goes away after taking a write; never applies it twice', async () => {
    const h = new Harness();
    await h.start();
    const master = await h.electedMaster();
    const via = master === 1 ? 2 : 1;
    const others = [1, 2, 3].filter((id) => id !== master);
    let taken = false;
    h.world.onSend = (from, _to, m) => {
      // The master took the write (it answers a forward only once chosen): cut it off now.
      if (from === via && m.kind === 'forward' && m.msg.msgType === ForwardMsgType.ForwardPropose)
        taken = true;
      return true;
    };
    const p = h.node(via).propose(G, bytes('u'), { smId: SM });
    await h.until(() => taken, 'the forward to leave');
    h.net.partition([[master], others]);
    const r = await h.settle(p, 'the write');
    expect(r.error?.code).toBe('E_OUTCOME_UNKNOWN');
    expect(h.node(via).forwardingCounters.outcomeUnknown).toBe(1);
    h.net.heal();
    h.world.onSend = undefined;
    // Whatever became of it, it is applied at most once anywhere.
    const after = await h.settle(h.node(via).propose(G, bytes('after'), { smId: SM }), 'next');
    expect(after.error).toBeUndefined();
    await h.until(
      () => [1, 2, 3].every((id) => h.nodes.get(id)!.sm.counts.get('after') === 1),
      'every node to apply the next write',
    );
    for (const id of [1, 2, 3]) expect(h.nodes.get(id)!.sm.counts.get('u') ?? 0).toBeLessThan(2);
    await h.stop();
  });

  it('proposes a batched forward frame delivered twice once; the copy of its reply is a counted drop', async () => {
    const h = new Harness();
    await h.start();
    const master = await h.electedMaster();
    const via = master === 1 ? 2 : 1;
    let copies = 0;
    h.world.onSend = (from, to, m, group) => {
      const batched =
        m.kind === 'forward' &&
        (m.msg.flag & ForwardManyFlag) !== 0 &&
        ((from === via && to === master) || (from === master && to === via));
      if (batched) {
        h.net.endpoint(from).send(to, group, m); // the copy, past onSend
        copies++;
      }
      return true;
    };
    // Given in one turn: one frame to the master, its values chosen in one instance.
    const writes = Array.from({ length: 10 }, (_, i) =>
      h.node(via).batchPropose(G, bytes(`d${i}`), { smId: SM }),
    );
    const r = await h.settle(Promise.all(writes), 'the writes');
    expect(r.error).toBeUndefined();
    h.world.onSend = undefined;
    expect(h.node(via).forwardingCounters.proposeFramesSent).toBe(1);
    expect(copies).toBeGreaterThanOrEqual(2); // the request frame and at least one reply frame
    // A write after them, applied everywhere: the copies had their chance to be chosen too.
    const next = await h.settle(h.node(via).propose(G, bytes('next'), { smId: SM }), 'next');
    expect(next.error).toBeUndefined();
    await h.until(
      () => [1, 2, 3].every((id) => h.nodes.get(id)!.sm.counts.get('next') === 1),
      'every node to apply the next write',
    );
    for (const id of [1, 2, 3])
      for (let i = 0; i < 10; i++) expect(h.nodes.get(id)!.sm.counts.get(`d${i}`)).toBe(1);
    expect(h.node(master).forwardingCounters.duplicatesDropped).toBe(10);
    // The copies of the batched reply frames found no request waiting: one drop per entry.
    expect(h.node(via).forwardingCounters.repliesUnknown).toBeGreaterThan(1);
    await h.stop();
  });

  it('a lost batched forward frame applies none of its writes; a lost reply frame leaves each applied once', async () => {
    const h = new Harness();
    await h.start();
    const master = await h.electedMaster();
    const via = master === 1 ? 2 : 1;
    let lost = 0;
    let lose: 'request' | 'reply' = 'request';
    // Every forwarding frame of the phase is lost (the writes of one turn share one, or two if
    // the turn's first left alone).
    h.world.onSend = (from, to, m) => {
      if (m.kind !== 'forward') return true;
      const drop =
        lose === 'request' ? from === via && to === master : from === master && to === via;
      if (drop) lost++;
      return !drop;
    };
    const codes = async (prefix: string) => {
      const writes = Array.from({ length: 5 }, (_, i) =>
        h.node(via).batchPropose(G, bytes(`${prefix}${i}`), { smId: SM, timeoutMs: 2000 }),
      );
      const all = await h.settle(Promise.allSettled(writes), `the ${prefix} writes`);
      return all.value!.map((o) =>
        o.status === 'rejected' ? (o.reason as PaxosError).code : 'ok',
      );
    };
    expect(await codes('lost')).toEqual(Array(5).fill('E_TIMEOUT'));
    const lostRequests = lost;
    expect(lostRequests).toBeGreaterThanOrEqual(1);
    expect(lostRequests).toBeLessThan(5);
    lose = 'reply';
    expect(await codes('unanswered')).toEqual(Array(5).fill('E_TIMEOUT'));
    expect(lost - lostRequests).toBeGreaterThanOrEqual(1);
    expect(lost - lostRequests).toBeLessThan(5);
    h.world.onSend = undefined;
    const next = await h.settle(h.node(via).propose(G, bytes('next'), { smId: SM }), 'next');
    expect(next.error).toBeUndefined();
    await h.until(
      () => [1, 2, 3].every((id) => h.nodes.get(id)!.sm.counts.get('next') === 1),
      'every node to apply the next write',
    );
    for (const id of [1, 2, 3]) {
      const counts = h.nodes.get(id)!.sm.counts;
      for (let i = 0; i < 5; i++) {
        expect(counts.get(`lost${i}`)).toBeUndefined(); // never reached the master
        expect(counts.get(`unanswered${i}`)).toBe(1); // chosen once, its answer lost
      }
    }
    await h.stop();
  });

  it('splits the writes of one turn into frames of at most half the network frame size', async () => {
    const h = new Harness(64 * 1024);
    await h.start({}, { maxValueBytes: 8 * 1024 });
    const master = await h.electedMaster();
    const via = master === 1 ? 2 : 1;
    // 20 values of 4 KiB: 80 KiB in one turn, against batches of at most 32 KiB.
    const big = (i: number) => new Uint8Array(4096).fill(i);
    const writes = Array.from({ length: 20 }, (_, i) =>
      h.node(via).batchPropose(G, big(i), { smId: SM }),
    );
    const r = await h.settle(Promise.all(writes), 'the writes');
    expect(r.error).toBeUndefined();
    expect(h.node(via).forwardingCounters.proposeFramesSent).toBeGreaterThanOrEqual(3);
    expect(h.node(via).forwardingCounters.proposeFramesSent).toBeLessThan(20);
    await h.stop();
  });

  it('ends a forward at its deadline; the late reply is a counted drop', async () => {
    const h = new Harness();
    await h.start();
    const master = await h.electedMaster();
    const via = master === 1 ? 2 : 1;
    const held: Array<() => void> = [];
    h.world.onSend = (from, to, m) => {
      if (from !== master || m.kind !== 'forward') return true;
      held.push(() => h.net.endpoint(from).send(to, G, m));
      return false;
    };
    const r = await h.settle(
      h.node(via).propose(G, bytes('late'), { smId: SM, timeoutMs: 500 }),
      'the deadline',
    );
    expect(r.error?.code).toBe('E_TIMEOUT');
    expect(held).toHaveLength(1);
    expect(h.world.sendsDropped).toBe(1);
    held[0]!();
    await h.until(
      () => h.node(via).forwardingCounters.repliesUnknown === 1,
      'the late reply to be dropped',
    );
    await h.stop();
  });

  it('drops malformed forwarding messages and counts them; refuses system values', async () => {
    const h = new Harness();
    await h.start();
    const master = await h.electedMaster();
    const via = master === 1 ? 2 : 1;
    const send = (from: number, to: number, fields: Parameters<typeof forwardMsg>[0]) =>
      h.net.endpoint(from).send(to, G, { kind: 'forward', msg: forwardMsg(fields) });
    // A sender that claims to be another node.
    send(via, master, { msgType: ForwardMsgType.ForwardPropose, nodeId: 99, smId: SM });
    // A reply nobody asked for.
    send(master, via, { msgType: ForwardMsgType.ForwardReply, nodeId: master, requestId: 12345 });
    // A system value (membership) may not be forwarded: refused, never chosen.
    send(via, master, {
      msgType: ForwardMsgType.ForwardPropose,
      nodeId: via,
      smId: SYSTEM_SM_ID,
      timeoutMs: 1000,
      requestId: 777,
    });
    const replies: Message[] = [];
    h.world.onSend = (from, _to, m) => {
      if (from === master && m.kind === 'forward') replies.push(m);
      return true;
    };
    await h.until(
      () =>
        h.node(master).forwardingCounters.malformed === 2 &&
        h.node(via).forwardingCounters.repliesUnknown === 2,
      'the drops',
    );
    const refusal = replies.find((m) => m.kind === 'forward' && m.msg.requestId === 777);
    expect(refusal?.kind === 'forward' && refusal.msg.errorCode).toBe('E_BAD_ARGUMENT');
    expect(refusal?.kind === 'forward' && refusal.msg.flag & ForwardFlag.NeverChosen).toBeTruthy();
    await h.stop();
  });

  it('refuses a write at once with E_NO_QUORUM when a majority is unreachable', async () => {
    const h = new Harness();
    await h.start();
    const master = await h.electedMaster();
    const lone = master === 1 ? 2 : 1;
    h.net.partition([[lone], [1, 2, 3].filter((id) => id !== lone)]);
    expect(h.node(lone).hasQuorum(G)).toBe(false);
    expect(h.node(master).hasQuorum(G)).toBe(true);
    const t0 = h.nowMs;
    const r = await h.settle(h.node(lone).propose(G, bytes('q'), { smId: SM }), 'the refusal');
    expect(r.error?.code).toBe('E_NO_QUORUM');
    expect(h.nowMs - t0).toBe(0);
    expect(h.node(lone).forwardingCounters.noQuorum).toBe(1);
    await h.stop();
  });
});
