// One group on one node (PhxPaxos Instance): owns proposer, acceptor and learner, routes every
// message, and when the learner has learned an instance, executes the state machines, settles
// the committer's pending proposal, and starts the next instance. It verifies the checksum chain
// of every message that carries one; a mismatch means this node's log diverged from a peer's,
// so the group stops accepting values and says so in its status (PhxPaxos asserts and dies).
// This file keeps routing, the chain and the lifecycle (start, stop, restart from a checkpoint);
// the rest reads the group through ports() (group-ports.ts) and lives beside it (design.md §5):
// proposing.ts, execution.ts, restart.ts, checkpoint-driver.ts, failures.ts, retry-queue.ts,
// *-port.ts.
import { StorageError } from '@tspaxos/storage';
import { CheckpointManager, chainChecksumAt, checkReplayable } from '@tspaxos/checkpoint';
import { assert, type Ballot, isNullBallot, type LogLevel, NULL_BALLOT } from '@tspaxos/core';
import { Learner } from '@tspaxos/learner';
import {
  type CheckpointMsg,
  type LentFrame,
  type PaxosMsg,
  PaxosMsgType,
} from '@tspaxos/transport';
import { Acceptor } from './acceptor';
import { Committer, type ProposeResult } from './committer';
import { PaxosError } from './errors';
import { IOLoop } from './io-loop';
import { createCheckpointManager, type InstalledMaster } from './checkpoint-port';
import { CheckpointDriver } from './checkpoint-driver';
import { Executor } from './executor';
import { Execution } from './execution';
import { GroupFailures, isInstallError } from './failures';
import { Followers } from './followers';
import { createSystem } from './system-port';
import { replayLog, skipToCheckpoint, takeIncarnation } from './restart';
import type { GroupCheckpointConfig, GroupConfig, GroupEvent } from './group-config';
import { PortedGroup } from './group-ports';
import { createLearner } from './learner-port';
import { createElection, createMaster } from './master-port';
import {
  type ErrorCount,
  type GroupCounters,
  type GroupErrors,
  type GroupStatus,
  groupStatus,
  newGroupCounters,
  newGroupErrors,
} from './group-status';
import { type MasterInfo, MasterStateMachine } from './master';
import { MasterElection } from './election';
import type { Proposer } from './proposer';
import { createProposer } from './proposer-port';
import { RetryQueue } from './retry-queue';
import { Proposing } from './proposing';
import {
  encodeSystemVariables,
  type SystemStateMachine,
  type SystemVariables,
} from './state-machine';
import { NO_SM_ID, SYSTEM_SM_ID } from './value';

export type { ErrorCount, GroupCounters, GroupErrors, GroupStatus };
export type { GroupCheckpointConfig, GroupConfig, GroupEvent };

const LEARNER_TYPES = new Set<number>([
  PaxosMsgType.AskforLearn,
  PaxosMsgType.SendLearnValue,
  PaxosMsgType.ProposerSendSuccess,
  PaxosMsgType.SendNowInstanceID,
  PaxosMsgType.ComfirmAskforLearn,
  PaxosMsgType.SendLearnValueAck,
  PaxosMsgType.AskforCheckpoint,
]);

export class Group extends PortedGroup {
  readonly loop: IOLoop;
  protected readonly acceptor: Acceptor;
  protected readonly proposer: Proposer;
  /** Replaced when the group restarts from a checkpoint. */
  protected learner: Learner;
  /** Checkpoint roles (undefined without GroupConfig.checkpoint). */
  protected readonly checkpoint: CheckpointManager | undefined;
  protected readonly committer: Committer;
  protected readonly counters = newGroupCounters();
  protected readonly errors = newGroupErrors();

