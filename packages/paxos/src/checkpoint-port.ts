// The checkpoint roles' port onto their group (design.md §4): the log, the user state machines, the
// acceptor's floor and promise, and the master and system variables a checkpoint carries.
import { CheckpointManager } from '@tspaxos/checkpoint';
import { PaxosMsgType, type PaxosMsg, paxosMsg } from '@tspaxos/transport';
import type { Acceptor } from './acceptor';
import type { Executor } from './executor';
import type { GroupCheckpointConfig, GroupConfig } from './group-config';
import type { MasterStateMachine } from './master';
import {
  decodeCarriedGroupState,
  encodeCarriedGroupState,
  encodeStoredMaster,
  encodeUnknownMaster,
  type MasterVariables,
  NO_MASTER_YET,
} from './master-variables';
import { encodeSystemVariables, type SystemStateMachine } from './state-machine';

/** The master state an install left, kept for the group's restart from the checkpoint. */
export interface InstalledMaster {
  master: MasterVariables | typeof NO_MASTER_YET;
  asOf: number;
}

export interface CheckpointPortContext {
  readonly config: GroupConfig;
  readonly acceptor: Acceptor;
  readonly master: MasterStateMachine;
  readonly system: SystemStateMachine;
  readonly executor: Executor;
  members(): readonly number[];
  nowInstanceId(): number;
  sendTo(to: number, msg: PaxosMsg): void;
  /** What takeCarriedGroupState installed (undefined: the master state is unknown). */
  setInstalledMaster(installed: InstalledMaster | undefined): void;
}

export function createCheckpointManager(
  group: CheckpointPortContext,
  c: GroupCheckpointConfig,
): CheckpointManager {
  const { config, acceptor } = group;
  return new CheckpointManager(
    {
      nodeId: config.nodeId,
      group: config.group,
      files: c.files,
      store: config.store,
      machines: group.executor.userMachines(),
      stagingRoot: c.stagingRoot,
      now: () => config.scheduler.now(),
      random: () => config.random.next(),
      sendCheckpoint: (to, msg) => c.send(to, config.group, msg),
      sendAskforCheckpoint: (to) =>
        group.sendTo(
          to,
          paxosMsg({
            msgType: PaxosMsgType.AskforCheckpoint,
            instanceId: group.nowInstanceId(),
            nodeId: config.nodeId,
          }),
        ),
      peers: () => group.members().filter((m) => m !== config.nodeId),
      majority: () => Math.floor(group.members().length / 2) + 1,
      nowInstanceId: () => group.nowInstanceId(),
      minInstallableInstanceId: () => acceptor.instanceId,
      promiseBallot: () => ({ ...acceptor.promiseBallot }),
      // What a checkpoint carries besides its files, and what an install takes of it
      // (takeCarriedGroupState: the sender's master and system variables, durably, before the
      // log reset).
      groupState: () => carriedGroupState(group),
      beforeLogReset: (cp, groupState) => takeCarriedGroupState(group, cp, groupState),
      applyForCheckpoint: (instanceId, value) =>
        group.executor.executeForCheckpoint(instanceId, value),
    },
    c.options,
  );
}

/** What a checkpoint I send carries besides its files (master.ts CarriedGroupState). */
function carriedGroupState(group: CheckpointPortContext): string {
  const v = group.master.variables;
  return encodeCarriedGroupState({
    asOf: group.nowInstanceId(),
    master: !group.master.anchored ? undefined : v === undefined ? NO_MASTER_YET : v,
    system: group.system.current,
  });
}

/**
 * The install's hook, before the log reset, at every run of it (a crash anywhere in the install
 * must not restart the node trusting its own stale variables): the checkpoint passes master
 * operations this node never applied, so its master state becomes the sender's (with the
 * sender's membership, which judged those operations), or unknown when none came. Durable
 * before the reset; see MasterStateMachine.restore for why variables ahead of the log are safe.
 */
async function takeCarriedGroupState(
  group: CheckpointPortContext,
  cp: number,
  text: string,
): Promise<void> {
  const { store, group: id } = group.config;
  const carried = text === '' ? undefined : decodeCarriedGroupState(text);
  if (text !== '' && carried === undefined) group.master.counters.malformedVariables++;
  // The sender holds the checkpoint, so its log passed cp; anything else is not its state.
  const valid = carried !== undefined && carried.asOf > cp ? carried : undefined;
  if (valid !== undefined) {
    // Version-checked like the master's: being ahead is safe, older changes are refused.
    group.system.adopt(valid.system);
    await store.setMeta(id, 'systemVariables', encodeSystemVariables(group.system.current), {
      sync: true,
    });
  }
  const installed: InstalledMaster | undefined =
    valid?.master === undefined ? undefined : { master: valid.master, asOf: valid.asOf };
  group.setInstalledMaster(installed);
  group.master.restore(installed?.master, installed?.asOf ?? 0);
  await store.setMeta(
    id,
    'masterVariables',
    installed === undefined
      ? encodeUnknownMaster()
      : encodeStoredMaster(installed.master, installed.asOf),
    { sync: true },
  );
}
