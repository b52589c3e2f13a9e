// GET /readyz's reasons from a node's status: each condition alone, and all at once.
import { describe, expect, it } from 'vitest';
import { notReadyReasons } from './readiness';
import type { GroupView, NodeStatus } from './status';

function group(g: number, over: Partial<GroupView> = {}): GroupView {
  return {
    group: g,
    instanceId: 100,
    stopped: null,
    quorum: true,
    members: [1, 2, 3],
    checkpoint: { mode: false, needsCheckpoint: undefined },
    learner: { highestSeenInstanceId: 100, highestSeenFromNodeId: 2 },
    ...over,
  } as unknown as GroupView;
}

function node(groups: GroupView[], stopping = false): NodeStatus {
  return { stopping, groups } as unknown as NodeStatus;
}

describe('notReadyReasons', () => {
  it('is empty when every group runs and is within the lag', () => {
    const lagging = group(1, {
      learner: { highestSeenInstanceId: 110, highestSeenFromNodeId: 3 },
    } as Partial<GroupView>);
    expect(notReadyReasons(node([group(0), lagging]), 10)).toEqual([]);
  });

  it('names every reason, with its group', () => {
    const reasons = notReadyReasons(
      node(
        [
          group(0, { stopped: { code: 'E_CHECKSUM_MISMATCH', message: 'diverged' } }),
          group(1, {
            checkpoint: {
              mode: false,
              needsCheckpoint: { code: 'E_NEEDS_CHECKPOINT', message: 'log starts at 110' },
            },
          } as Partial<GroupView>),
          group(2, {
            checkpoint: { mode: true, needsCheckpoint: undefined },
          } as Partial<GroupView>),
          group(3, {
            learner: { highestSeenInstanceId: 111, highestSeenFromNodeId: 3 },
          } as Partial<GroupView>),
          group(4, { quorum: false }),
        ],
        true,
      ),
      10,
    );
    expect(reasons.map((r) => [r.code, r.group])).toEqual([
      ['E_STOPPING', null],
      ['E_GROUP_STOPPED', 0],
      ['E_NEEDS_CHECKPOINT', 1],
      ['E_NEEDS_CHECKPOINT', 2],
      ['E_BEHIND', 3],
      ['E_NO_QUORUM', 4],
    ]);
    expect(reasons[5]!.message).toMatch(/reaches no majority of its members \(1,2,3\)/);
    expect(reasons[1]!.message).toMatch(/E_CHECKSUM_MISMATCH: diverged/);
    expect(reasons[4]!.message).toMatch(/11 instances behind node 3/);
  });

  it('is E_NOT_STARTED before the paxos node exists', () => {
    expect(notReadyReasons(undefined, 10).map((r) => r.code)).toEqual(['E_NOT_STARTED']);
  });
});