  protected lastChecksum = 0;
  /** Ballot the previous instance was chosen with (rides on Prepare/Accept, see receiveForAcceptor). */
  protected previousChosenBallot: Ballot = NULL_BALLOT;
  protected readonly system: SystemStateMachine;
  protected readonly master: MasterStateMachine;
  /** The master state the last install left (takeCarriedGroupState); undefined: unknown. */
  protected installedMaster: InstalledMaster | undefined;
  private readonly election: MasterElection | undefined;
  protected readonly executor: Executor;
  private readonly execution: Execution;
  protected readonly proposing: Proposing;
  protected readonly failures: GroupFailures;
  /** Drives the checkpoint roles: their frames, their timer, compaction. */
  private readonly checkpoints: CheckpointDriver;
  protected readonly followers: Followers;
  private readonly retryQueue: RetryQueue;
  /** When this group last handled a Prepare, Accept or reply (the learner sender reads it). */
  protected paxosActiveAtMs = Number.NEGATIVE_INFINITY;
  protected stoppedReason: PaxosError | undefined;
  protected closed = false;
  /** System-variable writes in flight, each already handled (a failure stops the group). */
  protected pendingWrites: Promise<void>[] = [];
  private learnerMessagesHandled = 0;

  constructor(protected readonly config: GroupConfig) {
    super();
    const { store, group, options } = config;
    this.failures = new GroupFailures(this.ports());
    this.retryQueue = new RetryQueue(options.retryQueueMaxMessages);
    this.loop = new IOLoop(
      config.scheduler,
      options.ioLoopQueueMaxMessages,
      (error) => this.failures.taskFailed(error),
      { backgroundWorkAsTasks: config.faults?.backgroundWorkAsTasks ?? false },
    );
    this.system = createSystem(this.ports());
    this.followers = new Followers(
      () => config.scheduler.now(),
      options.learner,
      (event, fields) => this.log('info', event, fields),
    );
    this.master = createMaster(this.ports());
    this.executor = new Executor(group, config.stateMachines, [this.system, this.master]);
    this.election =
      config.masterElection === true && config.followToNodeId === undefined
        ? createElection(this.ports())
        : undefined;
    this.acceptor = new Acceptor(
      config.nodeId,
      group,
      store,
      (error) => this.failures.persistFailed(error),
      config.faults,
    );
    // A chosen value's callers are answered once the next instance's Accept has left (issue 22):
    // what they run next (an HTTP reply each) would otherwise go first, and with 16 writers that
    // held the Accept back by 16 replies. nextInstance() runs right after committed()
    // (execution.ts), in the same synchronous stretch, so by the microtask that decides, the next
    // value is in flight if one was waiting. If none was (one writer), nothing has to leave first:
    // they are answered then, ahead of the chosen value's ProposerSendSuccess (the transport
    // writes it at the next setImmediate), saving the writer a turn and those socket writes.
    this.committer = new Committer(options, config.nodeId, (settle) =>
      this.loop.afterThisTurnIf(() => this.committer.inFlight !== undefined, settle),
    );
    this.proposer = createProposer(this.ports());
    this.learner = createLearner(this.ports());
    this.checkpoint = config.checkpoint && createCheckpointManager(this.ports(), config.checkpoint);
    this.execution = new Execution(this.ports());
    this.proposing = new Proposing(this.ports());
    this.checkpoints = new CheckpointDriver(this.ports());
  }

  get isFollower(): boolean {
    return this.config.followToNodeId !== undefined;
  }

  get instanceId(): number {
    return this.learner.instanceId;
  }

  /** Whether this node has applied every instance it knows chosen (a master's read index). */
  appliedAllKnownChosen(): boolean {
    return !this.learner.state.isLearned && this.learner.isLatest();
  }

  get members(): readonly number[] {
    return this.system.current.members;
  }

  /**
   * This member's answer to a quorum read (quorum-read.ts): its acceptor's instance (every one
   * below is chosen here) and whether it accepted a value there (maybe chosen, not learned here).
   */
  acceptorPosition(): { instanceId: number; accepted: boolean } {
    const accepted = !isNullBallot(this.acceptor.acceptedBallot);
    return { instanceId: this.acceptor.instanceId, accepted };
  }

