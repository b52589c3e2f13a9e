// Bringing a group's state machines up to its log at start (PhxPaxos Instance::Init + PlayLog):
// skip to the machines' checkpoint when the log is behind it, then replay the log from the
// oldest machine checkpoint up to the now instance.
import type { Logger } from '@tspaxos/core';
import { chainChecksumAt } from '@tspaxos/checkpoint';
import type { Acceptor } from './acceptor';
import type { Executor } from './executor';
import type { GroupConfig } from './group-config';
import { MAX_SYNC_SLICE_MS } from './options';
import { isPromiseLike, SyncSlice } from './scheduler';

export interface RestartContext {
  readonly config: GroupConfig;
  readonly acceptor: Acceptor;
  readonly executor: Executor;
  /** Where the chain goes on from: set as each record is replayed. */
  setLastChecksum(checksum: number): void;
  log: Logger;
}

/**
 * Every machine's checkpoint is ahead of the log: the log lost writes that were not synced
 * (a follower), or was deleted, after the machines made their checkpoints durable. As PhxPaxos
 * Instance::Init (with ProtectionLogic_IsCheckpointInstanceIDCorrect), the group starts after
 * the checkpoint instead of learning, and executing a second time, instances the machines
 * already hold. The log is reset to start there (no gap a peer could ask for), keeping the
 * acceptor's promise, as the checkpoint install does. Returns the instance to start at.
 */
export async function skipToCheckpoint(group: RestartContext, now: number): Promise<number> {
  const { store, group: id } = group.config;
  const machines = group.executor.userMachines();
  if (machines.length === 0) return now;
  let next = Number.POSITIVE_INFINITY;
  for (const sm of machines) next = Math.min(next, (sm.getCheckpointInstanceId?.(id) ?? -1) + 1);
  if (next <= now) return now;
  const promise = group.acceptor.promiseBallot;
  await store.resetGroup(id, { minChosenInstanceId: next });
  await store.put(
    id,
    {
      instanceId: next,
      promiseId: promise.proposalId,
      promiseNodeId: promise.nodeId,
      acceptedId: 0,
      acceptedNodeId: 0,
      value: new Uint8Array(0),
      checksum: 0,
    },
    { sync: true },
  );
  // The master state stays: every master operation applied here was persisted (synced) before
  // the group moved on, so meta masterVariables already reflects the instances up to the
  // checkpoint; re-learned operations name older versions and are refused as stale.
  group.log('warn', 'log-behind-checkpoint', { logInstanceId: now, startInstanceId: next });
  return group.acceptor.load();
}

/**
 * Replays the log into the machines from the oldest machine checkpoint (none: from the start of
 * the log) up to `now`, and sets the chain's last checksum. Returns where the replay started.
 */
export async function replayLog(
  group: RestartContext,
  now: number,
  minChosen: number,
): Promise<number> {
  const { store, group: id, scheduler } = group.config;
  let from = now;
  for (const sm of group.executor.userMachines())
    from = Math.min(from, (sm.getCheckpointInstanceId?.(id) ?? -1) + 1);
  from = Math.max(from, minChosen);
  // Replay in slices of MAX_SYNC_SLICE_MS so a long log does not block the event loop (other
  // groups' timers, the network). range() reads in bounded chunks, so pausing between two
  // records holds no storage statement open.
  const slice = new SyncSlice(scheduler, MAX_SYNC_SLICE_MS);
  for (const record of store.range(id, from, now)) {
    const executed = group.executor.execute(record.instanceId, record.value, undefined);
    if (isPromiseLike(executed)) await executed;
    group.setLastChecksum(record.checksum);
    if (slice.due()) await slice.yield();
  }
  if (now > 0 && from >= now) group.setLastChecksum(chainChecksumAt(store, id, now - 1));
  return from;
}
