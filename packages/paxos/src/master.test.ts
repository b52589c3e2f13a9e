import { describe, expect, it } from 'vitest';
import { PaxosError } from './errors';
import { type MasterFaults, MasterStateMachine } from './master';
import {
  decodeMasterOperation,
  decodeMasterVariables,
  encodeMasterOperation,
  encodeMasterVariables,
  type MasterOperation,
  type MasterVariables,
  decodeStoredMaster,
  encodeStoredMaster,
  NO_MASTER_VERSION,
  NO_MASTER_YET,
} from './master-variables';
import { checkMasterOptions, MasterElection } from './election';
import { VirtualWorld } from './adapters/testing-entry';

const LEASE = 10_000;
const MARGIN = 100;

/** A world whose clock only the test moves (no network in these tests). */
const newClock = (): VirtualWorld => new VirtualWorld({ autoRun: false });
/** Runs every timer due up to `toMs` (virtual), in order, then sets the clock to toMs. */
const advanceTo = (clock: VirtualWorld, toMs: number): Promise<void> =>
  clock.advance(toMs - clock.nowMs);

function machine(
  nodeId: number,
  clock: VirtualWorld,
  opts: {
    members?: number[];
    /** Stored variables (default: a new group, NO_MASTER_YET); 'lost' = unknown. */
    initial?: MasterVariables | 'lost';
    faults?: MasterFaults;
  } = {},
) {
  const persisted: MasterVariables[] = [];
  const changes: MasterVariables[] = [];
  const members = opts.members ?? [1, 2, 3];
  /** The first instance the node has not executed (its learner's now instance id). */
  const position = { nowInstanceId: 0 };
  const sm = new MasterStateMachine(
    {
      nodeId,
      now: () => clock.nowMs,
      isMember: (id) => members.includes(id),
      nowInstanceId: () => position.nowInstanceId,
      persist: (v) => persisted.push({ ...v }),
      changed: (v) => changes.push({ ...v }),
    },
    opts.initial === 'lost' ? undefined : (opts.initial ?? NO_MASTER_YET),
    MARGIN,
    opts.faults,
  );
  return { sm, persisted, changes, members, position };
}

const op = (fields: Partial<MasterOperation> & { nodeId: number; version: number }) =>
  encodeMasterOperation({ leaseMs: LEASE, renewal: false, nonce: 7, ...fields });
const ctx = (instanceId: number) => ({ group: 0, instanceId, isMine: false });

