// GET /readyz: whether this node should get traffic. Ready when every group is started, not
// stopped, does not need a checkpoint, and is within --ready-max-lag instances of the highest
// instance id a peer reported, and a majority of its members is reachable; otherwise every
// reason, as codes an operator can look up (the README lists them). The lag is only as fresh as
// the peers' last reports: a node cut off from a majority cannot know how far the others went
// (the highest id it saw is frozen), so it says E_NO_QUORUM rather than a stale "ready".
import type { NodeStatus } from './status';

export type NotReadyCode =
  | 'E_STOPPING'
  | 'E_NOT_STARTED'
  | 'E_GROUP_STOPPED'
  | 'E_NEEDS_CHECKPOINT'
  | 'E_BEHIND'
  | 'E_NO_QUORUM';

export interface NotReadyReason {
  code: NotReadyCode;
  /** Null for the whole node. */
  group: number | null;
  message: string;
}

/** Default of --ready-max-lag (ours: a few batches of a busy group; a restarted node is far more). */
export const DEFAULT_READY_MAX_LAG_INSTANCES = 100;

export function notReadyReasons(
  status: NodeStatus | undefined,
  maxLagInstances: number,
): NotReadyReason[] {
  if (status === undefined)
    return [{ code: 'E_NOT_STARTED', group: null, message: 'the node is starting' }];
  const out: NotReadyReason[] = [];
  if (status.stopping)
    out.push({ code: 'E_STOPPING', group: null, message: 'the node is stopping' });
  for (const g of status.groups) {
    if (g.stopped !== null)
      out.push({
        code: 'E_GROUP_STOPPED',
        group: g.group,
        message: `group ${g.group} stopped: ${g.stopped.code}: ${g.stopped.message}`,
      });
    const cp = g.checkpoint;
    if (cp !== null && (cp.needsCheckpoint !== undefined || cp.mode))
      out.push({
        code: 'E_NEEDS_CHECKPOINT',
        group: g.group,
        message: `group ${g.group} needs a checkpoint from a peer (${cp.needsCheckpoint?.message ?? 'asking for one'})`,
      });
    const lag = g.learner.highestSeenInstanceId - g.instanceId;
    if (lag > maxLagInstances)
      out.push({
        code: 'E_BEHIND',
        group: g.group,
        message: `group ${g.group} is ${lag} instances behind node ${g.learner.highestSeenFromNodeId} (now ${g.instanceId}, peer at ${g.learner.highestSeenInstanceId}; at most ${maxLagInstances})`,
      });
    if (!g.quorum)
      out.push({
        code: 'E_NO_QUORUM',
        group: g.group,
        message: `group ${g.group} reaches no majority of its members (${g.members.join(',')}): it cannot know whether it is current, nor take writes`,
      });
  }
  return out;
}