  /** A member showed its now instance id (a quorum read's reply): ask it if it is ahead. */
  peerIsAt(nodeId: number, nowInstanceId: number): void {
    this.loop.enqueue(() => this.learner.peerIsAt(nodeId, nowInstanceId));
  }

  /** The membership as applied here: version, voting members, the application's meta. */
  get membership(): Readonly<SystemVariables> {
    return this.system.current;
  }

  /**
   * Loads the acceptor's state, replays the log into the state machines from their checkpoints
   * up to the now instance (PhxPaxos Instance::Init + PlayLog), and starts learning.
   */
  async start(): Promise<void> {
    const { store, group } = this.config;
    // A crash may have left an install to finish or a transfer to discard (design.md §4).
    let recovered;
    try {
      recovered = await this.checkpoint?.recover();
    } catch (error) {
      // The install a crash interrupted cannot be finished (a machine fails to load it, a staged
      // file is damaged): the record stays for the next start; the group serves status only.
      if (!isInstallError(error)) throw error;
      this.stopGroup(
        new PaxosError('E_CHECKPOINT_INSTALL_FAILED', (error as Error).message, { cause: error }),
      );
      return;
    }
    if (recovered !== undefined && recovered.kind !== 'nothing')
      this.log('warn', 'checkpoint-recovered', { outcome: recovered.kind });
    this.committer.setIncarnation(await takeIncarnation(this.config));
    let now = this.acceptor.load();
    const minChosen = store.getMinChosenInstanceId(group);
    // The start-up rule: never skip records a machine still needs (PhxPaxos PlayLog fails too).
    const needs =
      this.checkpoint?.checkStartup() ??
      checkReplayable(this.executor.userMachines(), group, minChosen);
    if (needs !== undefined) {
      this.learner.instanceId = now;
      this.proposer.startAt(now);
      this.log('error', 'needs-checkpoint', { code: needs.code, message: needs.message });
      if (this.checkpoint === undefined)
        this.stopGroup(new PaxosError('E_NEEDS_CHECKPOINT', needs.message, { cause: needs }));
      this.checkpoints.armTimer(0);
      return;
    }
    now = await skipToCheckpoint(this.ports(), now);
    const replayStartedMs = this.config.scheduler.now();
    const from = await replayLog(this.ports(), now, minChosen);
    await Promise.all(this.pendingWrites.splice(0));
    if (this.stoppedReason !== undefined) return; // a replayed membership could not be saved
    this.startRolesAt(now);
    this.log('info', 'group-started', {
      instanceId: now,
      replayedFrom: from,
      replayedInstances: Math.max(0, now - from),
      replayMs: Math.round(this.config.scheduler.now() - replayStartedMs),
      members: this.members,
    });
    this.learner.start();
    this.election?.start();
    if (
      !this.isFollower &&
      this.members.includes(this.config.nodeId) &&
      !isNullBallot(this.acceptor.acceptedBallot)
    ) {
      // Recovery (ours; PhxPaxos waits for the next proposal): the highest instance holds an
      // accepted value that may have been chosen and learned by nobody (e.g. every node restarted).
      // A no-op proposal runs prepare on it, which re-proposes that value if any acceptor of the
      // majority has it, so it gets learned (and applied) now, not at the next client write.
      this.propose(NO_SM_ID, new Uint8Array(0), false, this.config.options.proposeTimeoutMs).then(
        undefined,
        (error: unknown) => this.failures.recoveryProposalFailed(error),
      );
    }
    this.checkpoints.armTimer();
  }

  /** Stops timers and work; pending proposals reject with E_STOPPED. */
  async stop(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.committer.rejectAll(new PaxosError('E_STOPPED', 'the node is stopping'));
    this.proposer.exit();
    this.learner.stop();
    this.election?.stop();
    this.proposing.stop();
    this.checkpoints.cancelTimer();
    await this.loop.stop();
    await this.checkpoint?.stop();
  }

