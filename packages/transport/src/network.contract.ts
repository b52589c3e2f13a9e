// The Network compliance suite (style.md "Contracts"): MemoryNetwork and TcpNetwork both run it.
import { describe, expect, it } from 'vitest';
import { type Message, paxosMsg } from './messages';
import type { Network } from './ports';

export interface NetworkPair {
  /** Node 1 and node 2, each able to reach the other. */
  a: Network;
  b: Network;
  /**
   * Lets frames arrive until `done()` holds (a virtual pump, or polling on the real clock); fails
   * when it does not hold in the end (no frame left in flight, or 10 s of real time).
   */
  deliver(done: () => boolean): Promise<void>;
  /**
   * Lets whatever is in flight arrive, for checks that nothing does. On a real network this is a
   * short wait, and one-sided: a slow machine can only make "nothing arrived" more likely to hold,
   * never fail it wrongly.
   */
  settle(): Promise<void>;
  cleanup(): Promise<void>;
}

const msg = (i: number, value = new Uint8Array(0)): Message => ({
  kind: 'paxos',
  msg: paxosMsg({ msgType: 6, instanceId: i, nodeId: 1, value }),
});

export function describeNetworkContract(name: string, make: () => Promise<NetworkPair>): void {
  describe(`Network contract: ${name}`, () => {
    it('delivers with the sender, the group and the message intact, in order', async () => {
      const p = await make();
      try {
        const got: Array<[number, number, number, number]> = [];
        p.b.onMessage(
          (from, group, m) =>
            m.kind === 'paxos' && got.push([from, group, m.msg.instanceId, m.msg.value.length]),
        );
        for (let i = 0; i < 50; i++) p.a.send(2, 7, msg(i, new Uint8Array(i * 100)));
        await p.deliver(() => got.length >= 50);
        expect(got).toEqual(Array.from({ length: 50 }, (_, i) => [1, 7, i, i * 100]));
      } finally {
        await p.cleanup();
      }
    });

    it('never throws for an unknown peer or an oversize message', async () => {
      const p = await make();
      try {
        expect(() => p.a.send(99, 0, msg(1))).not.toThrow();
        expect(() => p.a.send(2, 0, msg(1, new Uint8Array(11 * 1024 * 1024)))).not.toThrow();
      } finally {
        await p.cleanup();
      }
    });

    it('delivers both ways, and nothing after close', async () => {
      const p = await make();
      try {
        const atA: number[] = [];
        const atB: number[] = [];
        p.a.onMessage((from) => atA.push(from));
        p.b.onMessage((from) => atB.push(from));
        p.a.send(2, 0, msg(1));
        p.b.send(1, 0, msg(2));
        await p.deliver(() => atA.length >= 1 && atB.length >= 1);
        expect([atA, atB]).toEqual([[2], [1]]);
        await p.b.close();
        p.a.send(2, 0, msg(3));
        await p.settle();
        expect(atB).toEqual([1]);
      } finally {
        await p.cleanup();
      }
    });
  });
}
