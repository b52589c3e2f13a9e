// The proposer's pre/postconditions, driven directly through a host that records what it sends
// and holds its timer: phase 2 only after phase 1, and one value per proposal id in an instance.
import { type Ballot, InvariantError, NULL_BALLOT } from '@tspaxos/core';
import { type PaxosMsg, PaxosMsgType, paxosMsg } from '@tspaxos/transport';
import { describe, expect, it } from 'vitest';
import { defaultPaxosOptions } from './options';
import { Proposer } from './proposer';

const bytes = (s: string) => new TextEncoder().encode(s);

/**
 * Node 3 of members 1, 2, 3; broadcasts are recorded, the one timer is fired by the test (its
 * delay kept in `timerDelayMs`); members in `down` are unreachable by the transport's account.
 */
function proposer() {
  const sent: PaxosMsg[] = [];
  const chosen: Array<[number, number]> = [];
  const down = new Set<number>();
  let timer: (() => void) | undefined;
  let timerDelayMs: number | undefined;
  const p = new Proposer(
    {
      nodeId: 3,
      members: () => [1, 2, 3],
      broadcast: (msg) => sent.push(msg),
      random: () => 0.5,
      reachable: (id) => !down.has(id),
      schedule: (delayMs, fn) => {
        timer = fn;
        timerDelayMs = delayMs;
        return () => {
          if (timer === fn) timer = undefined;
        };
      },
      lastChecksum: () => 0,
      previousChosenBallot: () => NULL_BALLOT,
      event: () => {},
      chosen: (instanceId, proposalId) => chosen.push([instanceId, proposalId]),
    },
    defaultPaxosOptions(),
  );
  const fireTimer = (): void => {
    const fn = timer;
    timer = undefined;
    fn?.();
  };
  return { p, sent, chosen, fireTimer, down, timerDelayMs: () => timerDelayMs };
}

function reply(
  p: Proposer,
  msgType: number,
  from: number,
  preAccept: Ballot = NULL_BALLOT,
  value = new Uint8Array(0),
): PaxosMsg {
  return paxosMsg({
    msgType,
    instanceId: p.instanceId,
    nodeId: from,
    proposalId: p.proposalId,
    preAcceptId: preAccept.proposalId,
    preAcceptNodeId: preAccept.nodeId,
    value,
  });
}

const accepts = (sent: PaxosMsg[]) => sent.filter((m) => m.msgType === PaxosMsgType.Accept);

/** Runs one instance to chosen: prepare (unless skipped), a majority of grants, accept. */
function choose(t: ReturnType<typeof proposer>, value: string): void {
  const { p } = t;
  p.newValue(bytes(value));
  if (p.phase === 'preparing') {
    p.onPrepareReply(reply(p, PaxosMsgType.PrepareReply, 1));
    p.onPrepareReply(reply(p, PaxosMsgType.PrepareReply, 2));
  }
  p.onAcceptReply(reply(p, PaxosMsgType.AcceptReply, 1));
  p.onAcceptReply(reply(p, PaxosMsgType.AcceptReply, 2));
  p.newInstance();
}

