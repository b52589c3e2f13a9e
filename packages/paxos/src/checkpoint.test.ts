// Checkpoints end to end in one process (design.md §4): two nodes compact their logs, a lagging
// third catches up through a checkpoint and then through the log; a node whose state machine is
// older than its log reports E_NEEDS_CHECKPOINT and is brought back by a peer's checkpoint. Memory
// network and stores; each node's disk is a MemoryFiles.
import { SeededRandomSource } from '@tspaxos/core';
import { INSTALL_META_KEY, MemoryFiles } from '@tspaxos/checkpoint';
import { MemoryLogStore } from '@tspaxos/storage';
import {
  CheckpointSendFileFlag,
  type Message,
  MemoryNetwork,
  type Network,
} from '@tspaxos/transport';
import { afterEach, describe, expect, it } from 'vitest';
import { startNode, type ExecuteContext, type PaxosNode, type StateMachine } from './internal';
import { realRandom, realScheduler } from './adapters/real-scheduler';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A key-value machine whose checkpoint is two files on the node's disk: state.json (the map and
 * its instance id) and blob.bin (a large file, so a transfer takes many chunks). Loading copies the
 * staged files beside the live ones, then renames: it can be repeated after a crash.
 */
class KvMachine implements StateMachine {
  readonly smId = 10;
  map = new Map<string, string>();
  lastApplied = -1;
  checkpointInstanceId = -1;
  loads = 0;
  locked = 0;
  executedIds: number[] = [];

  constructor(
    private readonly files: MemoryFiles,
    private readonly dir: string,
  ) {}

  execute(value: Uint8Array, ctx: ExecuteContext): string {
    const [k, v] = decoder.decode(value).split('=');
    this.map.set(k!, v!);
    this.lastApplied = ctx.instanceId;
    this.executedIds.push(ctx.instanceId);
    return 'ok';
  }

  /** Writes a checkpoint of everything applied so far. */
  async saveCheckpoint(): Promise<number> {
    const state = encoder.encode(JSON.stringify({ id: this.lastApplied, map: [...this.map] }));
    await this.files.remove(`${this.dir}.next`);
    await this.files.write(`${this.dir}.next/state.json`, 0, state);
    await this.files.write(`${this.dir}.next/blob.bin`, 0, new Uint8Array(300_000).fill(7));
    await this.files.fsync(`${this.dir}.next/state.json`);
    await this.files.fsync(`${this.dir}.next/blob.bin`);
    await this.files.remove(this.dir);
    await this.files.rename(`${this.dir}.next`, this.dir);
    await this.files.fsync('/');
    this.checkpointInstanceId = this.lastApplied;
    return this.checkpointInstanceId;
  }

