// The Learner driven message by message, as the group drives it (packages/paxos/src/group.ts):
// handle(msg); once a value is learned the host executes it and calls newInstance(); then
// flushAck() and pumpSender(). Messages go on a FIFO wire between test nodes; time is virtual.
// One idea, kept in one file though it passes 600 lines (issue 21): the learner's scenarios over
// one test wire.
import { chainChecksum } from '@tspaxos/crc-wasm';
import { MemoryLogStore, StorageError } from '@tspaxos/storage';
import {
  type LentFrame,
  type PaxosMsg,
  PaxosMsgFlag,
  PaxosMsgType as T,
  paxosMsg,
} from '@tspaxos/transport';
import { describe, expect, it } from 'vitest';
import { type Ballot, NULL_BALLOT } from '@tspaxos/core';
import type { LearnerEvent } from './catch-up';
import type { LearnerPort } from './port';
import { Learner } from './learner';
import { type LearnerOptions, PHXPAXOS_LEARNER_OPTIONS } from './options';

const GROUP = 0;
/** random() is 0.5: the AskforLearn timer fires every 2500 + 250 ms. */
const ASK_EVERY_MS = 2750;
const TYPE_NAME = new Map<number, string>(Object.entries(T).map(([name, n]) => [n, name]));
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const values = (n: number): string[] => Array.from({ length: n }, (_, i) => `v${i}`);
const CHOSEN_BALLOT = { promiseId: 1, promiseNodeId: 9, acceptedId: 1, acceptedNodeId: 9 };

/** Virtual time: timers run only when the test advances the clock. */
class FakeClock {
  nowMs = 0;
  private readonly timers: Array<{ atMs: number; fn: () => void; live: boolean }> = [];

  schedule(delayMs: number, fn: () => void): () => void {
    const timer = { atMs: this.nowMs + delayMs, fn, live: true };
    this.timers.push(timer);
    return () => (timer.live = false);
  }

  advanceTo(ms: number): void {
    for (;;) {
      const due = this.timers
        .filter((t) => t.live && t.atMs <= ms)
        .sort((a, b) => a.atMs - b.atMs)[0];
      if (due === undefined) break;
      due.live = false;
      this.nowMs = due.atMs;
      due.fn();
    }
    this.nowMs = ms;
  }
}

type Sent = { from: number; to: number; msg: PaxosMsg };

interface NodeSetup {
  peers: number[];
  /** Values this node has learned already: its now instance id is their count. */
  log?: string[];
  /** Instances below it are deleted (compacted) from this node's log. */
  minChosen?: number;
  followTo?: number;
  /** What the host hands out as its encoded system and master variables (default: none). */
  systemVariables?: Uint8Array;
  masterVariables?: Uint8Array;
  /** What this node's acceptor accepted for its current instance. */
  accepted?: { ballot: Ballot; value: string; checksum: number };
  /** false: the host leaves a learned value unexecuted (as after a failed execute). */
  execute?: boolean;
  options?: Partial<LearnerOptions>;
  /** The host's paxosActiveAtMs port (the group's last Paxos message); absent: never busy. */
  paxosActiveAtMs?: () => number;
  /** Virtual ms each record read from the store costs (the sender's turns are timed). */
  readCostMs?: number;
  /** The host's applySystem: true when it adopted a peer's system variables (default: never). */
  applySystem?: (bytes: Uint8Array) => boolean;
  /** The host's releaseLentFrames: nothing holds a value once stored and executed. */
  releaseLentFrames?: boolean;
}

/** A cluster of learners on a FIFO wire; nodes not added drop what is sent to them. */
class Net {
  readonly clock = new FakeClock();
  /** Everything ever sent, in order. */
  readonly sent: Sent[] = [];
  private queue: Sent[] = [];
  /** Work in the nodes' idle time (the sender's slices): it runs only when the wire is quiet. */
  private readonly idle: Array<{ fn: () => void; live: boolean }> = [];
  private readonly nodes = new Map<number, TestNode>();

  /** A node whose log holds setup.log (chained checksums), compacted below setup.minChosen. */
  async add(id: number, setup: NodeSetup): Promise<TestNode> {
    const store = new MemoryLogStore();
    let checksum = 0;
    const records = (setup.log ?? []).map((v, instanceId) => {
      checksum = chainChecksum(instanceId, checksum, bytes(v));
      return { ...CHOSEN_BALLOT, instanceId, value: bytes(v), checksum };
    });
    await store.putMany(GROUP, records, { sync: true });
    if (setup.minChosen !== undefined) {
      await store.setMinChosenInstanceId(GROUP, setup.minChosen);
      store.deleteBelow(GROUP, setup.minChosen, setup.minChosen);
    }
    const node = new TestNode(id, store, setup, this, checksum);
    this.nodes.set(id, node);
    return node;
  }

  send(from: number, to: number, msg: PaxosMsg): void {
    this.sent.push({ from, to, msg });
    this.queue.push({ from, to, msg });
  }

  scheduleIdle(fn: () => void): () => void {
    const entry = { fn, live: true };
    this.idle.push(entry);
    return () => (entry.live = false);
  }

  /**
   * Delivers queued messages in order, and runs idle work (one slice at a time) only when no
   * message is queued, until both are empty (as the IOLoop's idle lane does).
   */
  async run(): Promise<void> {
    for (let steps = 0; this.queue.length > 0 || this.idle.length > 0; steps++) {
      expect(steps).toBeLessThan(10_000);
      if (this.queue.length === 0) {
        const entry = this.idle.shift()!;
        if (entry.live) entry.fn();
        continue;
      }
      const { to, msg } = this.queue.shift()!;
      await this.nodes.get(to)?.deliver(msg);
    }
  }

  of(type: number, to?: number): PaxosMsg[] {
    return this.sent
      .filter((s) => s.msg.msgType === type && (to === undefined || s.to === to))
      .map((s) => s.msg);
  }

  /** "from→to Type instanceId", one line per message sent. */
  trace(): string[] {
    return this.sent.map(
      (s) => `${s.from}→${s.to} ${TYPE_NAME.get(s.msg.msgType)} ${s.msg.instanceId}`,
    );
  }
}

/** One node's learner with a host that does what Instance does around it. */
class TestNode {
  /** "instanceId:value" of every value executed, in order. */
  readonly learned: string[] = [];
  /** Instance ids the learner wrote to the store. */
  readonly writes: number[] = [];
  readonly checkpointNeeded: Array<{ from: number; peerMinChosenInstanceId: number }> = [];
  readonly followers: number[] = [];
  readonly events: LearnerEvent[] = [];
  /** putMany calls: one per learned batch. */
  putManyCalls = 0;
  /** Replaced by restartFromCheckpoint, as the group replaces it after an install. */
  learner: Learner;
  private readonly host: LearnerPort;