  /** A message from the network for this group; `from` is the authenticated sender. */
  /** `lent`: the receive buffer the message lies in (only the learner releases one). */
  receive(from: number, msg: PaxosMsg, lent?: LentFrame): void {
    this.counters.messagesReceived++;
    if (msg.nodeId !== from) {
      this.counters.messagesDropped++;
      this.log('warn', 'message-node-mismatch', {
        from,
        claimed: msg.nodeId,
        msgType: msg.msgType,
      });
      return;
    }
    if (!this.loop.enqueueMessage(() => this.handle(msg, false, lent)))
      this.counters.messagesDropped++;
  }

  propose(
    smId: number,
    value: Uint8Array,
    batch: boolean,
    timeoutMs: number,
  ): Promise<ProposeResult> {
    return this.proposing.propose(smId, value, batch, timeoutMs);
  }

  /** Proposes a new membership against the current version (PhxPaxos AddMember/RemoveMember). */
  changeMembership(members: number[], timeoutMs: number, meta?: string): Promise<ProposeResult> {
    const change = encodeSystemVariables({
      version: this.system.current.version,
      members,
      ...(meta !== undefined ? { meta } : {}),
    });
    return this.propose(SYSTEM_SM_ID, change, false, timeoutMs);
  }

  /** The master in this node's view (PhxPaxos GetMasterWithVersion). */
  getMaster(): MasterInfo | undefined {
    return this.master.master();
  }

  /** True while this node holds the master lease on its own clock (PhxPaxos IsIMMaster). */
  isMaster(): boolean {
    return this.stoppedReason === undefined && !this.closed && this.master.isMaster();
  }

  /**
   * Asks the peers now for what this node has not learned (Learner.learnNow, on the group's
   * loop): for a caller that waits for a chosen value no proposer will bring here.
   */
  learnNow(): void {
    this.loop.enqueue(() => {
      if (this.stoppedReason === undefined && !this.closed) this.learner.learnNow();
    });
  }

  /** Gives up the lease here and skips elections for two leases (PhxPaxos DropMaster). */
  dropMaster(): boolean {
    return this.election !== undefined ? this.election.drop() : this.master.dropLocal();
  }

  status(): GroupStatus {
    const learner = this.learner.status();
    return groupStatus({
      config: this.config,
      machines: this.executor.all(),
      learner,
      lastChecksum: this.lastChecksum,
      isFollower: this.isFollower,
      members: this.members,
      membershipVersion: this.system.current.version,
      followers: this.followers.live(),
      stoppedReason: this.stoppedReason,
      errors: this.errors,
      proposer: this.proposer,
      committer: this.committer,
      counters: this.counters,
      master: this.master,
      election: this.election,
      isMaster: this.isMaster(),
      checkpoint: this.checkpoint,
    });
  }

  // ---- routing (PhxPaxos Instance::OnReceivePaxosMsg) ---------------------------------------

  private async handle(msg: PaxosMsg, isRetry: boolean, lent?: LentFrame): Promise<void> {
    if (this.stoppedReason !== undefined || this.closed) return;
    if (this.checkpoint?.inCheckpointMode) {
      // PhxPaxos Instance::OnReceiveMessage: no Paxos message while a checkpoint is awaited.
      this.counters.checkpointModeDrops++;
      return;
    }
    switch (msg.msgType) {
      case PaxosMsgType.AskforCheckpoint:
        if (this.checkpoint === undefined) this.counters.messagesDropped++;
        else await this.checkpoint.onAskforCheckpoint(msg.nodeId);
        return;
      case PaxosMsgType.PrepareReply:
      case PaxosMsgType.AcceptReply:
        this.paxosActiveAtMs = this.config.scheduler.now();
        this.receiveForProposer(msg);
        return;
      case PaxosMsgType.Prepare:
      case PaxosMsgType.Accept:
        this.paxosActiveAtMs = this.config.scheduler.now();
        if (!this.checksumLogic(msg)) return;
        await this.receiveForAcceptor(msg, isRetry);
        return;
      default:
        if (!LEARNER_TYPES.has(msg.msgType)) {
          this.counters.messagesDropped++;
          return;
        }
        if (!this.checksumLogic(msg)) return;
        await this.receiveForLearner(msg, lent);
    }
  }