describe('Proposer invariants', () => {
  it('correct code keeps them: one prepare, then Accepts that skip it while nothing cancels the rule', () => {
    const t = proposer();
    for (const v of ['a', 'b', 'c']) choose(t, v);
    t.p.cancelSkipPrepare(); // a failed execution: the next value prepares again
    choose(t, 'd');
    expect(t.chosen).toEqual([
      [0, 1],
      [1, 1],
      [2, 1],
      [3, 1],
    ]);
    expect(t.p.counters).toMatchObject({ prepares: 2, accepts: 4, skippedPrepares: 2 });
  });

  it('trips "no Accept without a prepare majority" when the proposal id is raised without cancelling skip-prepare', () => {
    const t = proposer();
    choose(t, 'a');
    // A restart path that raises the id (setStartProposalId) but forgets cancelSkipPrepare():
    // the next value would skip prepare with an id no majority promised.
    t.p.setStartProposalId(5);
    expect(() => t.p.newValue(bytes('b'))).toThrow(InvariantError);
    expect(accepts(t.sent)).toHaveLength(1); // the Accept of 'a' only
    expect(() => t.p.newValue(bytes('b'))).toThrow(
      'tspaxos invariant violated: no Accept without a prepare majority for its proposal id',
    );
  });

  it('one proposal id keeps one value when it prepares again after its Accept timed out', () => {
    // Node 3 prepares id 1 with nodes 2 and 3 (node 1's promise is lost) and sends Accept(1, "a"),
    // which only node 3 stores. Node 1 meanwhile accepted "x" with the lower ballot (1, 2). The
    // Accept times out without a rejection, so node 3 prepares id 1 again; nodes 1 and 2 answer
    // first, node 1 reporting (1, 2) "x". Adopting "x" under id 1 would give id 1 two values
    // (node 3 holds (1, 3) "a"): a later proposer could re-choose either.
    const t = proposer();
    const { p } = t;
    p.newValue(bytes('a'));
    p.onPrepareReply(reply(p, PaxosMsgType.PrepareReply, 2));
    p.onPrepareReply(reply(p, PaxosMsgType.PrepareReply, 3));
    expect(accepts(t.sent).map((m) => [m.proposalId, new TextDecoder().decode(m.value)])).toEqual([
      [1, 'a'],
    ]);
    t.fireTimer(); // the accept timeout: prepare again, not rejected, so the same id
    expect(p.phase).toBe('preparing');
    expect(p.proposalId).toBe(1);
    p.onPrepareReply(
      reply(p, PaxosMsgType.PrepareReply, 1, { proposalId: 1, nodeId: 2 }, bytes('x')),
    );
    p.onPrepareReply(reply(p, PaxosMsgType.PrepareReply, 2));
    expect(accepts(t.sent).map((m) => [m.proposalId, new TextDecoder().decode(m.value)])).toEqual([
      [1, 'a'],
      [1, 'a'],
    ]);
  });
});

describe('Proposer: a lost round with a member down', () => {
  /** Node 2's rejection of the current round: it promised `promised`. */
  const reject = (p: Proposer, msgType: number, promised: number): PaxosMsg => ({
    ...reply(p, msgType, 2),
    rejectByPromiseId: promised,
  });

  it('prepares again after the short jittered pause when a reachable member rejects and the unreachable one alone could have saved the round', () => {
    const t = proposer();
    const { p } = t;
    const options = defaultPaxosOptions();
    t.down.add(1);
    p.newValue(bytes('a'));
    p.onPrepareReply(reply(p, PaxosMsgType.PrepareReply, 3)); // its own acceptor promises
    p.onPrepareReply(reject(p, PaxosMsgType.PrepareReply, 7)); // node 2 promised another's 7
    // Not the prepare timeout (2 s): 10–40 ms, as after a majority's rejection.
    const base = options.rejectedRetryDelayMs;
    expect(t.timerDelayMs()).toBe(Math.floor(base / 3 + 0.5 * base));
    t.fireTimer();
    expect(p.phase).toBe('preparing');
    expect(p.proposalId).toBe(8);
    expect(p.counters.prepareTimeouts).toBe(1);

    // The accept phase the same way: granted by itself, rejected by node 2, node 1 down.
    p.onPrepareReply(reply(p, PaxosMsgType.PrepareReply, 3));
    p.onPrepareReply(reply(p, PaxosMsgType.PrepareReply, 2));
    expect(p.phase).toBe('accepting');
    p.onAcceptReply(reply(p, PaxosMsgType.AcceptReply, 3));
    p.onAcceptReply(reject(p, PaxosMsgType.AcceptReply, 9));
    expect(t.timerDelayMs()).toBeLessThan(options.acceptTimeoutMs);
    t.fireTimer();
    expect(p.phase).toBe('preparing');
    expect(p.proposalId).toBe(10);
  });

  it('waits for the phase timeout when the unreachable member could still save the round, or when nobody rejected', () => {
    const options = defaultPaxosOptions();
    // Node 1 reachable: its promise may still come, so node 2's rejection alone loses nothing.
    const reachable = proposer();
    reachable.p.newValue(bytes('a'));
    reachable.p.onPrepareReply(reply(reachable.p, PaxosMsgType.PrepareReply, 3));
    reachable.p.onPrepareReply(reject(reachable.p, PaxosMsgType.PrepareReply, 7));
    expect(reachable.timerDelayMs()).toBe(options.prepareTimeoutMs);
    // Nodes 1 and 2 both down and silent: no rejection, so no retry storm, only the timeout.
    const alone = proposer();
    alone.down.add(1).add(2);
    alone.p.newValue(bytes('a'));
    alone.p.onPrepareReply(reply(alone.p, PaxosMsgType.PrepareReply, 3));
    expect(alone.timerDelayMs()).toBe(options.prepareTimeoutMs);
  });
});
