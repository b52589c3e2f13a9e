// No error goes unseen: what a node does with unexpected exceptions (counted in status().errors
// with the last code and message) and with expected coded conditions (counted drops), on a
// virtual clock and an in-memory network.
import { SeededRandomSource } from '@tspaxos/core';
import { MemoryLogStore, StorageError } from '@tspaxos/storage';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VirtualWorld } from './adapters/testing-entry';
import { startNode, type PaxosNode, type StateMachine } from './internal';
import type { UnsafeFaults } from './faults';

class Recorder implements StateMachine {
  readonly smId = 10;
  readonly applied: string[] = [];
  throwing = false;
  execute(value: Uint8Array): string {
    if (this.throwing) throw new RangeError('the machine is broken');
    const text = new TextDecoder().decode(value);
    this.applied.push(text);
    return text;
  }
}

const bytes = (s: string) => new TextEncoder().encode(s);
let world: VirtualWorld;
let nodes: PaxosNode[];
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

beforeEach(() => {
  world = new VirtualWorld({ autoRun: false });
  nodes = [];
  unhandled.length = 0;
  process.on('unhandledRejection', onUnhandled);
});
afterEach(async () => {
  for (const n of nodes) await n.stop({ closeStore: false });
  await new Promise((r) => setImmediate(r));
  process.off('unhandledRejection', onUnhandled);
  expect(unhandled).toEqual([]);
});

/**
 * startNode with the virtual clock running: a start waits for one fsync (the group's new
 * incarnation, group.ts takeIncarnation), which a simulated disk completes on this clock.
 */
async function started(options: Parameters<typeof startNode>[0]): Promise<PaxosNode> {
  const made = startNode(options);
  let done = false;
  made.then(
    () => (done = true),
    () => (done = true),
  );
  while (!done) await world.advance(1);
  return made;
}

async function cluster(
  opts: { faults?: UnsafeFaults; stores?: MemoryLogStore[]; proposeTimeoutMs?: number } = {},
) {
  const machines: Recorder[] = [];
  const stores = opts.stores ?? [1, 2, 3].map(() => new MemoryLogStore());
  for (const id of [1, 2, 3]) {
    const sm = new Recorder();
    machines.push(sm);
    nodes.push(
      await started({
        nodeId: id,
        cluster: [1, 2, 3],
        groups: 1,
        store: stores[id - 1]!,
        network: world.net.endpoint(id),
        scheduler: world.scheduler,
        random: new SeededRandomSource(id),
        stateMachines: [sm],
        ...(opts.faults ? { unsafeFaults: opts.faults } : {}),
        ...(opts.proposeTimeoutMs ? { options: { proposeTimeoutMs: opts.proposeTimeoutMs } } : {}),
      }),
    );
  }
  return { machines, stores };
}

/** Proposes and advances the clock until the proposal settles. */
async function propose(node: PaxosNode, value: string, timeoutMs = 5000) {
  let outcome: { ok: true; instanceId: number } | { ok: false; code: string } | undefined;
  node.propose(0, bytes(value), { smId: 10, timeoutMs }).then(
    (r) => (outcome = { ok: true, instanceId: r.instanceId }),
    (e: { code: string }) => (outcome = { ok: false, code: e.code }),
  );
  for (let i = 0; i < 200 && outcome === undefined; i++) await world.advance(50);
  return outcome!;
}