  constructor(
    readonly id: number,
    readonly store: MemoryLogStore,
    private readonly setup: NodeSetup,
    net: Net,
    public lastChecksum: number,
  ) {
    const host: LearnerPort = {
      nodeId: id,
      group: GROUP,
      store,
      acceptor: {
        acceptedState: () => {
          const a = setup.accepted ?? { ballot: NULL_BALLOT, value: '', checksum: 0 };
          return { ...a, value: bytes(a.value) };
        },
        promiseBallot: () => NULL_BALLOT,
      },
      variables: {
        system: () => setup.systemVariables,
        master: () => setup.masterVariables,
        applySystem: (bytes) => setup.applySystem?.(bytes) ?? false,
      },
      membership: {
        peers: () => setup.peers,
        followers: () => this.followers,
        addFollower: (nodeId) => this.followers.push(nodeId),
        followToNodeId: () => setup.followTo,
      },
      runtime: {
        now: () => net.clock.nowMs,
        random: () => 0.5,
        schedule: (delayMs, fn) => net.clock.schedule(delayMs, fn),
        scheduleIdle: (fn) => net.scheduleIdle(fn),
        event: () => {},
        ...(setup.paxosActiveAtMs && { paxosActiveAtMs: setup.paxosActiveAtMs }),
      },
      send: (to, msg) => net.send(id, to, msg),
      lastChecksum: () => this.lastChecksum,
      minChosenInstanceId: () => store.getMinChosenInstanceId(GROUP),
      needCheckpoint: (from, peerMinChosenInstanceId) =>
        this.checkpointNeeded.push({ from, peerMinChosenInstanceId }),
      notify: (e) => this.events.push(e),
      ...(setup.releaseLentFrames !== undefined && { releaseLentFrames: setup.releaseLentFrames }),
    };
    const cost = setup.readCostMs;
    if (cost !== undefined) {
      const range = store.range.bind(store);
      store.range = (group, from, to) => {
        const it = range(group, from, to);
        return {
          next: () => {
            net.clock.nowMs += cost;
            return it.next();
          },
          [Symbol.iterator]() {
            return this;
          },
        } as ReturnType<typeof store.range>;
      };
    }
    this.host = host;
    this.learner = new Learner(host, setup.options);
    this.learner.instanceId = setup.log?.length ?? 0;
    const put = store.put.bind(store);
    store.put = (group, record, opts) => {
      this.writes.push(record.instanceId);
      return put(group, record, opts);
    };
    const putMany = store.putMany.bind(store);
    store.putMany = (group, records, opts) => {
      this.putManyCalls++;
      for (const r of records) this.writes.push(r.instanceId);
      return putMany(group, records, opts);
    };
  }

  /**
   * Group.restartFromCheckpoint: an install left the log starting at `instanceId` with the chain
   * value `chain` before it; a new learner starts there with what the old one handed over.
   */
  restartFromCheckpoint(instanceId: number, chain: number): void {
    this.lastChecksum = chain;
    this.learner = new Learner(this.host, this.setup.options, {}, this.learner.handOver());
    this.learner.instanceId = instanceId;
    this.learner.start();
  }

  /** Instance.receiveForLearner + afterLearnerMessage: executes every learned instance in order. */
  async deliver(msg: PaxosMsg, lent?: LentFrame): Promise<void> {
    await this.learner.handle(msg, lent);
    const { state } = this.learner;
    while (state.isLearned && this.setup.execute !== false) {
      this.learned.push(`${this.learner.instanceId}:${text(state.value)}`);
      this.lastChecksum = state.newChecksum;
      this.learner.newInstance();
    }
    this.learner.flushAck();
    this.learner.pumpSender();
  }
}

const askforLearn = (from: number, instanceId: number, followTo = 0): PaxosMsg =>
  paxosMsg({ msgType: T.AskforLearn, nodeId: from, instanceId, proposalNodeId: followTo });
const nowInstanceId = (from: number, instanceId: number, nowInstanceId: number): PaxosMsg =>
  paxosMsg({ msgType: T.SendNowInstanceID, nodeId: from, instanceId, nowInstanceId });
const STREAMED = { msgType: T.SendLearnValue, flag: PaxosMsgFlag.SendLearnValueNeedAck };
const learnValue = (from: number, instanceId: number, value: string): PaxosMsg =>
  paxosMsg({ ...STREAMED, nodeId: from, instanceId, value: bytes(value) });