describe('MasterStateMachine apply rules', () => {
  it('applies an operation against the current version; every node applies the same sequence', () => {
    const clock = newClock();
    const nodes = [1, 2, 3].map((id) => machine(id, clock));
    // Three concurrent candidates all saw "no master"; the log orders them.
    const log = [
      op({ nodeId: 2, version: NO_MASTER_VERSION, nonce: 1 }),
      op({ nodeId: 1, version: NO_MASTER_VERSION, nonce: 2 }),
      op({ nodeId: 3, version: NO_MASTER_VERSION, nonce: 3 }),
      op({ nodeId: 2, version: 4, renewal: true, nonce: 4 }), // renewal against the version of 4
      op({ nodeId: 3, version: 4, nonce: 5 }), // lost the race: 4 is no longer current
    ];
    for (const n of nodes) {
      n.sm.expectOwn(1, 0);
      n.sm.expectOwn(4, 0);
      const results = log.map((v, i) => n.sm.execute(v, ctx(4 + i * 3)));
      expect(results.map((r) => r.applied)).toEqual([true, false, false, true, false]);
      expect(n.sm.variables).toEqual({ masterNodeId: 2, version: 13, leaseMs: LEASE });
      expect(n.sm.counters).toMatchObject({ elections: 1, renewals: 1, staleVersion: 3 });
      expect(n.persisted.map((v) => v.version)).toEqual([4, 13]);
      expect(n.changes).toEqual([{ masterNodeId: 2, version: 4, leaseMs: LEASE }]);
    }
  });

  it('refuses a proposer that is not a voting member, and a malformed operation, alike everywhere', () => {
    const clock = newClock();
    const { sm } = machine(1, clock, { members: [1, 2, 3] });
    expect(sm.execute(op({ nodeId: 9, version: NO_MASTER_VERSION }), ctx(0)).applied).toBe(false);
    expect(sm.execute(new TextEncoder().encode('{"nodeId":1'), ctx(1)).applied).toBe(false);
    expect(sm.execute(new TextEncoder().encode('[1,2]'), ctx(2)).applied).toBe(false);
    expect(sm.counters).toMatchObject({ notMember: 1, malformed: 2, elections: 0 });
    expect(sm.version).toBe(NO_MASTER_VERSION);
  });

  it('gives the proposer a lease counted from before it proposed, the others one from when they apply', async () => {
    const clock = newClock();
    const holder = machine(1, clock);
    const other = machine(2, clock);
    holder.sm.expectOwn(7, 1000); // decided to propose at 1000
    await advanceTo(clock, 1600); // chosen and applied at 1600 on both
    holder.sm.execute(op({ nodeId: 1, version: NO_MASTER_VERSION }), ctx(0));
    await advanceTo(clock, 1900); // the other node applies later
    other.sm.execute(op({ nodeId: 1, version: NO_MASTER_VERSION }), ctx(0));
    expect(holder.sm.master()).toEqual({
      nodeId: 1,
      version: 0,
      expiresAtMs: 1000 + LEASE - MARGIN,
    });
    expect(other.sm.master()).toEqual({ nodeId: 1, version: 0, expiresAtMs: 1900 + LEASE });
    expect(holder.sm.isMaster()).toBe(true);
    expect(other.sm.isMaster()).toBe(false);
    await advanceTo(clock, 1000 + LEASE - MARGIN);
    expect(holder.sm.isMaster()).toBe(false); // its own timer ended, whatever the log says
    expect(holder.sm.master()).toBeUndefined();
    expect(other.sm.master()?.nodeId).toBe(1); // the others still wait it out
    await advanceTo(clock, 1900 + LEASE);
    expect(other.sm.master()).toBeUndefined();
  });

  it('gives no lease for an operation of mine I no longer wait for (replay, timed-out proposal)', () => {
    const clock = newClock();
    const { sm } = machine(1, clock);
    sm.expectOwn(7, 0);
    sm.forgetOwn(7);
    sm.execute(op({ nodeId: 1, version: NO_MASTER_VERSION, nonce: 7 }), ctx(3));
    expect(sm.variables?.masterNodeId).toBe(1);
    expect(sm.isMaster()).toBe(false);
    expect(sm.master()).toBeUndefined();
  });

  it('after a restart trusts no lease of its own and gives another master a full lease from now', async () => {
    const clock = newClock();
    await advanceTo(clock, 500);
    const mine = machine(1, clock, { initial: { masterNodeId: 1, version: 9, leaseMs: LEASE } });
    expect(mine.sm.isMaster()).toBe(false);
    expect(mine.sm.version).toBe(9);
    const theirs = machine(1, clock, { initial: { masterNodeId: 2, version: 9, leaseMs: LEASE } });
    expect(theirs.sm.master()).toEqual({ nodeId: 2, version: 9, expiresAtMs: 500 + LEASE });
  });

  it('adopts newer master variables from a peer only, and skips the operations they already reflect', async () => {
    const clock = newClock();
    const { sm, changes, persisted } = machine(3, clock);
    sm.execute(op({ nodeId: 1, version: NO_MASTER_VERSION }), ctx(2));
    expect(sm.adopt({ masterNodeId: 2, version: 2, leaseMs: LEASE }, 3)).toBe(false); // not newer
    await advanceTo(clock, 100);
    expect(sm.adopt({ masterNodeId: 2, version: 90, leaseMs: LEASE }, 91)).toBe(true);
    expect(sm.master()).toEqual({ nodeId: 2, version: 90, expiresAtMs: 100 + LEASE });
    expect(changes.map((c) => c.masterNodeId)).toEqual([1, 2]);
    expect(persisted.at(-1)).toEqual({ masterNodeId: 2, version: 90, leaseMs: LEASE });
    // Replaying the log afterwards: operations up to 90 are already reflected.
    expect(sm.execute(op({ nodeId: 1, version: 2 }), ctx(50)).applied).toBe(false);
    expect(sm.execute(op({ nodeId: 3, version: 90 }), ctx(90)).applied).toBe(false);
    expect(sm.execute(op({ nodeId: 3, version: 90 }), ctx(95)).applied).toBe(true);
    // Adopting myself as master gives me no lease (I cannot tell when it started).
    const me = machine(2, clock);
    me.sm.adopt({ masterNodeId: 2, version: 5, leaseMs: LEASE }, 6);
    expect(me.sm.isMaster()).toBe(false);
    expect(me.sm.counters.adopted).toBe(1);
  });

  it('with its master variables lost evaluates nothing and holds no lease until a peer sends them', () => {
    const clock = newClock();
    const { sm, persisted } = machine(1, clock, { initial: 'lost' });
    expect(sm.anchored).toBe(false);
    sm.expectOwn(7, 0);
    // Its own operation against the version it wrongly believes current: not evaluated.
    expect(sm.execute(op({ nodeId: 1, version: NO_MASTER_VERSION }), ctx(40)).applied).toBe(false);
    expect(sm.isMaster()).toBe(false);
    expect(sm.master()).toBeUndefined();
    expect(sm.counters.unanchored).toBe(1);
    expect(sm.adopt({ masterNodeId: 2, version: 30, leaseMs: LEASE }, 31)).toBe(true);
    expect(sm.anchored).toBe(true);
    expect(persisted).toEqual([{ masterNodeId: 2, version: 30, leaseMs: LEASE }]);
    expect(sm.execute(op({ nodeId: 3, version: 30 }), ctx(41)).applied).toBe(true);
  });

  it('refuses the variables of a peer behind it (they miss operations it passed), known or not', () => {
    const clock = newClock();
    // Node 1 installed a checkpoint of instance 99 and learned on to 150 without its variables.
    const { sm, persisted, position } = machine(1, clock, { initial: 'lost' });
    position.nowInstanceId = 151;
    // A peer at 120 recorded node 1 as master at 30; operations in 120 … 150 it has not seen.
    const stale = { masterNodeId: 1, version: 30, leaseMs: LEASE };
    expect(sm.adopt(stale, 120)).toBe(false);
    expect(sm.adoptEncoded(encodeStoredMaster(stale), 150)).toBe(false);
    // "No master yet" from a peer behind is no better: it may not have seen the first election.
    expect(sm.adoptEncoded(encodeStoredMaster(NO_MASTER_YET), 100)).toBe(false);
    expect(sm.anchored).toBe(false);
    expect(sm.counters.behindVariables).toBe(3);
    expect(sm.counters.adopted).toBe(0);
    expect(persisted).toEqual([]);
    // A peer level with it (now 151) speaks for every instance it passed.
    expect(sm.adopt({ masterNodeId: 2, version: 140, leaseMs: LEASE }, 151)).toBe(true);
    expect(sm.anchored).toBe(true);
    expect(sm.master()).toMatchObject({ nodeId: 2, version: 140 });
    expect(sm.counters.behindVariables).toBe(3);
  });

  it('stores "no master yet" distinctly from lost variables', () => {
    expect(decodeStoredMaster(encodeStoredMaster(NO_MASTER_YET))).toBe(NO_MASTER_YET);
    const v = { masterNodeId: 1, version: 4, leaseMs: LEASE };
    expect(decodeStoredMaster(encodeStoredMaster(v))).toEqual(v);
    expect(decodeStoredMaster(new TextEncoder().encode('{"none":1}'))).toBeUndefined();
  });

  it('drops a lease locally without touching the log state', () => {
    const clock = newClock();
    const { sm } = machine(1, clock);
    expect(sm.dropLocal()).toBe(false);
    sm.expectOwn(7, 0);
    sm.execute(op({ nodeId: 1, version: NO_MASTER_VERSION }), ctx(0));
    expect(sm.dropLocal()).toBe(true);
    expect(sm.isMaster()).toBe(false);
    expect(sm.variables?.masterNodeId).toBe(1);
    expect(sm.counters.drops).toBe(1);
  });

  it('planted faults change exactly the rule they name', async () => {
    const clock = newClock();
    const late = machine(1, clock, { faults: { lateLeaseStart: true } });
    late.sm.expectOwn(7, 0);
    await advanceTo(clock, 3000);
    late.sm.execute(op({ nodeId: 1, version: NO_MASTER_VERSION }), ctx(0));
    expect(late.sm.master()?.expiresAtMs).toBe(3000 + LEASE - MARGIN); // not 0 + LEASE - MARGIN
    const sloppy = machine(1, clock, { faults: { renewWithoutVersionCheck: true } });
    sloppy.sm.execute(op({ nodeId: 2, version: NO_MASTER_VERSION }), ctx(0));
    expect(sloppy.sm.execute(op({ nodeId: 1, version: 77, renewal: true }), ctx(1)).applied).toBe(
      true,
    );
    expect(sloppy.sm.execute(op({ nodeId: 3, version: 77 }), ctx(2)).applied).toBe(false);
  });

  it('encodes and validates its values', () => {
    const v = { masterNodeId: 3, version: 12, leaseMs: 5000 };
    expect(decodeMasterVariables(encodeMasterVariables(v))).toEqual(v);
    const o = { nodeId: 2, version: -1, leaseMs: 1000, renewal: true, nonce: 99 };
    expect(decodeMasterOperation(encodeMasterOperation(o))).toEqual(o);
    const bad = (s: string) => new TextEncoder().encode(s);
    expect(
      decodeMasterVariables(bad('{"masterNodeId":0,"version":1,"leaseMs":5}')),
    ).toBeUndefined();
    expect(
      decodeMasterVariables(bad('{"masterNodeId":1,"version":-1,"leaseMs":5}')),
    ).toBeUndefined();
    expect(
      decodeMasterVariables(bad('{"masterNodeId":1,"version":1,"leaseMs":0}')),
    ).toBeUndefined();
    expect(decodeMasterVariables(bad('not json'))).toBeUndefined();
    expect(decodeMasterVariables(bad('null'))).toBeUndefined();
    expect(
      decodeMasterOperation(bad('{"nodeId":1,"version":-2,"leaseMs":5,"renewal":false,"nonce":1}')),
    ).toBeUndefined();
    expect(
      decodeMasterOperation(bad('{"nodeId":1,"version":0,"leaseMs":5,"renewal":1,"nonce":1}')),
    ).toBeUndefined();
    expect(
      decodeMasterOperation(bad('{"nodeId":1,"version":0,"leaseMs":5,"renewal":false}')),
    ).toBeUndefined();
  });
});

