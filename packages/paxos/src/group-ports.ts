// The one context the group's parts read it through (design.md §5): the port factories
// (proposer-port.ts, learner-port.ts, master-port.ts, system-port.ts, checkpoint-port.ts) and the
// parts beside it (execution.ts, proposing.ts, restart.ts, checkpoint-driver.ts, failures.ts).
// Group extends PortedGroup: the abstract members below are all the parts may reach of it (its
// roles, the state they read or set, the moves only the group makes), none of them public, and
// group.ts keeps routing, the chain and the lifecycle.
import type { CheckpointManager } from '@tspaxos/checkpoint';
import type { Ballot, LogLevel } from '@tspaxos/core';
import type { Learner } from '@tspaxos/learner';
import type { PaxosMsg } from '@tspaxos/transport';
import type { Acceptor } from './acceptor';
import type { CheckpointDriverContext } from './checkpoint-driver';
import type { CheckpointPortContext, InstalledMaster } from './checkpoint-port';
import type { Committer, ProposeResult } from './committer';
import type { PaxosError } from './errors';
import type { ExecutionContext } from './execution';
import type { Executor } from './executor';
import type { FailuresContext, GroupFailures } from './failures';
import type { Followers } from './followers';
import type { GroupConfig } from './group-config';
import type { GroupCounters, GroupErrors } from './group-status';
import type { IOLoop } from './io-loop';
import type { LearnerPortContext } from './learner-port';
import type { MasterStateMachine } from './master';
import type { ElectionPortContext, MasterPortContext } from './master-port';
import type { Proposer } from './proposer';
import type { ProposerPortContext } from './proposer-port';
import type { Proposing, ProposingContext } from './proposing';
import type { RestartContext } from './restart';
import type { SystemStateMachine } from './state-machine';
import type { SystemPortContext } from './system-port';

/** Every part's context, as one object. */
export type GroupPorts = RestartContext &
  ProposerPortContext &
  SystemPortContext &
  FailuresContext &
  CheckpointDriverContext &
  ExecutionContext &
  ProposingContext &
  LearnerPortContext &
  MasterPortContext &
  ElectionPortContext &
  CheckpointPortContext;

export abstract class PortedGroup {
  // ---- the roles (read when a port uses them: some are built after the ports, and the learner
  // is replaced when the group restarts from a checkpoint) ----
  abstract readonly loop: IOLoop;
  protected abstract readonly config: GroupConfig;
  protected abstract readonly acceptor: Acceptor;
  protected abstract readonly proposer: Proposer;
  protected abstract learner: Learner;
  protected abstract readonly checkpoint: CheckpointManager | undefined;
  protected abstract readonly committer: Committer;
  protected abstract readonly system: SystemStateMachine;
  protected abstract readonly master: MasterStateMachine;
  protected abstract readonly executor: Executor;
  protected abstract readonly proposing: Proposing;
  protected abstract readonly failures: GroupFailures;
  protected abstract readonly followers: Followers;

  // ---- the group's state the ports read or set ----
  protected abstract readonly counters: GroupCounters;
  protected abstract readonly errors: GroupErrors;
  protected abstract lastChecksum: number;
  protected abstract readonly previousChosenBallot: Ballot;
  protected abstract installedMaster: InstalledMaster | undefined;
  protected abstract readonly paxosActiveAtMs: number;
  protected abstract readonly stoppedReason: PaxosError | undefined;
  protected abstract readonly closed: boolean;
  protected abstract readonly pendingWrites: Promise<void>[];
  abstract get isFollower(): boolean;
  abstract get members(): readonly number[];

  // ---- the moves only the group makes ----
  abstract propose(
    smId: number,
    value: Uint8Array,
    batch: boolean,
    timeoutMs: number,
  ): Promise<ProposeResult>;
  protected abstract stopGroup(error: PaxosError): void;
  protected abstract nextInstance(): Promise<void> | undefined;
  protected abstract flushWrites(): Promise<boolean>;
  protected abstract restartFromCheckpoint(checkpointInstanceId: number): void;
  protected abstract proposerChosen(instanceId: number, proposalId: number): void;
  protected abstract sendTo(to: number, msg: PaxosMsg): void;
  protected abstract broadcast(msg: PaxosMsg): void;
  protected abstract log(level: LogLevel, event: string, fields: Record<string, unknown>): void;

  /** The context the port factories read the group through (closures, no copies). */
  protected ports(): GroupPorts {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the getters read the roles when a port uses them (some are built after the ports)
    const group = this;
    return {
      config: this.config,
      get loop() {
        return group.loop;
      },
      get acceptor() {
        return group.acceptor;
      },
      get system() {
        return group.system;
      },
      get master() {
        return group.master;
      },
      get followers() {
        return group.followers;
      },
      get executor() {
        return group.executor;
      },
      get learner() {
        return group.learner;
      },
      get committer() {
        return group.committer;
      },
      get proposer() {
        return group.proposer;
      },
      counters: this.counters,
      errors: this.errors,
      isFollower: () => this.isFollower,
      closed: () => this.closed,
      stoppedReason: () => this.stoppedReason,
      restartFromCheckpoint: (cp) => this.restartFromCheckpoint(cp),
      running: () => this.stoppedReason === undefined && !this.closed,
      hasPendingWrites: () => this.pendingWrites.length > 0,
      flushWrites: () => this.flushWrites(),
      stopGroup: (error) => this.stopGroup(error),
      nextInstance: () => this.nextInstance(),
      setLastChecksum: (checksum) => {
        this.lastChecksum = checksum;
      },
      checkpoint: () => this.checkpoint,
      setInstalledMaster: (installed) => {
        this.installedMaster = installed;
      },
      members: () => this.members,
      nowInstanceId: () => this.learner.instanceId,
      lastChecksum: () => this.lastChecksum,
      previousChosenBallot: () => this.previousChosenBallot,
      broadcast: (msg) => this.broadcast(msg),
      proposerChosen: (instanceId, proposalId) => this.proposerChosen(instanceId, proposalId),
      paxosActiveAtMs: () => this.paxosActiveAtMs,
      sendTo: (to, msg) => this.sendTo(to, msg),
      checkNewValue: () => this.proposing.checkNewValue(),
      pendingWrite: (write) => {
        this.pendingWrites.push(write);
      },
      persistFailed: (error) => this.failures.persistFailed(error),
      canPropose: () =>
        !this.closed &&
        this.stoppedReason === undefined &&
        this.members.includes(this.config.nodeId),
      propose: (smId, value, batch, timeoutMs) => this.propose(smId, value, batch, timeoutMs),
      log: (level, event, fields) => this.log(level, event, fields),
    };
  }
}