describe('Learner: asking to learn', () => {
  it('asks every peer at start, then again each time its jittered timer fires', async () => {
    const net = new Net();
    const a = await net.add(1, { peers: [2, 3], log: values(3) });
    a.learner.start();
    expect(net.trace()).toEqual(['1→2 AskforLearn 3', '1→3 AskforLearn 3']);
    net.clock.advanceTo(ASK_EVERY_MS - 1);
    expect(net.of(T.AskforLearn)).toHaveLength(2);
    net.clock.advanceTo(ASK_EVERY_MS);
    expect(net.of(T.AskforLearn)).toHaveLength(4);
    net.clock.advanceTo(2 * ASK_EVERY_MS);
    expect(net.of(T.AskforLearn)).toHaveLength(6);
    a.learner.stop();
    net.clock.advanceTo(10 * ASK_EVERY_MS);
    expect(net.of(T.AskforLearn)).toHaveLength(6);
  });

  it('a follower asks on the follower interval and names the node it follows', async () => {
    const net = new Net();
    const f = await net.add(9, { peers: [1, 2], followTo: 2 });
    f.learner.start();
    net.clock.advanceTo(2000 + 500 - 1);
    expect(net.of(T.AskforLearn)).toHaveLength(2);
    net.clock.advanceTo(2000 + 500);
    expect(net.of(T.AskforLearn).map((m) => m.proposalNodeId)).toEqual([2, 2, 2, 2]);
  });

  it('a peer ahead answers SendNowInstanceID with its now and min chosen ids; one not ahead stays silent', async () => {
    const net = new Net();
    const b = await net.add(2, { peers: [1, 3], log: values(10) });
    await b.deliver(askforLearn(3, 10));
    await b.deliver(askforLearn(3, 12));
    expect(net.sent).toEqual([]);
    await b.deliver(askforLearn(1, 4));
    expect(net.trace()).toEqual(['2→1 SendNowInstanceID 4']);
    expect(net.sent[0]!.msg).toMatchObject({ nowInstanceId: 10, minChosenInstanceId: 0 });
    expect(b.learner.sender.progress(1)).toMatchObject({ phase: 'prepared', beginInstanceId: 4 });
    expect(b.learner.seenInstanceId).toBe(12);
  });

  // Issue 17, finding 9a: isLatest() gates proposing (Instance.checkNewValue). One peer's
  // inflated now instance id (a bug, a damaged meta) used to stop every node that heard it from
  // proposing for good; now a claim counts until a stream from its member stalls short of it.
  it('an inflated now instance id stops proposing for one stall at most; a majority ahead always counts', async () => {
    const net = new Net();
    const a = await net.add(1, { peers: [2, 3], log: values(5) });
    expect(a.learner.isLatest()).toBe(true);
    await a.deliver(askforLearn(2, 1_000_000_000)); // node 2 claims a now id nobody reached
    await a.deliver(nowInstanceId(2, 5, 2_000_000_000));
    expect(a.learner.seenInstanceId).toBe(2_000_000_000);
    expect(a.learner.isLatest()).toBe(false); // behind node 2, as far as we know: learn first
    expect(net.of(T.ComfirmAskforLearn, 2)).toHaveLength(1);
    net.clock.advanceTo(1000); // node 2 streams nothing (learnerStallMs)
    expect(a.learner.counters.stalls).toBe(1);
    expect(a.learner.isLatest()).toBe(true);
    expect(a.learner.quorumSeenInstanceId).toBe(5);
    await a.deliver(nowInstanceId(2, 5, 2_000_000_000)); // the same claim again: still not backed
    expect(a.learner.isLatest()).toBe(true);
    // A second member ahead makes a majority (2 of 3): behind now, learn first.
    await a.deliver(askforLearn(3, 12));
    expect(a.learner.quorumSeenInstanceId).toBe(12);
    expect(a.learner.isLatest()).toBe(false);
    // A report from a node that is not a member (a follower) counts for nothing.
    const b = await net.add(4, { peers: [2, 3], log: values(5) });
    await b.deliver(askforLearn(9, 12));
    expect(b.learner.isLatest()).toBe(true);
    await b.deliver(askforLearn(2, 12)); // a member's claim, not disproved: behind
    expect(b.learner.isLatest()).toBe(false);
  });

  // Issue 17 finding 3: an asker that installed a checkpoint forgot its master state, and its
  // membership is as old as its state before the install. Only a peer level with it or ahead
  // knows every operation it passed: that peer sends both, whatever the gap; one behind, nothing.
  it('to an asker waiting for master variables: master and system variables from a peer not behind it, whatever the gap', async () => {
    const net = new Net();
    const systemVariables = bytes('{"version":7,"members":[1,2,3]}');
    const masterVariables = bytes('{"masterNodeId":2,"version":8,"leaseMs":10000}');
    const b = await net.add(2, {
      peers: [1, 3],
      log: values(10),
      systemVariables,
      masterVariables,
    });
    const ask = (from: number, instanceId: number): PaxosMsg =>
      paxosMsg({
        msgType: T.AskforLearn,
        nodeId: from,
        instanceId,
        flag: PaxosMsgFlag.AskMasterVariables,
      });
    await b.deliver(ask(3, 12)); // the asker is ahead of me: my variables miss what it passed
    expect(net.sent).toEqual([]);
    await b.deliver(ask(3, 10)); // level with me
    await b.deliver(ask(1, 8)); // behind me by 2, far below the 50 of the usual gap rule
    expect(net.trace()).toEqual(['2→3 SendNowInstanceID 10', '2→1 SendNowInstanceID 8']);
    for (const { msg } of net.sent)
      expect(msg).toMatchObject({ nowInstanceId: 10, systemVariables, masterVariables });
    // An ordinary ask within the gap: the master variables ride along, the membership does not.
    await b.deliver(askforLearn(4, 7));
    expect(net.sent.at(-1)!.msg.systemVariables).toHaveLength(0);
    expect(net.sent.at(-1)!.msg.masterVariables).toEqual(masterVariables);
  });

  it('confirms to exactly one peer that is ahead, declines the others, and moves on after a stall', async () => {
    const net = new Net();
    const a = await net.add(1, { peers: [2, 3] });
    a.learner.start();
    await a.deliver(nowInstanceId(3, 5, 12)); // answers an old ask (instance 5 ≠ my 0)
    await a.deliver(nowInstanceId(3, 0, 0)); // not ahead of me
    expect(net.of(T.ComfirmAskforLearn)).toEqual([]);
    await a.deliver(nowInstanceId(2, 0, 10));
    await a.deliver(nowInstanceId(3, 0, 12));
    expect(net.of(T.ComfirmAskforLearn, 2)).toMatchObject([{ nodeId: 1, instanceId: 0, flag: 0 }]);
    // Node 3 prepared a stream too: it is told at once that it will not be used.
    expect(net.of(T.ComfirmAskforLearn, 3)).toMatchObject([
      { instanceId: 0, flag: PaxosMsgFlag.ComfirmDecline },
    ]);
    expect(a.learner.counters.declinesSent).toBe(1);
    net.clock.advanceTo(1000 - 1);
    expect(net.of(T.AskforLearn)).toHaveLength(2);
    net.clock.advanceTo(1000); // the stream never came (learnerStallMs): ask everyone again
    expect(net.of(T.AskforLearn)).toHaveLength(4);
    expect(a.learner.counters.stalls).toBe(1);
    await a.deliver(nowInstanceId(3, 0, 12));
    expect(net.of(T.ComfirmAskforLearn, 3).map((m) => m.flag)).toEqual([
      PaxosMsgFlag.ComfirmDecline,
      0,
    ]);
  });
});