  private receiveForProposer(msg: PaxosMsg): void {
    if (this.isFollower) return;
    if (msg.instanceId !== this.proposer.instanceId) {
      if (msg.instanceId + 1 === this.proposer.instanceId) this.proposer.onExpiredReply(msg);
      return;
    }
    if (msg.msgType === PaxosMsgType.PrepareReply) this.proposer.onPrepareReply(msg);
    else this.proposer.onAcceptReply(msg);
  }

  private async receiveForAcceptor(msg: PaxosMsg, isRetry: boolean): Promise<void> {
    if (this.isFollower || !this.members.includes(msg.nodeId)) return;
    const now = this.acceptor.instanceId;
    if (msg.instanceId === now + 1 && msg.preAcceptId > 0) {
      // The proposer has moved on, so instance `now` was chosen, and the message says with which
      // ballot: if my acceptor accepted that ballot, learn its value without waiting for a
      // ProposerSendSuccess that may be lost. PhxPaxos assumes the chosen ballot is the message's
      // own, which is wrong when the proposer learned `now` from a peer with another ballot.
      const success = {
        ...msg,
        instanceId: now,
        msgType: PaxosMsgType.ProposerSendSuccess,
        lastChecksum: 0,
      };
      success.proposalId = msg.preAcceptId;
      success.nodeId = msg.preAcceptNodeId;
      await this.receiveForLearner(success);
    }
    if (this.learner.majorityPast(msg.instanceId)) {
      // A majority of the members has learned this instance already, as they told us: it is
      // chosen, no proposer needs my vote for it, and my learner learns it (a stream, in
      // batches). Voting costs a synced write per instance, one instance at a time: a restarted
      // node used to vote on the ~800 Accepts a peer had queued for it while it was down, each
      // retried as it reached its instance, and caught up in ~1 s instead of ~0.2 s (issue 22).
      // Stricter than PhxPaxos (Instance::ReceiveMsgForAcceptor votes on any message for its
      // instance); a majority's reports, not one peer's, so one inflated report cannot stop
      // this node from voting.
      this.counters.votesSkippedChosen++;
      return;
    }
    if (msg.instanceId === this.acceptor.instanceId && this.learner.state.isLearned) {
      // Already chosen and stored here (the rest of a streamed batch, not executed yet): the
      // acceptor must not accept anything over the chosen record.
      return;
    }
    if (msg.instanceId === this.acceptor.instanceId) {
      const reply =
        msg.msgType === PaxosMsgType.Prepare
          ? await this.acceptor.onPrepare(msg, this.lastChecksum)
          : await this.acceptor.onAccept(msg, this.lastChecksum);
      if (reply !== undefined) this.sendTo(msg.nodeId, reply);
    } else if (!isRetry && msg.instanceId > this.acceptor.instanceId) {
      if (msg.instanceId >= this.learner.seenInstanceId)
        this.retryQueue.add(msg, this.acceptor.instanceId);
      // Its proposer is past us and we could not learn the gap here: ask it (issue 22).
      this.learner.peerIsAt(msg.nodeId, msg.instanceId);
    }
  }

  private async receiveForLearner(msg: PaxosMsg, lent?: LentFrame): Promise<void> {
    const every = this.config.faults?.throwInLearnerTaskEvery;
    if (every !== undefined && ++this.learnerMessagesHandled % every === 0)
      throw new TypeError(`planted bug: learner message ${this.learnerMessagesHandled} throws`);
    try {
      await this.learner.handle(msg, lent);
    } catch (error) {
      // A learned value that cannot be written (the store refuses writes after a failed fsync)
      // stops the group; anything else is a bug and goes to the loop as a task error.
      if (!(error instanceof StorageError)) throw error;
      this.failures.persistFailed(error);
      return;
    }
    await this.execution.afterLearnerMessage();
  }

