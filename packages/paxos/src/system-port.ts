// The system (membership) state machine's port onto its group: its variables from the log's meta
// (the initial members at a first start), each change written durably before the group moves on,
// and a node removed from the membership dropping its lease at once.
import type { Logger } from '@tspaxos/core';
import type { GroupConfig } from './group-config';
import type { MasterStateMachine } from './master';
import {
  decodeSystemVariables,
  encodeSystemVariables,
  SystemStateMachine,
  type SystemVariables,
} from './state-machine';

export interface SystemPortContext {
  readonly config: GroupConfig;
  /** Built after the system machine: read when the membership changes. */
  readonly master: MasterStateMachine;
  /** A meta write in flight, already handled (a failure stops the group); awaited before moving on. */
  pendingWrite(write: Promise<void>): void;
  persistFailed(error: unknown): void;
  log: Logger;
}

export function createSystem(group: SystemPortContext): SystemStateMachine {
  const { config } = group;
  const { store } = config;
  const saved = store.getMeta(config.group, 'systemVariables');
  const initial: SystemVariables = (saved && decodeSystemVariables(saved)) || {
    version: 0,
    members: [...config.initialMembers].sort((a, b) => a - b),
  };
  return new SystemStateMachine(initial, (v) => {
    // Handled at once (no promise without a handler); awaited before the group moves on.
    group.pendingWrite(
      store
        .setMeta(config.group, 'systemVariables', encodeSystemVariables(v), { sync: true })
        .then(undefined, (error: unknown) => group.persistFailed(error)),
    );
    // A node removed from the membership stops holding its lease at once (the others wait it out).
    if (!v.members.includes(config.nodeId) && group.master.dropLocal())
      group.log('info', 'master-dropped', { reason: 'removed from the membership' });
  });
}