describe('Learner: catching up from a peer', () => {
  it('learns a batched stream in order, chains the checksums, one putMany and one ack per batch', async () => {
    const net = new Net();
    const log = values(30);
    const a = await net.add(1, { peers: [2] });
    const b = await net.add(2, { peers: [1], log });
    a.learner.start();
    await net.run();
    expect(net.trace().slice(0, 4)).toEqual([
      '1→2 AskforLearn 0',
      '2→1 SendNowInstanceID 0',
      '1→2 ComfirmAskforLearn 0',
      '2→1 SendLearnValue 0',
    ]);
    expect(a.learned).toEqual(log.map((v, i) => `${i}:${v}`));
    expect(a.writes).toEqual(log.map((_, i) => i));
    expect(a.learner.instanceId).toBe(30);
    for (let i = 0; i < 30; i++)
      expect(a.store.get(GROUP, i)?.checksum).toBe(b.store.get(GROUP, i)?.checksum);
    expect(a.lastChecksum).toBe(b.lastChecksum);
    expect(net.of(T.SendLearnValue, 1).map((m) => m.batch.length)).toEqual([30]);
    expect(a.putManyCalls).toBe(1);
    expect(net.of(T.SendLearnValueAck, 2).map((m) => m.instanceId)).toEqual([30]);
    expect(b.learner.sender.activeCount).toBe(0);
    expect(b.learner.sender.counters).toMatchObject({ valuesSent: 30, batchesSent: 1 });
  });

  it('with PhxPaxos options: one value per frame, 22 in flight, acks every receiverAckLead', async () => {
    const net = new Net();
    const log = values(30);
    const phx = { ...PHXPAXOS_LEARNER_OPTIONS };
    const a = await net.add(1, { peers: [2], options: phx });
    const b = await net.add(2, { peers: [1], log, options: phx });
    a.learner.start();
    await net.run();
    expect(a.learned).toEqual(log.map((v, i) => `${i}:${v}`));
    expect(net.of(T.SendLearnValue, 1).map((m) => m.batch.length)).toEqual(log.map(() => 1));
    // 30 values is more than the window (21): the stream went on only through acks.
    expect(net.of(T.SendLearnValueAck, 2).map((m) => m.instanceId)).toEqual([
      4, 8, 12, 16, 20, 24, 28, 30,
    ]);
    expect(b.learner.sender.counters.valuesSent).toBe(30);
  });

  // Issue 17, finding 4: with values of 2 MiB and more, fewer than receiverAckLead values fit the
  // sender's byte window; a receiver that acked one-value frames only every receiverAckLead
  // instances left the stream waiting for its stall timer, one value per learnerStallMs.
  it.each([3, 5])(
    'streams 20 values of %i MiB without a stall: the receiver acks by bytes as well as by count',
    async (mib) => {
      const net = new Net();
      const log = Array.from({ length: 20 }, (_, i) => `${i}:`.padEnd(mib * 1024 * 1024, 'x'));
      const a = await net.add(1, { peers: [2] });
      await net.add(2, { peers: [1], log });
      a.learner.start();
      // Virtual time moves only while the wire is quiet: a stream that waits for an ack it will
      // never get sits here until the stall timer asks everyone again.
      const deadlineMs = 60_000;
      await net.run();
      while (a.learner.instanceId < log.length && net.clock.nowMs < deadlineMs) {
        net.clock.advanceTo(net.clock.nowMs + 100);
        await net.run();
      }
      expect(a.learner.instanceId).toBe(log.length);
      expect(a.learned.map((s) => s.slice(0, s.indexOf('x')))).toEqual(
        log.map((v, i) => `${i}:${v.slice(0, v.indexOf('x'))}`),
      );
      expect(a.learner.counters.stalls).toBe(0);
      // Each value is larger than receiverAckLeadBytes: every frame was acked on its own.
      expect(net.of(T.SendLearnValue, 1).map((m) => m.batch.length)).toEqual(log.map(() => 1));
      expect(net.of(T.SendLearnValueAck, 2)).toHaveLength(log.length);
      expect(net.clock.nowMs).toBe(0);
    },
    // 60–100 MB through the chain check and the memory store: ~5 s alone, ~60 s at load 30.
    180_000,
  );

  it('checks the chain across a batch: a value whose checksum breaks it stores nothing', async () => {
    const net = new Net();
    const a = await net.add(1, { peers: [2], log: values(2) });
    const b = await net.add(2, { peers: [1], log: values(6) });
    const batch = [2, 3, 4, 5].map((i) => {
      const r = b.store.get(GROUP, i)!;
      return { proposalId: 1, proposalNodeId: 9, checksum: r.checksum, value: r.value };
    });
    const msg = (entries: typeof batch) =>
      paxosMsg({
        ...STREAMED,
        nodeId: 2,
        instanceId: 2,
        nowInstanceId: 6,
        lastChecksum: a.lastChecksum,
        batch: entries,
      });
    const tampered = batch.map((e, i) => (i === 2 ? { ...e, value: bytes('evil') } : e));
    await a.deliver(msg(tampered));
    expect(a.writes).toEqual([]);
    expect(a.learned).toEqual([]);
    expect(a.learner.counters.checksumMismatches).toBe(1);
    expect(net.of(T.SendLearnValueAck)).toEqual([]);
    await a.deliver(msg(batch));
    expect(a.learned).toEqual(['2:v2', '3:v3', '4:v4', '5:v5']);
    expect(net.of(T.SendLearnValueAck).map((m) => m.instanceId)).toEqual([6]);
    // A batch that overlaps what we have: only the new part is stored.
    const more = [4, 5].map((i) => ({ ...batch[i - 2]! }));
    await a.deliver(paxosMsg({ ...STREAMED, nodeId: 2, instanceId: 4, batch: more }));
    expect(a.writes).toEqual([2, 3, 4, 5]);
  });

  it("releases a batch's receive buffer once its last value is executed, a useless one at once", async () => {
    const net = new Net();
    const setup: NodeSetup = {
      peers: [2],
      log: values(2),
      execute: false,
      releaseLentFrames: true,
    };
    const a = await net.add(1, setup);
    const b = await net.add(2, { peers: [1], log: values(6) });
    const batch = [2, 3, 4, 5].map((i) => {
      const r = b.store.get(GROUP, i)!;
      return { proposalId: 1, proposalNodeId: 9, checksum: r.checksum, value: r.value };
    });
    const msg = (instanceId: number, entries: typeof batch) =>
      paxosMsg({
        ...STREAMED,
        nodeId: 2,
        instanceId,
        lastChecksum: a.lastChecksum,
        batch: entries,
      });
    const released: string[] = [];
    const lent = (name: string): LentFrame => ({ release: () => released.push(name) });
    // A batch that breaks the chain is not learned: its buffer goes back at once.
    await a.deliver(
      msg(
        2,
        batch.map((e, i) => (i === 1 ? { ...e, value: bytes('evil') } : e)),
      ),
      lent('diverged'),
    );
    expect(released).toEqual(['diverged']);
    await a.deliver(msg(2, batch), lent('batch'));
    expect(a.writes).toEqual([2, 3, 4, 5]);
    // Executed one by one (the host's execute, then newInstance): held until the last one is.
    for (const instanceId of [2, 3, 4]) {
      expect(a.learner.instanceId).toBe(instanceId);
      expect(a.learner.state.isLearned).toBe(true);
      a.learner.newInstance();
    }
    expect(released).toEqual(['diverged']);
    // All behind what is learned, or ahead of it: nothing of them is kept.
    await a.deliver(msg(3, batch.slice(1)), lent('behind'));
    await a.deliver(msg(9, batch.slice(0, 1)), lent('ahead'));
    expect(released).toEqual(['diverged', 'behind', 'ahead']);
    a.learner.newInstance(); // instance 5 executed
    expect(released).toEqual(['diverged', 'behind', 'ahead', 'batch']);

    // A host that cannot promise nothing holds a value (releaseLentFrames false): never released.
    const c = await net.add(3, { peers: [2], log: values(2) });
    await c.deliver(msg(2, batch), lent('kept'));
    expect(c.learned).toEqual(['2:v2', '3:v3', '4:v4', '5:v5']);
    expect(released).not.toContain('kept');
  });

  it('acks a gap at once (a NACK) and only once per gap', async () => {
    const net = new Net();
    const a = await net.add(1, { peers: [2] });
    const entry = { proposalId: 1, proposalNodeId: 9, checksum: 0, value: bytes('x') };
    for (const i of [5, 7, 9])
      await a.deliver(paxosMsg({ ...STREAMED, nodeId: 2, instanceId: i, batch: [entry, entry] }));
    expect(net.of(T.SendLearnValueAck)).toMatchObject([
      { instanceId: 0, flag: PaxosMsgFlag.AckGap },
    ]);
    expect(a.learner.counters).toMatchObject({ nacksSent: 1, aheadMessages: 3 });
    net.clock.advanceTo(1000); // the rewound stream never came either: say it again
    await a.deliver(paxosMsg({ ...STREAMED, nodeId: 2, instanceId: 11, batch: [entry] }));
    expect(a.learner.counters.nacksSent).toBe(2);
  });

  it('pushes its next AskforLearn back while a stream is alive, but not for a value it cannot use', async () => {
    const net = new Net();
    const a = await net.add(1, { peers: [2] });
    a.learner.start();
    net.clock.advanceTo(1000);
    await a.deliver(learnValue(2, 0, 'v0'));
    net.clock.advanceTo(1000 + ASK_EVERY_MS - 1);
    expect(net.of(T.AskforLearn)).toHaveLength(1);
    net.clock.advanceTo(1000 + ASK_EVERY_MS);
    expect(net.of(T.AskforLearn)).toHaveLength(2);
    net.clock.advanceTo(2000 + ASK_EVERY_MS);
    await a.deliver(learnValue(2, 5, 'v5')); // ahead of instance 1
    net.clock.advanceTo(1000 + 2 * ASK_EVERY_MS);
    expect(net.of(T.AskforLearn)).toHaveLength(3);
  });

  it('ignores values ahead of its instance: neither learned nor kept for later', async () => {
    const net = new Net();
    const a = await net.add(1, { peers: [2] });
    await a.deliver(learnValue(2, 1, 'v1'));
    await a.deliver(learnValue(2, 2, 'v2'));
    expect(a.learned).toEqual([]);
    await a.deliver(learnValue(2, 0, 'v0'));
    expect(a.learned).toEqual(['0:v0']);
    expect(a.store.get(GROUP, 1)).toBeUndefined();
    await a.deliver(learnValue(2, 1, 'v1'));
    expect(a.learned).toEqual(['0:v0', '1:v1']);
    expect(a.writes).toEqual([0, 1]);
    // One gap ack for the values ahead (a NACK), none for the two learned: not yet 4 instances.
    expect(net.of(T.SendLearnValueAck)).toMatchObject([
      { instanceId: 0, flag: PaxosMsgFlag.AckGap },
    ]);
  });

  it('learns each instance once: a duplicate or an already learned value changes nothing', async () => {
    const net = new Net();
    const a = await net.add(1, { peers: [2] });
    await a.deliver(learnValue(2, 0, 'v0'));
    await a.deliver(learnValue(2, 1, 'v1'));
    await a.deliver(learnValue(2, 0, 'other'));
    await a.deliver(learnValue(3, 1, 'v1'));
    expect(a.learned).toEqual(['0:v0', '1:v1']);
    expect(a.writes).toEqual([0, 1]);
    expect(text(a.store.get(GROUP, 0)!.value)).toBe('v0');
    expect(a.learner.counters.lagMessages).toBe(2);

    // Learned but not yet executed (the host retries): a second copy is not learned again.
    const c = await net.add(3, { peers: [2], execute: false });
    await c.deliver(learnValue(2, 0, 'v0'));
    await c.deliver(learnValue(2, 0, 'other'));
    expect(c.writes).toEqual([0]);
    expect(text(c.learner.state.value)).toBe('v0');
    expect(c.learner.counters.valuesLearnedFromPeers).toBe(1);
  });

  it('takes the one value a busy peer sends unasked when it is one behind, and acks nobody', async () => {
    const net = new Net();
    const b = await net.add(2, {
      peers: [1, 3],
      log: values(10),
      options: { maxConcurrentLearners: 1 },
    });
    await b.deliver(askforLearn(3, 0));
    expect(b.learner.sender.progress(3)?.phase).toBe('prepared');

    const far = await net.add(4, { peers: [2], log: values(8) });
    far.learner.start();
    await net.run();
    expect(net.of(T.SendLearnValue, 4)).toEqual([]); // two behind: waits for the sender

    const a = await net.add(1, { peers: [2], log: values(9) });
    a.learner.start();
    await net.run();
    expect(net.of(T.SendNowInstanceID, 1)).toEqual([]);
    expect(net.of(T.SendLearnValue, 1)).toMatchObject([{ instanceId: 9, flag: 0 }]);
    expect(a.learned).toEqual(['9:v9']);
    expect(a.lastChecksum).toBe(b.lastChecksum);
    expect(net.of(T.ComfirmAskforLearn)).toEqual([]);
    expect(net.of(T.SendLearnValueAck)).toEqual([]);
    expect(b.learner.counters.senderBusy).toBe(2);
  });

  it('counts a record it cannot read (damaged, or a failed disk read) and sends nothing; any other read error goes up', async () => {
    const net = new Net();
    const b = await net.add(2, {
      peers: [1, 3],
      log: values(10),
      options: { maxConcurrentLearners: 1 },
    });
    await b.deliver(askforLearn(3, 0)); // busy with node 3 from now on
    const get = b.store.get.bind(b.store);
    let failure: Error | undefined = new StorageError('E_CORRUPT_RECORD', 'record 9: bad CRC');
    b.store.get = (group, instanceId) => {
      if (instanceId === 9 && failure !== undefined) throw failure;
      return get(group, instanceId);
    };
    // One behind: the busy peer would send the single value, but it cannot read it.
    await b.deliver(askforLearn(1, 9));
    expect(net.of(T.SendLearnValue, 1)).toEqual([]);
    expect(b.learner.counters.readFailures).toBe(1);
    expect(b.learner.status().lastReadFailure).toEqual({
      instanceId: 9,
      code: 'E_CORRUPT_RECORD',
      message: 'record 9: bad CRC',
    });
    failure = new StorageError('E_IO', 'the disk failed a read');
    await b.deliver(askforLearn(1, 9));
    expect(b.learner.status().counters.readFailures).toBe(2);
    expect(b.learner.status().lastReadFailure?.code).toBe('E_IO');
    // Not a condition of the disk: a bug, it reaches the caller (Instance counts a task error).
    failure = new StorageError('E_CLOSED', 'the store is closed');
    await expect(b.deliver(askforLearn(1, 9))).rejects.toThrow(/the store is closed/);
    failure = new TypeError('a bug in the store');
    await expect(b.deliver(askforLearn(1, 9))).rejects.toThrow(TypeError);
    expect(b.learner.counters.readFailures).toBe(2);
    failure = undefined;
    await b.deliver(askforLearn(1, 9));
    expect(net.of(T.SendLearnValue, 1)).toMatchObject([{ instanceId: 9 }]);
  });

  it('does not learn, nor ack, a streamed value whose lastChecksum breaks its chain (design.md §2)', async () => {
    const net = new Net();
    const a = await net.add(1, { peers: [2], log: values(3) });
    const good = a.lastChecksum;
    expect(good).not.toBe(0);
    const bad = paxosMsg({
      ...STREAMED,
      nodeId: 2,
      instanceId: 3,
      value: bytes('v3'),
      lastChecksum: (good ^ 1) >>> 0,
    });
    await a.deliver(bad);
    expect(a.learned).toEqual([]);
    expect(a.writes).toEqual([]);
    expect(a.learner.counters.checksumMismatches).toBe(1);
    expect(net.of(T.SendLearnValueAck)).toEqual([]);
    // The same value with our chain's checksum is learned.
    await a.deliver(
      paxosMsg({ ...STREAMED, nodeId: 2, instanceId: 3, value: bytes('v3'), lastChecksum: good }),
    );
    expect(a.learned).toEqual(['3:v3']);
  });
});

