// The checkpoint roles' port onto their group (DESIGN §4): the log, the user state machines, the
// acceptor's floor and promise, and the master variables an install must forget.
import { CheckpointManager } from '@tspaxos/checkpoint';
import { PaxosMsgType, type PaxosMsg, paxosMsg } from '@tspaxos/transport';
import type { Acceptor } from './acceptor';
import type { Executor } from './executor';
import type { GroupCheckpointConfig, GroupConfig } from './group-config';
import { encodeUnknownMaster, type MasterStateMachine } from './master';

export interface CheckpointPortContext {
  readonly config: GroupConfig;
  readonly acceptor: Acceptor;
  readonly master: MasterStateMachine;
  readonly executor: Executor;
  members(): readonly number[];
  nowInstanceId(): number;
  sendTo(to: number, msg: PaxosMsg): void;
}

export function createCheckpointManager(
  group: CheckpointPortContext,
  c: GroupCheckpointConfig,
): CheckpointManager {
  const { config, acceptor, master } = group;
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
      // The checkpoint passes master operations this node never applied: its variables are
      // forgotten, durably, before the log is reset, at every run of the install (a crash
      // anywhere in it must not restart the node trusting them; master.ts forget()).
      beforeLogReset: async () => {
        master.forget();
        await config.store.setMeta(config.group, 'masterVariables', encodeUnknownMaster(), {
          sync: true,
        });
      },
      applyForCheckpoint: (instanceId, value) =>
        group.executor.executeForCheckpoint(instanceId, value),
    },
    c.options,
  );
}