  /** Awaits the system-variable writes in flight; false when one failed (the group stopped). */
  protected async flushWrites(): Promise<boolean> {
    if (this.pendingWrites.length > 0) await Promise.all(this.pendingWrites.splice(0));
    return this.stoppedReason === undefined;
  }

  /**
   * Checks the chain (PhxPaxos Instance::ChecksumLogic): a message about my current instance that
   * carries the checksum of the instance before it must agree with mine.
   */
  private checksumLogic(msg: PaxosMsg): boolean {
    if (msg.lastChecksum === 0 || msg.instanceId !== this.learner.instanceId) return true;
    if (this.learner.instanceId > 0 && this.lastChecksum === 0) {
      // I restarted from a checkpoint and do not know my chain yet: adopt the peer's.
      this.lastChecksum = msg.lastChecksum;
      return true;
    }
    if (msg.lastChecksum === this.lastChecksum) {
      this.counters.checksumChecks++;
      return true;
    }
    this.counters.checksumMismatches++;
    this.stopGroup(
      new PaxosError(
        'E_CHECKSUM_MISMATCH',
        `group ${this.config.group}: checksum of instance ${msg.instanceId - 1} is ${this.lastChecksum} here but ` +
          `${msg.lastChecksum} at node ${msg.nodeId}: the logs diverged; the group stopped accepting values`,
      ),
    );
    return false;
  }

  protected stopGroup(error: PaxosError): void {
    if (this.stoppedReason !== undefined) return;
    this.stoppedReason = error;
    this.log('error', 'group-stopped', { code: error.code, message: error.message });
    this.election?.stop();
    this.proposer.exit();
    this.learner.stop();
    this.committer.rejectAll(error);
  }

  /** The learned instance is settled (execution.ts): the chain and every role move on. */
  protected nextInstance(): Promise<void> | undefined {
    this.lastChecksum = this.learner.state.newChecksum;
    this.previousChosenBallot = this.learner.state.ballot;
    this.newInstance();
    this.proposing.rearmCommitTimer();
    if (this.retryQueue.length > 0)
      return this.retryMessages().then(() => this.proposing.checkNewValue());
    this.proposing.checkNewValue();
    return undefined;
  }

  private newInstance(): void {
    this.acceptor.newInstance();
    this.learner.newInstance();
    if (this.config.faults?.proposerMissesNewInstance !== true) this.proposer.newInstance();
    this.assertAligned();
  }

  /**
   * The roles work on one instance: acceptor, learner and proposer on the now instance, and the
   * committer's value in flight (if any) proposed for it; a value for an earlier instance was
   * settled when that instance was learned. Checked at every new instance (no allocation unless
   * it fails: a catch-up learns thousands per second).
   */
  assertAligned(): void {
    const id = this.learner.instanceId;
    const flight = this.committer.inFlight;
    if (
      this.acceptor.instanceId === id &&
      this.proposer.instanceId === id &&
      (flight === undefined || flight.instanceId === id)
    )
      return;
    assert(
      false,
      `group ${this.config.group}: the roles' instance ids differ: learner ${id}, acceptor ` +
        `${this.acceptor.instanceId}, proposer ${this.proposer.instanceId}, committer ${flight?.instanceId}`,
    );
  }

  private async retryMessages(): Promise<void> {
    if (this.retryQueue.length === 0) return;
    for (const msg of this.retryQueue.takeDue(this.acceptor.instanceId)) {
      this.counters.retriedMessages++;
      await this.handle(msg, true);
    }
  }

  protected proposerChosen(instanceId: number, proposalId: number): void {
    const msg = this.learner.proposerSendSuccessMsg(instanceId, proposalId);
    // Learn here first, then tell the others (PhxPaxos BroadcastMessage_Type_RunSelf_First).
    this.loop.enqueue(() => this.receiveForLearner(msg));
    for (const member of this.members) if (member !== this.config.nodeId) this.sendTo(member, msg);
  }

