// The checkpoint roles' port onto their group (design.md §4): the log, the user state machines, the
// acceptor's floor and promise, and the master and system variables a checkpoint carries.
import { CheckpointManager } from '@tspaxos/checkpoint';
import { PaxosMsgType, type PaxosMsg, paxosMsg } from '@tspaxos/transport';
import type { Acceptor } from './acceptor';
import type { Executor } from './executor';
import type { GroupCheckpointConfig, GroupConfig } from './group-config';
import type { MasterStateMachine } from './master';

export interface CheckpointPortContext {
  readonly config: GroupConfig;
  readonly acceptor: Acceptor;
  readonly master: MasterStateMachine;
  readonly executor: Executor;
  members(): readonly number[];
  nowInstanceId(): number;
  sendTo(to: number, msg: PaxosMsg): void;
  carriedGroupState(): string;
  takeCarriedGroupState(checkpointInstanceId: number, groupState: string): Promise<void>;
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
      // (Group.takeCarriedGroupState: the sender's master and system variables, durably, before
      // the log reset).
      groupState: () => group.carriedGroupState(),
      beforeLogReset: (cp, groupState) => group.takeCarriedGroupState(cp, groupState),
      applyForCheckpoint: (instanceId, value) =>
        group.executor.executeForCheckpoint(instanceId, value),
    },
    c.options,
  );
}