// Issue 22: a fresh node beside two writers one instance apart learned everything node 1 had in
// 0.4 s, then waited learnerStallMs (1 s) for the last instance, which only node 2 had.
describe('Learner: finishing a catch-up at once', () => {
  const T_LOG = 100; // node 1's log; node 2 has one instance more

  async function apart(): Promise<{
    net: Net;
    fresh: TestNode;
    writers: TestNode[];
    log: string[];
  }> {
    const net = new Net();
    const log = values(T_LOG + 1);
    const writers = [
      await net.add(1, { peers: [2, 3], log: log.slice(0, T_LOG) }),
      await net.add(2, { peers: [1, 3], log }),
    ];
    const fresh = await net.add(3, { peers: [1, 2] });
    return { net, fresh, writers, log };
  }

  it('asks the peer that reported more as soon as the stream runs out: no stall re-ask', async () => {
    const { net, fresh, writers, log } = await apart();
    fresh.learner.start();
    await net.run(); // the clock never moves: no timer is needed to finish
    expect(fresh.learned).toEqual(log.map((v, i) => `${i}:${v}`));
    expect(fresh.learner.instanceId).toBe(T_LOG + 1);
    expect(fresh.learner.counters).toMatchObject({
      stalls: 0,
      askforLearnSent: 1,
      asksToPeerAhead: 1,
      declinesSent: 1,
      catchUpsStarted: 1,
      catchUpsFinished: 1,
    });
    // Node 1 answered first and streamed its 100; node 2 was declined, then asked alone at 100.
    expect(net.of(T.ComfirmAskforLearn, 2).map((m) => [m.instanceId, m.flag])).toEqual([
      [0, PaxosMsgFlag.ComfirmDecline],
      [T_LOG, 0],
    ]);
    expect(net.of(T.AskforLearn, 2).map((m) => m.instanceId)).toEqual([0, T_LOG]);
    expect(net.of(T.AskforLearn, 1).map((m) => m.instanceId)).toEqual([0]);
    expect(net.of(T.SendLearnValue, 3).map((m) => [m.nodeId, m.instanceId])).toEqual([
      [1, 0],
      [1, 32],
      [1, 96],
      [2, T_LOG],
    ]);
    const done = fresh.events.find((e) => e.type === 'caughtUp');
    expect(done).toMatchObject({ targetInstanceId: T_LOG + 1, learnedInstances: T_LOG + 1 });
    expect(done!.type === 'caughtUp' && done!.durationMs).toBeLessThan(1000 / 10); // learnerStallMs
    expect(net.clock.nowMs).toBe(0);
    // Both streams ran to their end and are free.
    for (const w of writers) expect(w.learner.sender.activeCount).toBe(0);
    expect(writers.map((w) => w.learner.sender.counters.valuesSent)).toEqual([T_LOG, 1]);
  });

  it('a lost ask to the peer ahead costs what it did before: the stall re-asks everyone', async () => {
    const { net, fresh, log } = await apart();
    const send = net.send.bind(net);
    let dropped = 0;
    net.send = (from, to, msg) => {
      if (msg.msgType === T.AskforLearn && msg.instanceId === T_LOG && dropped === 0) {
        dropped++;
        return;
      }
      send(from, to, msg);
    };
    fresh.learner.start();
    await net.run();
    expect(fresh.learner.instanceId).toBe(T_LOG);
    expect(fresh.learner.counters).toMatchObject({ asksToPeerAhead: 1, stalls: 0 });
    net.clock.advanceTo(1000); // learnerStallMs after the last value: ask everyone
    await net.run();
    expect(dropped).toBe(1);
    expect(fresh.learner.counters).toMatchObject({ stalls: 1, askforLearnSent: 2 });
    expect(fresh.learned).toEqual(log.map((v, i) => `${i}:${v}`));
  });

  it('a stream that is not out yet keeps its peer: the other peer is declined, not switched to', async () => {
    const net = new Net();
    const a = await net.add(1, { peers: [2, 3] });
    a.learner.start();
    await a.deliver(nowInstanceId(2, 0, 10));
    await a.deliver(nowInstanceId(3, 0, 12));
    // Node 3 reported 12, but node 2's stream has 10 to give: nobody is asked alone.
    await a.deliver(learnValue(2, 0, 'v0'));
    expect(a.learner.counters.asksToPeerAhead).toBe(0);
    expect(net.of(T.AskforLearn, 3)).toHaveLength(1);
  });

  // The proposer side of the same gap (issue 18's "master lags up to 2.5 s"): a node that did not
  // accept the chosen ballot of its instance learns nothing from ProposerSendSuccess; the winner's
  // next Prepare or Accept shows it ahead, and the group tells the learner (Learner.peerIsAt).
  it('a Prepare or Accept from a member ahead makes an idle learner ask that member at once', async () => {
    const net = new Net();
    const log = values(6);
    const a = await net.add(1, { peers: [2, 3], log: log.slice(0, 5) });
    await net.add(2, { peers: [1, 3], log });
    a.learner.peerIsAt(2, 5); // level with me: nothing to learn
    a.learner.peerIsAt(2, 6);
    a.learner.peerIsAt(2, 6); // the Accept after the Prepare: asked already
    expect(net.of(T.AskforLearn, 2).map((m) => m.instanceId)).toEqual([5]);
    // Not a report for isLatest(): a member that dies after its Prepare must not hold us back.
    expect(a.learner.seenInstanceId).toBe(0);
    await net.run();
    expect(a.learned).toEqual(['5:v5']);
    expect(a.learner.counters).toMatchObject({ asksToPeerAhead: 1, stalls: 0, askforLearnSent: 0 });
    expect(net.clock.nowMs).toBe(0);
    a.learner.peerIsAt(2, 6); // caught up: nothing to ask
    expect(a.learner.counters.asksToPeerAhead).toBe(1);
  });

  it('asks again for the same instance only after learnerStallMs', async () => {
    const net = new Net();
    const a = await net.add(1, { peers: [2, 3], log: values(5) });
    a.learner.peerIsAt(3, 9); // node 3 is not in this net: the ask is lost
    net.clock.advanceTo(999);
    a.learner.peerIsAt(3, 9);
    expect(a.learner.counters.asksToPeerAhead).toBe(1);
    net.clock.advanceTo(1000);
    a.learner.peerIsAt(3, 9);
    expect(a.learner.counters.asksToPeerAhead).toBe(2);
  });
});

