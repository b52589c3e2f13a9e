// The learner's port onto its group (LearnerPort): what the learner reads of the acceptor, the
// membership and master variables, and how it sends, schedules and reports.
import type { Logger } from '@tspaxos/core';
import type { CheckpointManager } from '@tspaxos/checkpoint';
import { Learner, type LearnerCarry, type LearnerPort } from '@tspaxos/learner';
import type { PaxosMsg } from '@tspaxos/transport';
import type { Acceptor } from './acceptor';
import type { Followers } from './followers';
import type { GroupConfig } from './group-config';
import type { IOLoop } from './io-loop';
import type { MasterStateMachine } from './master';
import { encodeMasterVariables, encodeStoredMaster, NO_MASTER_YET } from './master-variables';
import {
  decodeSystemVariables,
  encodeSystemVariables,
  type SystemStateMachine,
} from './state-machine';

/** What the port reads of its group; functions where the group replaces or sets it later. */
export interface LearnerPortContext {
  readonly config: GroupConfig;
  readonly loop: IOLoop;
  readonly acceptor: Acceptor;
  readonly system: SystemStateMachine;
  readonly master: MasterStateMachine;
  readonly followers: Followers;
  checkpoint(): CheckpointManager | undefined;
  members(): readonly number[];
  nowInstanceId(): number;
  lastChecksum(): number;
  paxosActiveAtMs(): number;
  sendTo(to: number, msg: PaxosMsg): void;
  checkNewValue(): void;
  log: Logger;
}

export function learnerPort(group: LearnerPortContext): LearnerPort {
  const { config, loop, acceptor, system, master } = group;
  return {
    nodeId: config.nodeId,
    group: config.group,
    store: config.store,
    acceptor: {
      promiseBallot: () => acceptor.promiseBallot,
      acceptedState: () => ({
        ballot: acceptor.acceptedBallot,
        value: acceptor.acceptedValue,
        checksum: acceptor.checksum,
      }),
    },
    variables: {
      system: () => encodeSystemVariables(system.current),
      applySystem: (bytes) => {
        const v = decodeSystemVariables(bytes);
        return v !== undefined && system.adopt(v);
      },
      master: () => {
        // Known and none applied yet is news too, for a peer that forgot its state.
        if (!master.anchored) return undefined;
        const v = master.variables;
        return v === undefined ? encodeStoredMaster(NO_MASTER_YET) : encodeMasterVariables(v);
      },
      applyMaster: (bytes, asOfInstanceId) => master.adoptEncoded(bytes, asOfInstanceId),
      masterAnchored: () => master.anchored,
    },
    membership: {
      peers: () => {
        const peers = group.members().filter((m) => m !== config.nodeId);
        const followTo = config.followToNodeId;
        if (followTo !== undefined && !peers.includes(followTo)) peers.push(followTo);
        return peers;
      },
      followers: () => group.followers.live(),
      addFollower: (nodeId) => group.followers.add(nodeId, group.members().includes(nodeId)),
      followToNodeId: () => config.followToNodeId,
    },
    runtime: {
      now: () => config.scheduler.now(),
      random: () => config.random.next(),
      schedule: (delayMs, fn) => loop.schedule(delayMs, fn),
      scheduleIdle: (fn) => loop.scheduleIdle(fn),
      // The learner's stream yields to the group's own Paxos traffic (learner option
      // senderBusyTurnMaxMs). A proposal merely in flight does not count: one stuck because
      // the only other acceptor is the node catching up must not slow the catch-up it waits for.
      paxosActiveAtMs: () => group.paxosActiveAtMs(),
      event: (name, fields) => group.log('debug', name, fields),
    },
    releaseLentFrames:
      config.store.copiesValues === true &&
      config.stateMachines.every((sm) => sm.copiesValues === true),
    send: (to, msg) => group.sendTo(to, msg),
    lastChecksum: () => group.lastChecksum(),
    minChosenInstanceId: () => config.store.getMinChosenInstanceId(config.group),
    needCheckpoint: (from, peerMin) => {
      const checkpoint = group.checkpoint();
      const asked = checkpoint?.prepareForAskforCheckpoint(from) ?? false;
      group.log(asked ? 'info' : 'debug', asked ? 'asked-for-checkpoint' : 'needs-checkpoint', {
        from,
        peerMinChosenInstanceId: peerMin,
        instanceId: group.nowInstanceId(),
        ...(checkpoint === undefined ? { note: 'no checkpoint config: cannot ask' } : {}),
      });
    },
    ...(config.senderBudget !== undefined ? { senderBudget: config.senderBudget } : {}),
    notify: (event) => config.onEvent?.({ group: config.group, ...event }),
    // A peer's claim to be ahead was dropped at a stall: what waits may be proposed now.
    latestMayHaveChanged: () => loop.enqueue(() => group.checkNewValue()),
  };
}

/** The group's learner over this port (a new one when the group restarts from a checkpoint). */
/** `carried`: what the learner this one replaces handed over (a restart from a checkpoint). */
export function createLearner(group: LearnerPortContext, carried?: LearnerCarry): Learner {
  const { config } = group;
  return new Learner(
    learnerPort(group),
    config.options.learner,
    {
      skipChainCheck: config.faults?.learnerSkipsChainCheck ?? false,
      releaseLentFramesEarly: config.faults?.releaseLentFramesEarly ?? false,
    },
    carried,
  );
}
