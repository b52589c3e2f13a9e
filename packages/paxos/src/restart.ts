// Bringing a group's state machines up to its log at start (PhxPaxos Instance::Init + PlayLog):
// skip to the machines' checkpoint when the log is behind it, then replay the log from what the
// machines hold (their applied instance, else their checkpoint) up to the now instance; and the
// incarnation each start takes.
import type { Logger } from '@tspaxos/core';
import { chainChecksumAt } from '@tspaxos/checkpoint';
import type { Acceptor } from './acceptor';
import type { Executor } from './executor';
import type { GroupConfig } from './group-config';
import type { StateMachine } from './state-machine';
import { MAX_SYNC_SLICE_MS } from './options';
import { isPromiseLike, SyncSlice } from './scheduler';

/** The log's meta key of the group's incarnation on this node (u32 LE; see takeIncarnation). */
const INCARNATION_META_KEY = 'incarnation';

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
 * Where a machine's replay begins: at the instance it reports applied (replayed again, see
 * StateMachine.getAppliedInstanceId), else after its checkpoint (none: the start of the log).
 * Never after the instance it applied: executing instance N+1 waits for N's system and master
 * writes to be durable (execution.ts), so a machine's N+1 proves N's are; its own N does not.
 */
export function replayStartOf(sm: StateMachine, group: number): number {
  const applied = sm.getAppliedInstanceId?.(group);
  const checkpointStart = (sm.getCheckpointInstanceId?.(group) ?? -1) + 1;
  return applied === undefined ? checkpointStart : Math.max(applied, 0);
}

/**
 * Replays the log into the machines from the lowest machine's replay start (replayStartOf) up to
 * `now`, and sets the chain's last checksum. Returns where the replay started.
 */
export async function replayLog(
  group: RestartContext,
  now: number,
  minChosen: number,
): Promise<number> {
  const { store, group: id, scheduler } = group.config;
  let from = now;
  for (const sm of group.executor.userMachines()) from = Math.min(from, replayStartOf(sm, id));
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

/**
 * A new incarnation for this start: the identities of the values proposed from now on differ
 * from every earlier start's (value.ts). Durable before anything is proposed, so a crash cannot
 * hand the same number to the next start. The first start (or a log whose meta was lost) draws
 * one at random, so a wiped node does not repeat the numbers of its former life.
 */
export async function takeIncarnation(config: GroupConfig): Promise<number> {
  const { store, group } = config;
  const saved = store.getMeta(group, INCARNATION_META_KEY);
  const incarnation =
    saved?.length === 4
      ? (new DataView(saved.buffer, saved.byteOffset, 4).getUint32(0, true) + 1) % 0x1_0000_0000
      : Math.floor(config.random.next() * 0x1_0000_0000);
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, incarnation, true);
  await store.setMeta(group, INCARNATION_META_KEY, bytes, { sync: true });
  return incarnation;
}