/** The chain value after the first `n` values of `log` (what Net.add stores with them). */
const chainAfter = (log: string[], n: number): number =>
  log.slice(0, n).reduce((cs, v, i) => chainChecksum(i, cs, bytes(v)), 0);

/** Drops what `from` streams (SendLearnValue) at `instanceId` or past while `cut.on`. */
function cutStream(net: Net, instanceId: number): { on: boolean; dropped: number } {
  const cut = { on: true, dropped: 0 };
  const send = net.send.bind(net);
  net.send = (from, to, msg) => {
    if (cut.on && msg.msgType === T.SendLearnValue && msg.instanceId >= instanceId) {
      cut.dropped++;
      return;
    }
    send(from, to, msg);
  };
  return cut;
}

/** Advances the clock in steps, delivering everything at each, until `done` or `untilMs`. */
async function runUntil(net: Net, done: () => boolean, untilMs: number): Promise<void> {
  for (let t = net.clock.nowMs; !done() && t <= untilMs; t += 250) {
    net.clock.advanceTo(t);
    await net.run();
  }
}

// Started and finished pair up in every way a catch-up ends: the operator log's
// catch-up-started / catch-up-finished lines and the counters come from them (a CI run of
// apps/node's health test saw the finished lines not add up). The ending "switched to the member
// ahead when the stream ran out" is 'Learner: finishing a catch-up at once' above.
describe('Learner: every way a catch-up ends is counted once', () => {
  const caughtUp = (n: TestNode) => n.events.filter((e) => e.type === 'caughtUp');

  it('the stream completes: one catch-up, started and finished, with what it learned', async () => {
    const net = new Net();
    const a = await net.add(1, { peers: [2] });
    await net.add(2, { peers: [1], log: values(40) });
    a.learner.start();
    await net.run();
    expect(a.learner.instanceId).toBe(40);
    expect(a.learner.counters).toMatchObject({
      catchUpsStarted: 1,
      catchUpsFinished: 1,
      valuesLearnedFromPeers: 40,
    });
    expect(caughtUp(a)).toMatchObject([
      { fromNodeId: 2, beginInstanceId: 0, targetInstanceId: 40, learnedInstances: 40 },
    ]);
    expect(a.learner.status().catchUp).toBeUndefined();
  });

  it('the stream stalls and the re-ask brings the rest: still one catch-up', async () => {
    const net = new Net();
    const log = values(60);
    const a = await net.add(1, { peers: [2, 3] });
    await net.add(2, { peers: [1, 3], log });
    await net.add(3, { peers: [1, 2], log });
    const cut = cutStream(net, 32);
    a.learner.start();
    await net.run();
    expect(a.learner.instanceId).toBe(32);
    cut.on = false;
    await runUntil(net, () => a.learner.instanceId === 60, 20_000);
    expect(cut.dropped).toBeGreaterThan(0);
    expect(a.learner.instanceId).toBe(60);
    expect(a.learner.counters).toMatchObject({
      stalls: 1,
      catchUpsStarted: 1,
      catchUpsFinished: 1,
    });
    expect(caughtUp(a)).toMatchObject([
      { beginInstanceId: 0, targetInstanceId: 60, learnedInstances: 60 },
    ]);
  });

  it('a checkpoint install restarts the learner mid-catch-up: the catch-up and the counters go on to its end', async () => {
    const net = new Net();
    const log = values(60);
    const a = await net.add(1, { peers: [2] });
    await net.add(2, { peers: [1], log });
    const cut = cutStream(net, 32);
    a.learner.start();
    await net.run();
    expect(a.learner.counters).toMatchObject({ catchUpsStarted: 1, valuesLearnedFromPeers: 32 });
    // The install of a checkpoint of instance 44 leaves the log starting at 45.
    cut.on = false;
    a.restartFromCheckpoint(45, chainAfter(log, 45));
    await runUntil(net, () => a.learner.instanceId === 60, 20_000);
    expect(a.learner.instanceId).toBe(60);
    expect(a.learner.counters).toMatchObject({
      catchUpsStarted: 1,
      catchUpsFinished: 1,
      valuesLearnedFromPeers: 32 + 15,
    });
    expect(caughtUp(a)).toMatchObject([
      { beginInstanceId: 0, targetInstanceId: 60, learnedInstances: 32 + 15 },
    ]);
  });

  it('an install past the catch-up target ends the catch-up when the new learner starts', async () => {
    const net = new Net();
    const log = values(60);
    const a = await net.add(1, { peers: [2] });
    await net.add(2, { peers: [1], log });
    cutStream(net, 32);
    a.learner.start();
    await net.run();
    a.restartFromCheckpoint(60, chainAfter(log, 60));
    expect(a.learner.counters).toMatchObject({ catchUpsStarted: 1, catchUpsFinished: 1 });
    expect(caughtUp(a)).toMatchObject([{ targetInstanceId: 60, learnedInstances: 32 }]);
  });
});