  getCheckpointInstanceId(): number {
    return this.checkpointInstanceId;
  }
  lockCheckpointState(): void {
    this.locked++;
  }
  unlockCheckpointState(): void {
    this.locked--;
  }
  getCheckpointState(): { dir: string; files: string[] } {
    return { dir: this.dir, files: ['state.json', 'blob.bin'] };
  }
  async loadCheckpointState(_g: number, dir: string, files: string[], cp: number): Promise<void> {
    expect(files.sort()).toEqual(['blob.bin', 'state.json']);
    await this.files.remove(`${this.dir}.next`);
    for (const f of files) {
      const size = (await this.files.stat(`${dir}/${f}`))!.size;
      await this.files.write(
        `${this.dir}.next/${f}`,
        0,
        await this.files.read(`${dir}/${f}`, 0, size),
      );
      await this.files.fsync(`${this.dir}.next/${f}`);
    }
    await this.files.remove(this.dir);
    await this.files.rename(`${this.dir}.next`, this.dir);
    await this.files.fsync('/');
    const st = (await this.files.stat(`${this.dir}/state.json`))!;
    const parsed = JSON.parse(
      decoder.decode(await this.files.read(`${this.dir}/state.json`, 0, st.size)),
    ) as {
      id: number;
      map: [string, string][];
    };
    expect(parsed.id).toBe(cp);
    this.map = new Map(parsed.map);
    this.lastApplied = cp;
    this.checkpointInstanceId = cp;
    this.loads++;
  }
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function eventually(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function network() {
  const net = new MemoryNetwork({ rng: new SeededRandomSource(7) });
  let virtualMs = 0;
  const pump = setInterval(() => {
    virtualMs += 1000;
    net.setTime(virtualMs);
    net.deliverDue(virtualMs);
  }, 1);
  cleanups.push(() => clearInterval(pump));
  return net;
}

interface Member {
  node: PaxosNode;
  sm: KvMachine;
  files: MemoryFiles;
  store: MemoryLogStore;
}

interface StartOptions {
  masterElection?: boolean;
  masterLeaseMs?: number;
  /** Rewrites what this node receives (a planted fault on the wire). */
  tamper?: (from: number, message: Message) => Message;
}

async function start(
  net: MemoryNetwork,
  id: number,
  disk?: { files: MemoryFiles; store: MemoryLogStore; sm?: KvMachine },
  opts: StartOptions = {},
): Promise<Member> {
  const files = disk?.files ?? new MemoryFiles();
  const store = disk?.store ?? new MemoryLogStore();
  const sm = disk?.sm ?? new KvMachine(files, `/n${id}/kv`);
  const endpoint = net.endpoint(id);
  const tamper = opts.tamper;
  const network: Network =
    tamper === undefined
      ? endpoint
      : {
          send: (to, group, message) => endpoint.send(to, group, message),
          onMessage: (handler) =>
            endpoint.onMessage((from, group, message) =>
              handler(from, group, tamper(from, message)),
            ),
          close: () => endpoint.close(),
        };
  const node = await startNode({
    nodeId: id,
    cluster: [1, 2, 3],
    groups: 1,
    store,
    network,
    ...(opts.masterElection === true ? { masterElection: true } : {}),
    scheduler: realScheduler(),
    random: realRandom(),
    stateMachines: [sm],
    checkpoint: {
      files,
      dir: `/n${id}/checkpoint`,
      options: {
        chunkBytes: 16 * 1024,
        ackLeadBytes: 200 * 1024,
        tickIntervalMs: 20,
        askRetryMs: 100,
      },
    },
    options: {
      learner: { askforLearnIntervalMs: 50, askforLearnJitterMs: 10 },
      ...(opts.masterLeaseMs !== undefined ? { masterLeaseMs: opts.masterLeaseMs } : {}),
    },
  });
  cleanups.push(() => node.stop({ closeNetwork: false, closeStore: false }));
  return { node, sm, files, store };
}

describe('checkpoints in a cluster', () => {
  it('a lagging node catches up through a checkpoint, then through the log', async () => {
    const net = network();
    net.partition([[1, 2], [3]]);
    const a = await start(net, 1);
    const b = await start(net, 2);
    const c = await start(net, 3);
    for (let i = 0; i < 30; i++)
      await a.node.propose(0, encoder.encode(`k${i}=v${i}`), { smId: 10 });
    await eventually(() => b.sm.lastApplied >= 29, 'node 2 to apply 30 values');
    for (const m of [a, b]) {
      const cp = await m.sm.saveCheckpoint();
      expect(cp).toBeGreaterThanOrEqual(29);
      const { minChosenInstanceId } = await m.node.compact(0, { keep: 3 });
      // min(checkpoint + 1, now, highest record) − keep: the highest record (the acceptor's
      // promise) always stays.
      expect(minChosenInstanceId).toBeGreaterThanOrEqual(cp - 3);
      expect(minChosenInstanceId).toBeLessThanOrEqual(cp + 1 - 3);
    }
    await eventually(
      () => [a, b].every((m) => m.store.get(0, 0) === undefined),
      'the cleaners to delete the old records',
    );
    for (let i = 30; i < 35; i++)
      await a.node.propose(0, encoder.encode(`k${i}=v${i}`), { smId: 10 });
    expect(c.sm.map.size).toBe(0);
    const asksBefore = c.node.status(0).learner.counters.askforLearnSent;
    expect(asksBefore).toBeGreaterThan(0);

    net.heal();
    // A proposal waiting on node 3 when it installs fails with a clear error (not a timeout).
    const pending = c.node.propose(0, encoder.encode('early=1'), { smId: 10 }).then(
      () => 'chosen',
      (error: unknown) => error,
    );
    await eventually(() => c.node.status(0).counters.checkpointRestarts === 1, 'node 3 to install');
    expect(await pending).toMatchObject({ code: 'E_CHECKPOINT_INSTALLED' });
    await eventually(
      () => c.sm.map.size === 35 && c.node.status(0).instanceId === a.node.status(0).instanceId,
      'node 3 to learn the rest from the log',
    );
    expect(c.sm.loads).toBe(1);
    expect([...c.sm.map]).toEqual([...a.sm.map]);
    expect(c.files.peek('/n3/kv/blob.bin')).toEqual(a.files.peek('/n1/kv/blob.bin'));
    const status = c.node.status(0);
    expect(status.checkpoint?.mode).toBe(false);
    expect(status.checkpoint?.receiver.phase).toBe('idle');
    expect(status.minChosenInstanceId).toBeGreaterThan(0);
    expect(await c.files.list('/n3/checkpoint')).toEqual([]);
    // The learner the install replaced handed its counters on (they never go back), and every
    // catch-up that started ended.
    const learner = status.learner.counters;
    expect(learner.askforLearnSent).toBeGreaterThan(asksBefore);
    expect(learner.catchUpsFinished).toBe(learner.catchUpsStarted);
    // Exactly one peer sent it, chunk by chunk, and unlocked its machine.
    const senders = [a, b].map((m) => m.node.status(0).checkpoint!.counters.senderEnds.done ?? 0);
    expect(senders.reduce((x, y) => x + y, 0)).toBe(1);
    expect(a.sm.locked + b.sm.locked).toBe(0);
    // The counters a server exports: bytes sent by the senders = bytes the receiver took, one install.
    const sentBytes = [a, b].map((m) => m.node.status(0).checkpoint!.counters.bytesSent);
    const received = status.checkpoint!.receiver.counters;
    expect(received.installs).toBe(1);
    expect(received.bytes).toBeGreaterThan(0);
    expect(sentBytes.reduce((x, y) => x + y, 0)).toBe(received.bytes);
    // And it takes part in new values like any member.
    await c.node.propose(0, encoder.encode('after=yes'), { smId: 10 });
    await eventually(() => a.sm.map.get('after') === 'yes', 'node 1 to apply node 3 value');
  });

  it('a machine whose checkpoint is ahead of the log (unsynced log writes lost) starts after it, executing nothing twice', async () => {
    // Found by the simulator: a follower's log writes are not synced, its machine's checkpoint
    // is; after a crash it re-learned and re-executed every instance up to the checkpoint.
    const net = network();
    const a = await start(net, 1);
    const b = await start(net, 2);
    const c = await start(net, 3);
    for (let i = 0; i < 8; i++)
      await a.node.propose(0, encoder.encode(`k${i}=v${i}`), { smId: 10 });
    await eventually(() => c.sm.lastApplied >= 7, 'node 3 to apply');
    const cp = await c.sm.saveCheckpoint();
    await c.node.stop({ closeNetwork: false, closeStore: false });
    // The log is gone (a fresh store); the machine and its durable checkpoint are kept.
    c.sm.executedIds = [];
    const again = await start(net, 3, { files: c.files, store: new MemoryLogStore(), sm: c.sm });
    expect(again.node.status(0).instanceId).toBe(cp + 1);
    expect(again.store.getMinChosenInstanceId(0)).toBe(cp + 1);
    await a.node.propose(0, encoder.encode('after=1'), { smId: 10 });
    await eventually(() => c.sm.map.get('after') === '1', 'node 3 to learn the new value');
    expect(c.sm.executedIds.every((id) => id > cp)).toBe(true);
    expect([...c.sm.map]).toEqual([...b.sm.map]);
  });

  it('a node whose machine is older than its log reports E_NEEDS_CHECKPOINT and recovers', async () => {
    const net = network();
    const a = await start(net, 1);
    const b = await start(net, 2);
    const c = await start(net, 3);
    for (let i = 0; i < 12; i++)
      await a.node.propose(0, encoder.encode(`k${i}=v${i}`), { smId: 10 });
    await eventually(() => c.sm.lastApplied >= 11, 'node 3 to apply');
    for (const m of [a, b, c]) {
      await m.sm.saveCheckpoint();
      await m.node.compact(0, { keep: 0 });
    }
    await eventually(() => c.store.get(0, 5) === undefined, 'node 3 to compact');
    await c.node.stop({ closeNetwork: false, closeStore: false });
    // Node 3 restarts with a machine that lost its checkpoint: its log cannot rebuild it.
    c.store.reopen();
    const fresh = new KvMachine(c.files, '/n3/kv-lost');
    const again = await start(net, 3, { files: c.files, store: c.store, sm: fresh });
    // Right after start (no timer has run yet): it says why it does not serve, and refuses writes.
    expect(again.node.status(0).stopped?.code).toBe('E_NEEDS_CHECKPOINT');
    expect(again.node.status(0).checkpoint?.needsCheckpoint?.code).toBe('E_NEEDS_CHECKPOINT');
    await expect(again.node.propose(0, encoder.encode('x=1'), { smId: 10 })).rejects.toMatchObject({
      code: 'E_NEEDS_CHECKPOINT',
    });
    expect(fresh.map.size).toBe(0); // nothing replayed: the records it would need are gone
    await eventually(() => fresh.loads === 1, 'node 3 to receive a checkpoint');
    expect(again.node.status(0).checkpoint!.counters.asksSent).toBeGreaterThanOrEqual(2);
    expect(again.node.status(0).counters.checkpointRestarts).toBe(1);
    await eventually(() => again.node.status(0).stopped === undefined, 'the status to clear');
    expect([...fresh.map]).toEqual([...a.sm.map]);
    expect(again.node.status(0).checkpoint?.needsCheckpoint).toBeUndefined();
  });

  // Issue 17 finding 3a: the master variables are replaced as part of the install, durably,
  // before the log reset, by those the checkpoint carried; before, only the in-process restart
  // after it forgot them, so a crash anywhere in between restarted the node trusting variables
  // the checkpoint had made stale.
  for (const point of ['load', 'reset', 'clear-record'] as const) {
    it(`a crash in the install (${point}) restarts the node with the checkpoint's master variables, not its stale ones`, async () => {
      const net = network();
      const elect = { masterElection: true, masterLeaseMs: 1000 };
      const a = await start(net, 1, undefined, elect);
      const b = await start(net, 2, undefined, elect);
      const c = await start(net, 3, undefined, elect);
      await eventually(
        () => [a, b, c].every((m) => m.node.status(0).masterElection.recorded !== undefined),
        'every node to record a master',
      );
      net.partition([[1, 2], [3]]);
      const stale = c.node.status(0).masterElection.recorded!.version;
      for (let i = 0; i < 20; i++)
        await a.node.propose(0, encoder.encode(`k${i}=v${i}`), { smId: 10 });
      await eventually(() => b.sm.lastApplied === a.sm.lastApplied, 'node 2 to apply');
      // A renewal after the partition: the stale variables are then distinguishable.
      await eventually(
        () => a.node.status(0).masterElection.recorded!.version > stale,
        'a renewal on nodes 1 and 2',
      );
      for (const m of [a, b]) {
        await m.sm.saveCheckpoint();
        await m.node.compact(0, { keep: 3 });
      }
      await eventually(
        () => [a, b].every((m) => m.store.get(0, 0) === undefined),
        'the cleaners to delete the old records',
      );
      // The crash point: the install record is durable by then (it is written before the load).
      let armed = true;
      let crashes = 0;
      const crash = (): void => {
        armed = false;
        crashes++;
        expect(readInstallBytes(c.store)).toBeGreaterThan(0);
        throw new Error(`planted crash at ${point}`);
      };
      const store = c.store as unknown as Record<string, (...args: unknown[]) => unknown>;
      if (point === 'load') {
        c.files.beforeOp = (op, path) => {
          if (armed && op === 'write' && path.startsWith('/n3/kv.next/')) crash();
        };
      } else {
        const name = point === 'reset' ? 'resetGroup' : 'setMeta';
        const original = store[name]!.bind(c.store);
        store[name] = (...args: unknown[]) => {
          const clearing = args[1] === INSTALL_META_KEY && (args[2] as Uint8Array).length === 0;
          if (armed && (point === 'reset' || clearing)) crash();
          return original(...args);
        };
      }
      net.heal();
      await eventually(() => crashes === 1, `the install to reach ${point}`);
      await c.node.stop({ closeNetwork: false, closeStore: false });
      c.files.beforeOp = undefined;
      delete store.resetGroup;
      delete store.setMeta;
      c.files.crash();
      c.store.crash();
      const again = await start(
        net,
        3,
        { files: c.files, store: c.store, sm: new KvMachine(c.files, '/n3/kv') },
        elect,
      );
      const st = again.node.status(0);
      expect(st.checkpoint!.counters.installsFinishedAtStart).toBe(1);
      expect(again.sm.loads).toBe(1);
      // Right after start, before any peer spoke: the sender's variables, none stale, no lease.
      expect(st.masterElection.anchored).toBe(true);
      expect(st.masterElection.counters.fromCheckpoint).toBe(1);
      expect(st.masterElection.recorded!.version).toBeGreaterThan(stale);
      expect(again.node.isMaster(0)).toBe(false);
      // Then all three agree on them.
      await eventually(
        () =>
          again.node.status(0).masterElection.recorded?.version ===
          a.node.status(0).masterElection.recorded?.version,
        'node 3 to agree with node 1 on the master version',
      );
    });
  }

  // Issue 17 round 2: an install takes the sender's master variables with the checkpoint (BEGIN,
  // then the manifest). Before, it forgot them and waited for a peer's; once every member had
  // installed with none to give (simulator seed 1729), no node could hold the lease again. Here no
  // peer message carries master variables at all (stripped on the wire), so the checkpoint is the
  // only way back: every member installs in turn, and a master is elected after the last.
  it('every member installs a checkpoint, no peer gives master variables: a master is elected again', async () => {
    const net = network();
    let stripped = 0;
    const strip = (_from: number, message: Message): Message => {
      if (message.kind !== 'paxos' || message.msg.masterVariables.length === 0) return message;
      stripped++;
      return { kind: 'paxos', msg: { ...message.msg, masterVariables: new Uint8Array(0) } };
    };
    const opts = { masterElection: true, masterLeaseMs: 1000, tamper: strip };
    const m = new Map<number, Member>();
    for (const id of [1, 2, 3]) m.set(id, await start(net, id, undefined, opts));
    const all = (): Member[] => [...m.values()];
    await eventually(
      () => all().every((x) => x.node.status(0).masterElection.recorded !== undefined),
      'every node to record a master',
    );
    let n = 0;
    for (const behind of [3, 1, 2]) {
      const ahead = [1, 2, 3].filter((id) => id !== behind).map((id) => m.get(id)!);
      const late = m.get(behind)!;
      net.partition([[1, 2, 3].filter((id) => id !== behind), [behind]]);
      for (let i = 0; i < 10; i++, n++)
        await ahead[0]!.node.propose(0, encoder.encode(`k${n}=v${n}`), { smId: 10 });
      await eventually(
        () => ahead[1]!.sm.lastApplied === ahead[0]!.sm.lastApplied,
        `node ${ahead[1]!.node.nodeId} to apply`,
      );
      for (const x of ahead) {
        await x.sm.saveCheckpoint();
        await x.node.compact(0, { keep: 0 });
      }
      const restarts = late.node.status(0).counters.checkpointRestarts;
      net.heal();
      await eventually(
        () => late.node.status(0).counters.checkpointRestarts === restarts + 1,
        `node ${behind} to install`,
      );
      // Right after its install: the sender's variables, no lease of its own from them.
      const st = late.node.status(0).masterElection;
      expect(st.anchored).toBe(true);
      expect(st.counters.fromCheckpoint).toBe(1);
      expect(st.isMaster).toBe(false);
    }
    expect(stripped).toBeGreaterThan(0);
    for (const x of all()) expect(x.node.status(0).masterElection.counters.adopted).toBe(0);
    await eventually(() => all().some((x) => x.node.isMaster(0)), 'a master to be elected', 20_000);
    const holder = all().find((x) => x.node.isMaster(0))!;
    const version = holder.node.status(0).masterElection.recorded!.version;
    await eventually(
      () => all().every((x) => x.node.status(0).masterElection.recorded?.version === version),
      'every node to agree on the new master version',
    );
    expect(all().filter((x) => x.node.isMaster(0))).toHaveLength(1);
  });

  // Issue 17 finding 5: the chain at the checkpoint instance travels in BEGIN and the manifest, and
  // the installed node goes on from it; before, its chain was 0 and every peer skipped its values.
  async function installAtTheTip(tamper?: StartOptions['tamper']) {
    const net = network();
    net.partition([[1, 2], [3]]);
    const a = await start(net, 1);
    const b = await start(net, 2);
    const c = await start(net, 3, undefined, tamper === undefined ? {} : { tamper });
    for (let i = 0; i < 20; i++)
      await a.node.propose(0, encoder.encode(`k${i}=v${i}`), { smId: 10 });
    await eventually(() => b.sm.lastApplied === a.sm.lastApplied, 'node 2 to apply');
    for (const m of [a, b]) {
      await m.sm.saveCheckpoint();
      await m.node.compact(0, { keep: 3 });
    }
    await eventually(
      () => [a, b].every((m) => m.store.get(0, 0) === undefined),
      'the cleaners to delete the old records',
    );
    net.heal();
    await eventually(() => c.node.status(0).counters.checkpointRestarts === 1, 'node 3 to install');
    // Nothing was chosen after the checkpoint: no peer's stream could have taught node 3 the chain.
    expect(c.node.status(0).instanceId).toBe(a.node.status(0).instanceId);
    return { a, b, c };
  }

  it('the checksum chain goes on after an install: every peer checks the installed node’s values', async () => {
    const { a, b, c } = await installAtTheTip();
    const cp = c.sm.checkpointInstanceId;
    expect(c.node.status(0).lastChecksum).toBe(a.store.get(0, cp)!.checksum);
    expect(c.node.status(0).lastChecksum).not.toBe(0);
    const before = [a, b].map((m) => m.node.status(0).counters.checksumChecks);
    for (let i = 0; i < 20; i++)
      await c.node.propose(0, encoder.encode(`after${i}=${i}`), { smId: 10 });
    await eventually(() => b.sm.map.get('after19') === '19', 'node 2 to apply node 3’s values');
    const checked = [a, b].map((m, i) => m.node.status(0).counters.checksumChecks - before[i]!);
    // Each of the 20 carried node 3's chain to both peers (an Accept at least), and agreed.
    for (const n of checked) expect(n).toBeGreaterThanOrEqual(20);
    for (const m of [a, b]) expect(m.node.status(0).counters.checksumMismatches).toBe(0);
    // Its own records continue the chain: equal to the peers' at every instance it proposed.
    const end = c.node.status(0).instanceId;
    for (let i = cp + 1; i < end; i++) {
      expect(c.store.get(0, i)!.checksum).not.toBe(0);
      expect(c.store.get(0, i)!.checksum).toBe(a.store.get(0, i)!.checksum);
    }
  });

  it('a wrong chain value carried by the checkpoint is caught at the installed node’s first proposal', async () => {
    let planted = 0;
    const { a, b, c } = await installAtTheTip((_from, message) => {
      if (
        message.kind !== 'checkpoint' ||
        message.msg.flag !== CheckpointSendFileFlag.Begin ||
        message.msg.nodeId === 3
      )
        return message;
      planted++;
      return {
        kind: 'checkpoint',
        msg: { ...message.msg, checksum: (message.msg.checksum ^ 1) >>> 0 },
      };
    });
    expect(planted).toBeGreaterThanOrEqual(1);
    const outcome = c.node.propose(0, encoder.encode('x=1'), { smId: 10, timeoutMs: 3000 }).then(
      () => 'chosen',
      (error: { code?: string }) => error.code,
    );
    await eventually(
      () => [a, b].some((m) => m.node.status(0).counters.checksumMismatches > 0),
      'a peer to catch the wrong chain',
    );
    const stopped = [a, b].map((m) => m.node.status(0).stopped?.code);
    expect(stopped).toContain('E_CHECKSUM_MISMATCH');
    expect(await outcome).not.toBe('chosen');
  });
});

function readInstallBytes(store: MemoryLogStore): number {
  return store.getMeta(0, INSTALL_META_KEY)?.length ?? 0;
}
