// The virtual-time world of `@tspaxos/paxos/testing` as the package's own tests drive it: timers
// at absolute times, one event at a time (runNext), and onSend, the hook that drops what a node
// sends (counted).
import { forwardMsg, ForwardMsgType } from '@tspaxos/transport';
import { describe, expect, it } from 'vitest';
import type { StateMachine } from '../state-machine';
import { createTestCluster, VirtualWorld } from './testing-entry';

const bytes = (s: string) => new TextEncoder().encode(s);

class Count implements StateMachine {
  readonly smId = 10;
  applied = 0;
  execute(): number {
    return ++this.applied;
  }
}

describe('VirtualWorld', () => {
  it('runs one event at a time in time order, a delivery before a timer due at the same instant', () => {
    const world = new VirtualWorld({ autoRun: false });
    const seen: string[] = [];
    world.net.setDefaultLink({ delayMs: [5, 5] });
    world.endpoint(2).onMessage(() => seen.push(`frame@${world.nowMs}`));
    world.at(10, () => seen.push(`t10@${world.nowMs}`));
    world.at(7.5, () => seen.push(`t7.5@${world.nowMs}`));
    const cancelled = world.at(6, () => seen.push('cancelled'));
    world.at(5, () => seen.push(`t5@${world.nowMs}`));
    world.endpoint(1).send(2, 0, {
      kind: 'forward',
      msg: forwardMsg({ msgType: ForwardMsgType.ForwardReply, nodeId: 1, requestId: 1 }),
    });
    cancelled();
    expect(world.nextEventAt()).toBe(5);
    expect(world.runNext(4)).toBe(false);
    expect(world.nowMs).toBe(0);
    while (world.runNext(100));
    expect(seen).toEqual(['frame@5', 't5@5', 't7.5@7.5', 't10@10']);
    expect(world.nextEventAt()).toBeUndefined();
    // A time already passed runs now.
    world.at(3, () => seen.push(`late@${world.nowMs}`));
    expect(world.runNext(10)).toBe(true);
    expect(seen.at(-1)).toBe('late@10');
  });
});

describe('onSend on a test cluster', () => {
  it('drops what node 3 sends while it returns false, counted; the other two still choose', async () => {
    const counts = new Map<number, Count>();
    const c = await createTestCluster({
      stateMachine: (id) => counts.set(id, new Count()).get(id)!,
    });
    try {
      c.world.onSend = (from) => from !== 3;
      const { instanceId } = await c.node(1).group().propose(bytes('a'));
      await c.node(3).group().waitApplied(instanceId); // it still hears the others
      expect(c.world.sendsDropped).toBeGreaterThan(0);
      const dropped = c.world.sendsDropped;
      c.world.onSend = undefined;
      const second = await c.node(3).group().propose(bytes('b'));
      await c.node(1).group().waitApplied(second.instanceId);
      expect(c.world.sendsDropped).toBe(dropped);
      expect([1, 2, 3].map((id) => counts.get(id)!.applied)).toEqual([2, 2, 2]);
    } finally {
      await c.stop();
    }
  });
});