describe('Learner: asking at once', () => {
  it("after adopting a peer's system variables it asks again at once, not at its next timer turn", async () => {
    const net = new Net();
    let adopted = 0;
    const a = await net.add(1, { peers: [2], applySystem: () => adopted++ === 0 });
    // More than variablesGapInstances ahead: node 2's answer carries its system variables.
    await net.add(2, { peers: [1], log: values(60), systemVariables: bytes('members') });
    a.learner.start();
    await net.run();
    expect(net.clock.nowMs).toBe(0);
    expect(net.of(T.AskforLearn, 2).map((m) => m.instanceId)).toEqual([0, 0]);
    expect(adopted).toBe(2); // the first answer changed them, the second did not
    expect(a.learner.instanceId).toBe(60);
  });

  it('learnNow asks every peer at once, at most once per learnerStallMs, and not while a stream is alive', async () => {
    const net = new Net();
    const a = await net.add(1, { peers: [2, 3], log: values(5) });
    a.learner.start(); // asks at 0: nobody hears it (node 2 is not up yet)
    await net.run();
    await net.add(2, { peers: [1, 3], log: values(8) });
    net.clock.advanceTo(500);
    expect(a.learner.learnNow()).toBe(false); // 500 ms after the last ask
    net.clock.advanceTo(1000);
    expect(a.learner.learnNow()).toBe(true);
    await net.run();
    expect(a.learner.instanceId).toBe(8);
    expect(a.learner.counters).toMatchObject({ askforLearnSent: 2, asksOnDemand: 1 });
    // A stream confirmed 500 ms ago (node 3 is not in this net: it sends nothing) is left alone.
    net.clock.advanceTo(2500);
    await a.deliver(nowInstanceId(3, 8, 20));
    net.clock.advanceTo(3000);
    expect(a.learner.learnNow()).toBe(false);
    // Silent for learnerStallMs: the stall timer asks everyone, and a call right after adds nothing.
    net.clock.advanceTo(3500);
    expect(a.learner.learnNow()).toBe(false);
    expect(a.learner.counters).toMatchObject({ stalls: 1, askforLearnSent: 3, asksOnDemand: 1 });
  });
});

