// The master state machine's and the election's ports onto their group: the lease clock, the
// membership, durable master variables, and proposing through the group.
import type { Logger } from '@tspaxos/core';
import type { ProposeResult } from './committer';
import type { GroupConfig } from './group-config';
import type { IOLoop } from './io-loop';
import { MasterStateMachine } from './master';
import {
  decodeStoredMaster,
  decodeStoredMasterAsOf,
  encodeMasterVariables,
  encodeStoredMaster,
  NO_MASTER_YET,
} from './master-variables';
import { MasterElection } from './election';
import { MASTER_SM_ID } from './value';

export interface MasterPortContext {
  readonly config: GroupConfig;
  members(): readonly number[];
  nowInstanceId(): number;
  /** A meta write in flight, already handled (a failure stops the group); awaited before moving on. */
  pendingWrite(write: Promise<void>): void;
  persistFailed(error: unknown): void;
  log: Logger;
}

export function createMaster(group: MasterPortContext): MasterStateMachine {
  const { config } = group;
  const { store, scheduler } = config;
  const saved = store.getMeta(config.group, 'masterVariables');
  let initial = saved && decodeStoredMaster(saved);
  if (
    saved === undefined &&
    store.maxInstanceId(config.group) === undefined &&
    store.getMinChosenInstanceId(config.group) === 0
  ) {
    // A new group: record that no master operation was applied yet (see MasterStateMachine).
    initial = NO_MASTER_YET;
    // Not synced: the acceptor's first sync write (before any instance record exists) makes it
    // durable, and until then a crash finds a new group again. A sync write here would make
    // every start wait for an fsync. The promise is handled at once (no error unseen).
    group.pendingWrite(
      store
        .setMeta(config.group, 'masterVariables', encodeStoredMaster(NO_MASTER_YET), {
          sync: false,
        })
        .then(undefined, (error: unknown) => group.persistFailed(error)),
    );
  }
  if (initial === undefined)
    group.log('warn', 'master-variables-unknown', {
      note: 'the log has history but no master variables: no lease here until a peer sends them',
    });
  return new MasterStateMachine(
    {
      nodeId: config.nodeId,
      now: () => scheduler.now(),
      isMember: (nodeId) => group.members().includes(nodeId),
      nowInstanceId: () => group.nowInstanceId(),
      persist: (v) => {
        group.pendingWrite(
          store
            .setMeta(config.group, 'masterVariables', encodeMasterVariables(v), { sync: true })
            .then(undefined, (error: unknown) => group.persistFailed(error)),
        );
      },
      changed: (v) => {
        group.log('info', 'master-changed', { ...v });
        config.onMasterChange?.(config.group, { ...v });
      },
    },
    initial,
    config.options.masterLeaseMarginMs,
    config.faults,
    saved === undefined ? 0 : decodeStoredMasterAsOf(saved),
  );
}

export interface ElectionPortContext {
  readonly config: GroupConfig;
  readonly loop: IOLoop;
  readonly master: MasterStateMachine;
  /** Not closed, not stopped, and a member. */
  canPropose(): boolean;
  members(): readonly number[];
  propose(
    smId: number,
    value: Uint8Array,
    batch: boolean,
    timeoutMs: number,
  ): Promise<ProposeResult>;
  log: Logger;
}

export function createElection(group: ElectionPortContext): MasterElection {
  const { scheduler, random, options, nodeId } = group.config;
  const { loop } = group;
  return new MasterElection(
    {
      nodeId,
      now: () => scheduler.now(),
      random: () => random.next(),
      schedule: (delayMs, fn) => loop.schedule(delayMs, fn),
      canPropose: () => group.canPropose(),
      members: () => group.members(),
      propose: (value, timeoutMs) => group.propose(MASTER_SM_ID, value, false, timeoutMs),
      event: (name, fields) => group.log('debug', name, fields),
      fail: (error) =>
        loop.enqueue(() => {
          throw error;
        }),
    },
    group.master,
    { leaseMs: options.masterLeaseMs, leaseMarginMs: options.masterLeaseMarginMs },
  );
}
