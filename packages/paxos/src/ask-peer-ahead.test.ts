// Issue 22, the proposer's side of "finish a catch-up at once": a node that missed an instance
// (its acceptor never accepted the winning ballot, so ProposerSendSuccess teaches it nothing)
// used to learn it only at its next AskforLearn, 2.5–3 s later (issue 18 saw the master lag up to
// 2.5 s). The winner's next Prepare or Accept shows that it is ahead; the group tells the learner
// (Learner.peerIsAt), which asks that node at once. On virtual time (VirtualWorld), one seed.
import { afterEach, describe, expect, it } from 'vitest';
import { createTestCluster, type TestCluster } from './adapters/testing-entry';
import type { StateMachine } from './index';

const bytes = (s: string) => new TextEncoder().encode(s);

class Log implements StateMachine {
  readonly values: string[] = [];
  readonly smId = 10;
  execute(value: Uint8Array): void {
    this.values.push(new TextDecoder().decode(value));
  }
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Far beyond the time the test allows: only an ask prompted by the winner can be in time. */
const ASK_INTERVAL_MS = 10_000;
const LEARNER_STALL_MS = 1000;

async function cluster(): Promise<{ c: TestCluster<'single'>; logs: Map<number, Log> }> {
  const logs = new Map<number, Log>();
  const c = await createTestCluster({
    stateMachine: (id) => {
      const log = new Log();
      logs.set(id, log);
      return log;
    },
    learner: { askforLearnIntervalMs: ASK_INTERVAL_MS, learnerStallMs: LEARNER_STALL_MS },
  });
  cleanups.push(() => c.stop());
  return { c, logs };
}

describe('a node that missed an instance learns it from the next Prepare/Accept', () => {
  it('a proposer that lost its instance to another proposer learns it at once, and its value lands', async () => {
    const { c, logs } = await cluster();
    const [n1, n2] = [c.node(1).group(), c.node(2).group()];
    await n1.propose(bytes('a'));
    await c.converged();
    // Node 2 wins the next instance with node 3; nothing of it reaches node 1.
    c.net.cutOneWay(2, 1);
    const won = await n2.propose(bytes('b'));
    c.net.heal();
    expect(n1.status().learner.instanceId).toBe(won.instanceId);
    const asksBefore = n1.status().learner.counters.askforLearnSent;
    const healedAtMs = c.world.nowMs;
    // Node 1 proposes for the instance node 2 won (its peers are past it and ignore it); node 2
    // proposes the next one: its Accept shows node 1 that node 2 is ahead.
    const mine = n1.propose(bytes('d'));
    void mine.catch(() => undefined); // awaited below; a failure must not also go unhandled
    const next = await n2.propose(bytes('c'));
    await n1.waitApplied(next.instanceId);
    const caughtUpMs = c.world.nowMs - healedAtMs;
    const landed = await mine;
    const doneMs = c.world.nowMs - healedAtMs;
    expect(logs.get(1)!.values.slice(0, 3)).toEqual(['a', 'b', 'c']);
    expect(landed.instanceId).toBe(next.instanceId + 1);
    const learner = n1.status().learner;
    expect(learner.counters.asksToPeerAhead).toBeGreaterThanOrEqual(1);
    expect(learner.counters.stalls).toBe(0);
    // No periodic AskforLearn came into it: the node was asked directly.
    expect(learner.counters.askforLearnSent).toBe(asksBefore);
    expect(caughtUpMs).toBeLessThan(LEARNER_STALL_MS / 2);
    expect(doneMs).toBeLessThan(ASK_INTERVAL_MS / 4);
    await c.converged();
  });
});