describe('Learner: the peer has deleted what we need', () => {
  it('reports that it needs a checkpoint on each answer, instead of confirming and learning a hole', async () => {
    const net = new Net();
    const a = await net.add(1, { peers: [2], log: values(3) });
    const b = await net.add(2, { peers: [1], log: values(20), minChosen: 10 });
    expect(b.store.get(GROUP, 9)).toBeUndefined(); // compacted: instances 3 … 9 exist nowhere
    a.learner.start();
    await net.run();
    expect(net.of(T.SendNowInstanceID, 1)).toMatchObject([
      { instanceId: 3, nowInstanceId: 20, minChosenInstanceId: 10 },
    ]);
    expect(b.learner.sender.activeCount).toBe(0); // nothing prepared for a stream it cannot send
    expect(a.checkpointNeeded).toEqual([{ from: 2, peerMinChosenInstanceId: 10 }]);
    expect(net.of(T.ComfirmAskforLearn)).toEqual([]);

    net.clock.advanceTo(ASK_EVERY_MS);
    await net.run();
    expect(a.checkpointNeeded).toHaveLength(2);
    expect(net.of(T.SendLearnValue)).toEqual([]);
    expect(a.learned).toEqual([]);
    expect(a.learner.instanceId).toBe(3);
  });

  it('learns from the peer normally when its min chosen id is exactly our next instance', async () => {
    const net = new Net();
    const a = await net.add(1, { peers: [2], log: values(10) });
    await net.add(2, { peers: [1], log: values(15), minChosen: 10 });
    a.learner.start();
    await net.run();
    expect(a.checkpointNeeded).toEqual([]);
    expect(a.learned).toEqual(['10:v10', '11:v11', '12:v12', '13:v13', '14:v14']);
  });
});

describe('Learner: steady state (ProposerSendSuccess)', () => {
  const success = (from: number, instanceId: number, proposalId: number) =>
    paxosMsg({ msgType: T.ProposerSendSuccess, nodeId: from, instanceId, proposalId });

  it('learns what its acceptor accepted only for the same ballot, without a write, and forwards it to followers', async () => {
    const net = new Net();
    const accepted = { ballot: { proposalId: 5, nodeId: 2 }, value: 'v0', checksum: 777 };
    const a = await net.add(1, { peers: [2, 3], accepted });
    await a.deliver(askforLearn(9, 0, 1)); // node 9 follows me
    expect(a.followers).toEqual([9]);

    await a.deliver(success(2, 0, 4)); // lower proposal id
    await a.deliver(success(3, 0, 5)); // same id, another proposer
    await a.deliver(success(2, 1, 5)); // another instance
    expect(a.learned).toEqual([]);
    await a.deliver(success(2, 0, 5));
    expect(a.learned).toEqual(['0:v0']);
    expect(a.lastChecksum).toBe(777); // the acceptor's checksum, not recomputed
    expect(a.writes).toEqual([]);
    expect(a.learner.counters.valuesLearnedFromProposer).toBe(1);
    expect(net.of(T.SendLearnValue, 9)).toMatchObject([
      { nodeId: 1, instanceId: 0, proposalId: 5, proposalNodeId: 2, flag: 0 },
    ]);
    expect(text(net.of(T.SendLearnValue, 9)[0]!.value)).toBe('v0');
  });

  it('learns nothing from ProposerSendSuccess when its acceptor accepted nothing', async () => {
    const net = new Net();
    const a = await net.add(1, { peers: [2] });
    await a.deliver(success(0, 0, 0)); // a null ballot must not match the null accepted ballot
    expect(a.learned).toEqual([]);
    expect(a.learner.state.isLearned).toBe(false);
  });
});

describe('Learner: the stream yields to the group Paxos traffic', () => {
  /**
   * Node 1 learns `count` values from node 2, whose last Paxos message was `activeAgoMs` ago
   * (undefined: never) and whose record reads cost `readCostMs` virtual ms each.
   */
  const run = async (
    count: number,
    readCostMs: number | undefined,
    activeAgoMs: number | undefined,
    options?: Partial<LearnerOptions>,
  ) => {
    const net = new Net();
    const log = values(count);
    const a = await net.add(1, { peers: [2] });
    const b = await net.add(2, {
      peers: [1],
      log,
      ...(readCostMs !== undefined && { readCostMs }),
      ...(options && { options }),
      ...(activeAgoMs !== undefined && { paxosActiveAtMs: () => net.clock.nowMs - activeAgoMs }),
    });
    a.learner.start();
    await net.run();
    // The sender pauses between turns (senderLoopShare) on the virtual clock.
    for (let i = 0; i < 1000 && a.learner.instanceId < log.length; i++) {
      net.clock.advanceTo(net.clock.nowMs + 1);
      await net.run();
    }
    expect(a.learned).toEqual(log.map((v, i) => `${i}:${v}`));
    return {
      sizes: net.of(T.SendLearnValue, 1).map((m) => m.batch.length),
      sender: b.learner.sender,
    };
  };
  // Each record read costs 0.01 virtual ms: a 4 ms turn reads ~400 records; a 0.1 ms busy turn
  // is cut at the first clock check (every 64 records).
  const stream = (busy: boolean) => run(3000, 0.01, busy ? 0 : undefined);

  it('while the group handles Paxos messages, every turn is senderBusyTurnMaxMs', async () => {
    const { sizes, sender } = await stream(true);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(64);
    expect(sizes.length).toBeGreaterThanOrEqual(3000 / 64);
    expect(sender.counters.busyTurns).toBeGreaterThanOrEqual(sizes.length);
  });

  it('a quiet group gets full senderTurnMaxMs turns (the check above tells them apart)', async () => {
    const { sizes, sender } = await stream(false);
    expect(Math.max(...sizes)).toBeGreaterThan(300);
    expect(sender.counters.busyTurns).toBe(0);
  });
  // Reads that cost no time: the clock never cuts a batch, so only senderBusyBatchMaxInstances
  // can keep a busy turn short (a full read-ahead used to go out as one ~200-instance batch).
  const freeReads = (options: Partial<LearnerOptions>, activeAgoMs: number) =>
    run(1000, undefined, activeAgoMs, options);

  it('while the group is busy, no batch is larger than senderBusyBatchMaxInstances', async () => {
    const { sizes, sender } = await freeReads({ senderBusyBatchMaxInstances: 50 }, 0);
    expect(Math.max(...sizes)).toBe(50);
    expect(sizes.reduce((n, x) => n + x, 0)).toBe(1000);
    expect(sender.counters.busyTurns).toBeGreaterThan(0);
    expect(sender.counters.batchesSent).toBeGreaterThanOrEqual(1000 / 50);
  });

  it('planted: without the busy cap the same stream sends larger batches (the check above sees it)', async () => {
    const { sizes } = await freeReads({ senderBusyBatchMaxInstances: 2048 }, 0);
    expect(Math.max(...sizes)).toBeGreaterThan(50);
  });

  it('a Paxos message within senderBusyWindowMs keeps the group busy; an older one does not', async () => {
    const options = { senderBusyBatchMaxInstances: 50, senderBusyWindowMs: 50 };
    const within = await freeReads(options, 40);
    expect(Math.max(...within.sizes)).toBe(50);
    expect(within.sender.counters.busyTurns).toBeGreaterThan(0);
    const after = await freeReads(options, 60);
    expect(Math.max(...after.sizes)).toBeGreaterThan(50);
    expect(after.sender.counters.busyTurns).toBe(0);
  });
});