/** An election over a fake log: proposals apply after `applyDelayMs` unless told to fail. */
function election(
  nodeId: number,
  opts: { applyDelayMs?: number; members?: number[]; lost?: boolean } = {},
) {
  const clock = newClock();
  const m = machine(nodeId, clock, {
    members: opts.members ?? [1, 2, 3],
    ...(opts.lost ? { initial: 'lost' as const } : {}),
  });
  let instanceId = 10; // the tests apply their own operations below 10
  const proposed: MasterOperation[] = [];
  const failures: unknown[] = [];
  let nextFailure: unknown;
  let canPropose = true;
  let random = 0.5;
  const e = new MasterElection(
    {
      nodeId,
      now: () => clock.nowMs,
      random: () => random,
      schedule: (d, fn) => clock.scheduler.schedule(d, fn),
      canPropose: () => canPropose,
      members: () => opts.members ?? [1, 2, 3],
      propose: (value) => {
        proposed.push(decodeMasterOperation(value)!);
        const failure = nextFailure;
        nextFailure = undefined;
        return new Promise((resolve, reject) => {
          clock.scheduler.schedule(opts.applyDelayMs ?? 50, () => {
            if (failure !== undefined) return reject(failure);
            resolve(m.sm.execute(value, ctx(instanceId++)));
          });
        });
      },
      event: () => {},
      fail: (error) => failures.push(error),
    },
    m.sm,
    { leaseMs: LEASE, leaseMarginMs: MARGIN },
  );
  /** An event-loop turn after each timer lets the promise callbacks run (VirtualWorld.advance). */
  const advance = (toMs: number) => advanceTo(clock, toMs);
  return {
    clock,
    sm: m.sm,
    e,
    proposed,
    failures,
    advance,
    failNext: (error: unknown) => (nextFailure = error),
    setCanPropose: (v: boolean) => (canPropose = v),
    setRandom: (v: number) => (random = v),
  };
}