  // ---- sending --------------------------------------------------------------------------

  protected sendTo(to: number, msg: PaxosMsg): void {
    if (to === this.config.nodeId) {
      this.loop.enqueue(() => this.handle(msg, false));
      return;
    }
    this.config.send(to, this.config.group, msg);
  }

  /**
   * To every member, this node included (PhxPaxos BroadcastMessage), the others first: this node
   * handles its copy once they have left (IOLoop.enqueueNextTurn), so its acceptor's write runs
   * in parallel with theirs instead of ahead of the sending (issue 22). The acceptor still makes
   * its vote durable before it replies, so the proposer never counts a vote that is not.
   */
  protected broadcast(msg: PaxosMsg): void {
    let toSelf = false;
    for (const member of this.members) {
      if (member === this.config.nodeId) toSelf = true;
      else this.config.send(member, this.config.group, msg);
    }
    if (toSelf) this.loop.enqueueNextTurn(() => this.handle(msg, false));
  }

  // ---- checkpoints (design.md §4) -------------------------------------------------------------

  /** A checkpoint frame from the network for this group; `from` is the authenticated sender. */
  receiveCheckpoint(from: number, msg: CheckpointMsg): void {
    this.checkpoints.receive(from, msg);
  }

  /**
   * Deletes the log below the checkpoint, keeping `keep` instances (node.compact). The new min
   * chosen id is durable when this resolves; records go in bounded steps on the next ticks.
   */
  compact(keep: number): Promise<number> {
    return this.checkpoints.compact(keep);
  }

  /**
   * After an install the group restarts in process from the checkpoint (PhxPaxos exits the
   * process): pending proposals fail, proposer, acceptor and learner start over from the log
   * the install left (empty after the checkpoint, with the acceptor's promise), and the learner
   * asks its peers for the rest.
   */
  protected restartFromCheckpoint(checkpointInstanceId: number): void {
    this.counters.checkpointRestarts++;
    // The master state the install left (beforeLogReset, durably), in memory again here, so
    // nothing adopted while the install ran survives it.
    this.master.reload(this.installedMaster?.master, this.installedMaster?.asOf ?? 0);
    this.committer.rejectAll(
      new PaxosError(
        'E_CHECKPOINT_INSTALLED',
        `group ${this.config.group} restarted from the checkpoint of instance ${checkpointInstanceId}: ` +
          'the proposal was not chosen here; propose it again',
      ),
    );
    this.proposer.exit();
    this.proposer.cancelSkipPrepare();
    // The new learner goes on with the counters and the catch-up under way (the install is a
    // step of that catch-up: it ends, and is counted, when the new learner reaches its target).
    const carried = this.learner.handOver();
    this.retryQueue.clear();
    this.previousChosenBallot = NULL_BALLOT;
    const now = this.acceptor.reload();
    // The chain goes on from the sender's value at the checkpoint instance, which the install
    // kept (0 when the sender did not know it: adopted from a peer then, design.md §2).
    this.lastChecksum = chainChecksumAt(this.config.store, this.config.group, now - 1);
    this.learner = createLearner(this.ports(), carried);
    this.startRolesAt(now);
    this.log('info', 'group-restarted-from-checkpoint', { checkpointInstanceId, instanceId: now });
    this.learner.start();
    this.checkpoints.armTimer();
  }

  /** Learner and proposer start at the acceptor's instance, above its promise. */
  private startRolesAt(now: number): void {
    this.learner.instanceId = now;
    this.proposer.startAt(now);
    this.proposer.setStartProposalId(this.acceptor.promiseBallot.proposalId + 1);
    this.assertAligned();
  }

  protected log(level: LogLevel, event: string, fields: Record<string, unknown>): void {
    this.config.log?.(level, event, {
      node: this.config.nodeId,
      group: this.config.group,
      ...fields,
    });
  }
}