describe('no error goes unseen (status().errors)', () => {
  it('a healthy cluster reports no errors', async () => {
    await cluster();
    expect(await propose(nodes[0]!, 'a')).toEqual({ ok: true, instanceId: 0 });
    for (const n of nodes) {
      const { errors } = n.status(0);
      expect(errors.taskErrors.count + errors.executeFailures.count).toBe(0);
      expect(errors.persistFailures.count).toBe(0);
    }
  });

  it('a task that throws is counted in taskErrors with its code and message (planted bug)', async () => {
    await cluster({ faults: { throwInLearnerTaskEvery: 2 } });
    await propose(nodes[0]!, 'a');
    await world.advance(3000);
    const errors = nodes.map((n) => n.status(0).errors.taskErrors);
    expect(errors.reduce((s, e) => s + e.count, 0)).toBeGreaterThan(0);
    const last = errors.find((e) => e.count > 0)!.last!;
    expect(last.code).toBe('TypeError');
    expect(last.message).toMatch(/planted bug: learner message \d+ throws/);
  });

  it('a state machine that throws is counted in executeFailures (and retried), with the last error', async () => {
    const { machines } = await cluster();
    machines[1]!.throwing = true;
    await propose(nodes[0]!, 'a');
    await world.advance(2500);
    const { errors, instanceId } = nodes[1]!.status(0);
    expect(errors.executeFailures.count).toBeGreaterThanOrEqual(2); // the retry failed again
    expect(errors.executeFailures.last).toEqual({
      code: 'RangeError',
      message: 'the machine is broken',
    });
    expect(instanceId).toBe(0); // the group does not advance past an unapplied value
    machines[1]!.throwing = false;
    await world.advance(1500);
    expect(machines[1]!.applied).toEqual(['a']);
    expect(nodes[1]!.status(0).instanceId).toBe(1);
  });

  it('a failed fsync stops the group with E_STORAGE: counted, proposals rejected, no crash, no unhandled rejection', async () => {
    const disks = [1, 2, 3].map(() => world.disk());
    const stores = disks.map((d) => new MemoryLogStore({}, d));
    await cluster({ stores });
    expect(await propose(nodes[0]!, 'a')).toEqual({ ok: true, instanceId: 0 });
    disks[2]!.failNext();
    await propose(nodes[0]!, 'b'); // node 3's acceptor write fails
    await world.advance(100);
    const status = nodes[2]!.status(0);
    expect(status.stopped?.code).toBe('E_STORAGE');
    expect(status.stopped?.message).toMatch(/E_IO: fsync failed/);
    expect(status.errors.persistFailures.count).toBeGreaterThanOrEqual(1);
    expect(status.errors.persistFailures.last?.code).toBe('E_IO');
    expect(status.errors.taskErrors.count).toBe(0);
    expect(await propose(nodes[2]!, 'c')).toEqual({ ok: false, code: 'E_STORAGE' });
    // The other two go on.
    expect((await propose(nodes[0]!, 'd')).ok).toBe(true);
  });

  it('the recovery no-op at start ends with an expected code: counted, not a task error', async () => {
    // One node that accepted a value restarts alone: its recovery proposal times out.
    const store = new MemoryLogStore();
    await cluster({ stores: [store, new MemoryLogStore(), new MemoryLogStore()] });
    expect((await propose(nodes[0]!, 'a')).ok).toBe(true);
    for (const n of nodes.splice(0)) await n.stop({ closeStore: false });
    store.reopen();
    world = new VirtualWorld({ autoRun: false });
    const alone = await startNode({
      nodeId: 1,
      cluster: [1, 2, 3],
      groups: 1,
      store,
      network: world.net.endpoint(1),
      scheduler: world.scheduler,
      random: new SeededRandomSource(1),
      stateMachines: [new Recorder()],
      options: { proposeTimeoutMs: 1000 },
    });
    nodes.push(alone);
    await world.advance(2000);
    const status = alone.status(0);
    expect(status.counters.recoveryProposalsFailed).toBe(1);
    expect(status.errors.taskErrors.count).toBe(0);
  });

  it('a system-variables write that fails stops the group (the promise is handled when it is made)', async () => {
    class MetaFails extends MemoryLogStore {
      failing = false;
      override setMeta(...args: Parameters<MemoryLogStore['setMeta']>): Promise<void> {
        if (this.failing) return Promise.reject(new StorageError('E_IO', 'meta write refused'));
        return super.setMeta(...args);
      }
    }
    const third = new MetaFails();
    await cluster({ stores: [new MemoryLogStore(), new MemoryLogStore(), third] });
    third.failing = true;
    let done: string | undefined;
    nodes[0]!.changeMembership(0, [1, 2, 3, 4]).then(
      () => (done = 'ok'),
      (e: { code: string }) => (done = e.code),
    );
    for (let i = 0; i < 100 && done === undefined; i++) await world.advance(50);
    await world.advance(3000);
    expect(done).toBe('ok');
    const status = nodes[2]!.status(0);
    expect(status.stopped?.code).toBe('E_STORAGE');
    expect(status.errors.persistFailures.last).toEqual({
      code: 'E_IO',
      message: 'meta write refused',
    });
    expect(status.errors.taskErrors.count).toBe(0);
    expect(nodes[0]!.status(0).members).toEqual([1, 2, 3, 4]);
  });
});

describe('a broken invariant stops the group (E_INVARIANT)', () => {
  /** Proposes without advancing the clock; the outcome is filled in when it settles. */
  function proposeAsync(node: PaxosNode, value: string) {
    const outcome: { settled?: { ok: true; instanceId: number } | { ok: false; code: string } } =
      {};
    node.propose(0, bytes(value), { smId: 10, timeoutMs: 5000 }).then(
      (r) => (outcome.settled = { ok: true, instanceId: r.instanceId }),
      (e: { code: string }) => (outcome.settled = { ok: false, code: e.code }),
    );
    return outcome;
  }

  it.each([
    {
      faults: { proposerMissesNewInstance: true },
      message:
        /group 0: the roles' instance ids differ: learner 1, acceptor 1, proposer 0, committer undefined/,
      // the learner moved on before the check
      stoppedAt: 1,
    },
    {
      faults: { resetPromisePerInstance: true },
      message: /the promise is kept across instances/,
      // the acceptor's check throws before the learner moves on
      stoppedAt: 0,
    },
  ])(
    'planted $faults: the group stops with E_INVARIANT at the first new instance, in status() and errors, and pending proposals are rejected with it',
    async ({ faults, message, stoppedAt }) => {
      const { machines } = await cluster({ faults });
      const first = proposeAsync(nodes[0]!, 'a');
      const second = proposeAsync(nodes[0]!, 'b'); // waits behind 'a' in the committer
      for (let i = 0; i < 100 && second.settled === undefined; i++) await world.advance(50);
      expect(first.settled).toEqual({ ok: true, instanceId: 0 }); // settled before the new instance
      expect(second.settled).toEqual({ ok: false, code: 'E_INVARIANT' });
      await world.advance(1000);
      for (const n of nodes) {
        const status = n.status(0);
        expect(status.stopped?.code).toBe('E_INVARIANT');
        expect(status.stopped?.message).toMatch(message);
        expect(status.errors.taskErrors.count).toBe(1);
        expect(status.errors.taskErrors.last?.code).toBe('E_INVARIANT');
        expect(status.instanceId).toBe(stoppedAt); // nothing learned past the broken instance
      }
      expect(machines.map((m) => m.applied)).toEqual([['a'], ['a'], ['a']]);
      expect(await propose(nodes[1]!, 'c')).toEqual({ ok: false, code: 'E_INVARIANT' });
    },
  );
});