describe('MasterElection (virtual clock)', () => {
  it('becomes master, then renews every (lease - margin)/4 ± half while it holds the lease', async () => {
    const t = election(1);
    t.e.start();
    await t.advance(100);
    expect(t.proposed).toHaveLength(1);
    expect(t.proposed[0]).toMatchObject({ nodeId: 1, version: NO_MASTER_VERSION, renewal: false });
    expect(t.sm.isMaster()).toBe(true);
    // Lease counted from the try at 0, not from the apply at 50.
    expect(t.sm.master()?.expiresAtMs).toBe(LEASE - MARGIN);
    await t.advance(60_000);
    // random() = 0.5 → every (9900/4)/2 + 0.5 × 9900/4 = 2475 ms.
    expect(t.proposed.length).toBe(1 + Math.floor(60_000 / 2475));
    expect(t.proposed.slice(1).every((o) => o.renewal && o.nodeId === 1)).toBe(true);
    expect(t.sm.counters).toMatchObject({ elections: 1, renewals: t.proposed.length - 1 });
    expect(t.sm.isMaster()).toBe(true);
  });

  it('does not try while another node holds a lease in its view, and tries once it expired', async () => {
    const t = election(2);
    t.sm.execute(op({ nodeId: 1, version: NO_MASTER_VERSION }), ctx(0));
    t.e.start();
    await t.advance(LEASE - 1);
    expect(t.proposed).toHaveLength(0);
    await t.advance(LEASE + 2500);
    // Elected at the lease end, renewed at its next tick (12,375).
    expect(t.proposed).toHaveLength(2);
    expect(t.proposed[0]).toMatchObject({ nodeId: 2, version: 0, renewal: false });
    expect(t.proposed[1]).toMatchObject({ nodeId: 2, renewal: true });
    expect(t.sm.isMaster()).toBe(true);
  });

  it('tries the moment another node’s lease ends in its view, not at its next tick (issue 22)', async () => {
    const t = election(2);
    t.sm.execute(op({ nodeId: 1, version: NO_MASTER_VERSION }), ctx(0));
    t.e.start();
    await t.advance(LEASE - 1);
    expect(t.proposed).toHaveLength(0);
    // Node 2 comes first after node 1: it tries at the lease end itself (its ticks fall at
    // multiples of 2475 ms, the next after 10,000 at 12,375).
    await t.advance(LEASE);
    expect(t.proposed).toHaveLength(1);
    expect(t.proposed[0]).toMatchObject({ nodeId: 2, version: 0, renewal: false });
    await t.advance(LEASE + 50);
    expect(t.sm.isMaster()).toBe(true);
  });

  it('a later candidate waits its stagger, and tries not at all once the first one’s lease arrives', async () => {
    const STAGGER = Math.floor((LEASE - MARGIN) / 4 / 2);
    // Node 3 comes second after node 1 (2 first).
    const t = election(3);
    t.sm.execute(op({ nodeId: 1, version: NO_MASTER_VERSION }), ctx(0));
    t.e.start();
    await t.advance(LEASE + STAGGER - 1);
    expect(t.proposed).toHaveLength(0);
    await t.advance(LEASE + STAGGER);
    expect(t.proposed).toHaveLength(1);
    expect(t.proposed[0]).toMatchObject({ nodeId: 3, version: 0 });
    // The same, but node 2's election applies within node 3's stagger: node 3 keeps quiet.
    const u = election(3);
    u.sm.execute(op({ nodeId: 1, version: NO_MASTER_VERSION }), ctx(0));
    u.e.start();
    await u.advance(LEASE + 20);
    u.sm.execute(op({ nodeId: 2, version: 0, nonce: 9 }), ctx(1));
    await u.advance(LEASE + STAGGER + 100);
    expect(u.proposed).toHaveLength(0);
    expect(u.sm.master()?.nodeId).toBe(2);
    // The order wraps: after node 3, node 1 comes first and node 2 second.
    const w1 = election(1);
    const w2 = election(2);
    for (const w of [w1, w2]) {
      w.sm.execute(op({ nodeId: 3, version: NO_MASTER_VERSION }), ctx(0));
      w.e.start();
      await w.advance(LEASE);
    }
    expect([w1.proposed.length, w2.proposed.length]).toEqual([1, 0]);
    await w2.advance(LEASE + STAGGER);
    expect(w2.proposed).toHaveLength(1);
  });

  it('counts the expiry of a lease it could not renew, and a failed proposal', async () => {
    const t = election(1);
    t.e.start();
    await t.advance(100);
    expect(t.sm.isMaster()).toBe(true);
    t.setCanPropose(false); // e.g. the group stopped
    await t.advance(LEASE);
    expect(t.sm.isMaster()).toBe(false);
    expect(t.sm.counters.expiries).toBe(1);
    t.setCanPropose(true);
    t.failNext(new PaxosError('E_TIMEOUT', 'timed out'));
    await t.advance(LEASE + 2600);
    expect(t.sm.counters.attemptsFailed).toBe(1);
    await t.advance(LEASE + 5200);
    expect(t.sm.isMaster()).toBe(true);
    expect(t.failures).toEqual([]);
  });

  it('hands an unexpected (non-coded) proposal failure to the error path', async () => {
    const t = election(1);
    t.failNext(new TypeError('bug'));
    t.e.start();
    await t.advance(100);
    expect(t.failures).toHaveLength(1);
    expect(t.sm.counters.attemptsFailed).toBe(0);
  });

  it('dropMaster ends the lease at once and skips tries for two leases', async () => {
    const t = election(1);
    t.e.start();
    await t.advance(100);
    expect(t.e.drop()).toBe(true);
    expect(t.sm.isMaster()).toBe(false);
    const before = t.proposed.length;
    await t.advance(100 + 2 * LEASE - 10);
    expect(t.proposed.length).toBe(before);
    await t.advance(100 + 2 * LEASE + 2500);
    expect(t.proposed.length).toBe(before + 1);
    expect(t.sm.isMaster()).toBe(true);
    expect(t.sm.counters.drops).toBe(1);
  });

  it('works on a clock below zero (a monotonic clock has no meaningful origin)', async () => {
    const t = election(1);
    t.clock.nowMs = -50_000;
    expect(t.sm.master()).toBeUndefined();
    t.e.start();
    await t.advance(-49_900);
    expect(t.proposed).toHaveLength(1);
    expect(t.sm.master()).toEqual({
      nodeId: 1,
      version: 10,
      expiresAtMs: -50_000 + LEASE - MARGIN,
    });
    expect(t.e.drop()).toBe(true);
    expect(t.sm.master()).toBeUndefined();
  });

  it('does not propose while its master variables are lost', async () => {
    const t = election(1, { lost: true });
    t.e.start();
    await t.advance(30_000);
    expect(t.proposed).toHaveLength(0);
    t.sm.adopt({ masterNodeId: 2, version: 3, leaseMs: LEASE }, 4);
    // Node 1 comes second after node 2: it tries half a try interval after the lease ends.
    await t.advance(30_000 + LEASE + 1237);
    expect(t.proposed).toHaveLength(1);
    expect(t.proposed[0]).toMatchObject({ nodeId: 1, version: 3 });
  });

  it('stops its timers', async () => {
    const t = election(1);
    t.e.start();
    await t.advance(100);
    t.e.stop();
    await t.advance(30_000);
    expect(t.proposed).toHaveLength(1);
  });

  it('refuses a lease below 1 s or a margin over half the lease', () => {
    expect(() => checkMasterOptions({ leaseMs: 999, leaseMarginMs: 0 })).toThrow(
      expect.objectContaining({ code: 'E_BAD_ARGUMENT' }),
    );
    expect(() => checkMasterOptions({ leaseMs: 1000, leaseMarginMs: 501 })).toThrow(
      expect.objectContaining({ code: 'E_BAD_ARGUMENT' }),
    );
    expect(() => checkMasterOptions({ leaseMs: 1000, leaseMarginMs: 500 })).not.toThrow();
  });
});
