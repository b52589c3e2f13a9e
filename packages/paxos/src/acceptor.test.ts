// The acceptor's pre/postconditions, driven directly: each assertion tripped by the bug it guards
// against (planted through UnsafeFaults, or state set from outside as a buggy caller would).
import { MemoryLogStore } from '@tspaxos/storage';
import { type PaxosMsg, PaxosMsgType, paxosMsg } from '@tspaxos/transport';
import { describe, expect, it } from 'vitest';
import { Acceptor, type AcceptorFaults } from './acceptor';
import { InvariantError } from '@tspaxos/core';

const GROUP = 0;

function acceptor(faults: AcceptorFaults = {}) {
  const persistFailures: unknown[] = [];
  const a = new Acceptor(1, GROUP, new MemoryLogStore(), (e) => persistFailures.push(e), faults);
  return { a, persistFailures };
}

const prepare = (proposalId: number, nodeId = 2, instanceId = 0): PaxosMsg =>
  paxosMsg({ msgType: PaxosMsgType.Prepare, instanceId, nodeId, proposalId });
const accept = (proposalId: number, nodeId = 2, instanceId = 0): PaxosMsg =>
  paxosMsg({
    msgType: PaxosMsgType.Accept,
    instanceId,
    nodeId,
    proposalId,
    value: new Uint8Array([proposalId]),
  });

describe('Acceptor invariants', () => {
  it('correct code keeps them through promises, rejections, accepts and new instances', async () => {
    const { a, persistFailures } = acceptor();
    let granted = 0;
    let rejected = 0;
    for (let instance = 0; instance < 5; instance++) {
      for (const msg of [
        prepare(3 * instance + 2, 2, instance),
        prepare(3 * instance + 1, 3, instance), // lower: rejected
        accept(3 * instance + 1, 3, instance), // lower: rejected
        accept(3 * instance + 2, 2, instance),
      ]) {
        const reply =
          msg.msgType === PaxosMsgType.Prepare
            ? await a.onPrepare(msg, 0)
            : await a.onAccept(msg, 0);
        if (reply!.rejectByPromiseId === 0) granted++;
        else rejected++;
      }
      a.newInstance();
    }
    expect({ granted, rejected, persistFailures: persistFailures.length }).toEqual({
      granted: 10,
      rejected: 10,
      persistFailures: 0,
    });
    expect(a.promiseBallot).toEqual({ proposalId: 14, nodeId: 2 }); // kept across instances
  });

  it('trips "the promise never decreases" on an acceptor that ignores its promise (planted forgetPromises)', async () => {
    const { a } = acceptor({ forgetPromises: true });
    await a.onAccept(accept(5), 0);
    const tripped = a.onAccept(accept(3), 0); // granted below the promise it wrote: lowers it
    await expect(tripped).rejects.toThrow(InvariantError);
    await expect(tripped).rejects.toMatchObject({
      code: 'E_INVARIANT',
      message: 'tspaxos invariant violated: the promise never decreases',
    });
    expect(a.promiseBallot).toEqual({ proposalId: 5, nodeId: 2 }); // nothing adopted
  });

  it('trips "the promise is kept across instances" on an acceptor that forgets it (planted resetPromisePerInstance)', async () => {
    const { a } = acceptor({ resetPromisePerInstance: true });
    await a.onPrepare(prepare(4), 0);
    expect(() => a.newInstance()).toThrow(
      'tspaxos invariant violated: the promise is kept across instances',
    );
  });

  it('trips "the accepted ballot is at most the promise" after a persist that leaves it above', async () => {
    const { a } = acceptor();
    await a.onPrepare(prepare(5), 0);
    // Planted from outside through a cast (the role's API allows no such write): an accepted
    // ballot above the promise; the next write makes it durable, and the postcondition says no.
    (a as unknown as { accepted: { proposalId: number; nodeId: number } }).accepted = {
      proposalId: 9,
      nodeId: 2,
    };
    await expect(a.onPrepare(prepare(7), 0)).rejects.toMatchObject({
      code: 'E_INVARIANT',
      message: 'tspaxos invariant violated: the accepted ballot is at most the promise',
    });
  });

  it('trips on a Prepare or Accept routed to it for another instance', async () => {
    const { a } = acceptor();
    await expect(a.onPrepare(prepare(1, 2, 1), 0)).rejects.toMatchObject({
      message: 'tspaxos invariant violated: a Prepare reaches the acceptor for its instance',
    });
    await expect(a.onAccept(accept(1, 2, 3), 0)).rejects.toMatchObject({
      message: 'tspaxos invariant violated: an Accept reaches the acceptor for its instance',
    });
  });
});
