// One group on one node (PhxPaxos Instance): owns proposer, acceptor and learner, routes every
// message, and when the learner has learned an instance, executes the state machines, settles
// the committer's pending proposal, and starts the next instance. It verifies the checksum chain
// of every message that carries one; a mismatch means this node's log diverged from a peer's,
// so the group stops accepting values and says so in its status (PhxPaxos asserts and dies).
import {
  CheckpointManager,
  checkReplayable,
  type CheckpointFiles,
  type CheckpointOptions,
  type CheckpointStatus,
} from '@tspaxos/checkpoint';
import type { LogStore } from '@tspaxos/storage';
import {
  type Ballot,
  isNullBallot,
  Learner,
  type LearnerHost,
  type LearnerStatus,
  NULL_BALLOT,
} from '@tspaxos/learner';
import { type CheckpointMsg, type PaxosMsg, PaxosMsgType, paxosMsg } from '@tspaxos/transport';
import { Acceptor, type AcceptorFaults } from './acceptor';
import { Committer, type ProposeResult } from './committer';
import { PaxosError } from './errors';
import { IOLoop } from './io-loop';
import type { PaxosOptions } from './options';
import { Proposer, type ProposerCounters } from './proposer';
import type { RandomSource, Scheduler } from './scheduler';
import {
  decodeSystemVariables,
  encodeSystemVariables,
  type ExecuteContext,
  type StateMachine,
  SystemStateMachine,
  type SystemVariables,
} from './state-machine';
import { NO_SM_ID, SYSTEM_SM_ID, bytesEqual, unpackValue } from './value';

export interface InstanceConfig {
  nodeId: number;
  group: number;
  groupCount: number;
  /** Voting members at first start (later: the system variables). */
  initialMembers: readonly number[];
  followToNodeId?: number;
  store: LogStore;
  send: (to: number, group: number, msg: PaxosMsg) => void;
  scheduler: Scheduler;
  random: RandomSource;
  stateMachines: readonly StateMachine[];
  options: PaxosOptions;
  faults?: AcceptorFaults;
  /**
   * Checkpoints (DESIGN §4): the file port, this group's staging directory and the limits.
   * Without it the group neither compacts nor sends nor receives checkpoints; the start-up rule
   * still holds (a machine older than the log stops the group with E_NEEDS_CHECKPOINT).
   */
  checkpoint?: InstanceCheckpointConfig;
  log?: (
    level: 'debug' | 'info' | 'warn' | 'error',
    event: string,
    fields: Record<string, unknown>,
  ) => void;
}

export interface InstanceCheckpointConfig {
  files: CheckpointFiles;
  stagingRoot: string;
  options: CheckpointOptions;
  send: (to: number, group: number, msg: CheckpointMsg) => void;
  /** Compact on its own, keeping options.holdCount (PhxPaxos's cleaner thread); default true. */
  autoCompact: boolean;
}

export interface GroupStatus {
  nodeId: number;
  group: number;
  /** The now instance id: the first instance not learned here. */
  instanceId: number;
  minChosenInstanceId: number;
  checkpointInstanceId: number;
  lastChecksum: number;
  isFollower: boolean;
  members: number[];
  membershipVersion: number;
  followers: number[];
  /** Set when the group stopped itself (checksum divergence): it serves status only. */
  stopped: { code: string; message: string } | undefined;
  proposer: { phase: string; proposalId: number; counters: ProposerCounters };
  learner: LearnerStatus;
  committer: {
    queued: number;
    inFlightInstanceId: number | undefined;
    counters: Committer['counters'];
  };
  counters: InstanceCounters;
  /** Checkpoint mode, transfers, cleaner and replayer (undefined without checkpoint config). */
  checkpoint: CheckpointStatus | undefined;
}

export interface InstanceCounters {
  messagesReceived: number;
  messagesDropped: number;
  instancesLearned: number;
  executeFailures: number;
  checksumMismatches: number;
  retriedMessages: number;
  /** Paxos messages not processed while in checkpoint mode (PhxPaxos ignores them too). */
  checkpointModeDrops: number;
  /** Times the group restarted in process after installing a checkpoint. */
  checkpointRestarts: number;
}

const LEARNER_TYPES = new Set<number>([
  PaxosMsgType.AskforLearn,
  PaxosMsgType.SendLearnValue,
  PaxosMsgType.ProposerSendSuccess,
  PaxosMsgType.SendNowInstanceID,
  PaxosMsgType.ComfirmAskforLearn,
  PaxosMsgType.SendLearnValueAck,
  PaxosMsgType.AskforCheckpoint,
]);

/** A coded failure of the checkpoint install (as opposed to a bug, which is rethrown). */
function isInstallError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === 'E_LOAD_FAILED' || code === 'E_CORRUPT_MANIFEST';
}

export class Instance {
  readonly acceptor: Acceptor;
  readonly proposer: Proposer;
  /** Replaced when the group restarts from a checkpoint. */
  learner: Learner;
  /** Checkpoint roles (undefined without InstanceConfig.checkpoint). */
  readonly checkpoint: CheckpointManager | undefined;
  readonly committer: Committer;
  readonly loop: IOLoop;
  readonly counters: InstanceCounters = {
    messagesReceived: 0,
    messagesDropped: 0,
    instancesLearned: 0,
    executeFailures: 0,
    checksumMismatches: 0,
    retriedMessages: 0,
    checkpointModeDrops: 0,
    checkpointRestarts: 0,
  };

  private lastChecksum = 0;
  /** Ballot the previous instance was chosen with (rides on Prepare/Accept, see receiveForAcceptor). */
  private previousChosenBallot: Ballot = NULL_BALLOT;
  private readonly system: SystemStateMachine;
  private readonly machines = new Map<number, StateMachine>();
  private readonly followers = new Set<number>();
  private retryQueue: PaxosMsg[] = [];
  private stoppedReason: PaxosError | undefined;
  private closed = false;
  private cancelCommitTimer: (() => void) | undefined;
  private commitTimerAt = Number.POSITIVE_INFINITY;
  private pendingWrites: Promise<void>[] = [];
  private executeRetryArmed = false;
  private cancelCheckpointTimer: (() => void) | undefined;

  constructor(private readonly config: InstanceConfig) {
    const { store, group, options } = config;
    this.loop = new IOLoop(config.scheduler, options.ioLoopQueueMaxMessages, (error) =>
      this.log('error', 'task-failed', { error: String(error) }),
    );
    const saved = store.getMeta(group, 'systemVariables');
    const initial: SystemVariables = (saved && decodeSystemVariables(saved)) || {
      version: 0,
      members: [...config.initialMembers].sort((a, b) => a - b),
    };
    this.system = new SystemStateMachine(initial, (v) => {
      this.pendingWrites.push(
        store.setMeta(group, 'systemVariables', encodeSystemVariables(v), { sync: true }),
      );
    });
    for (const sm of config.stateMachines) this.machines.set(sm.smId, sm);
    this.machines.set(SYSTEM_SM_ID, this.system);
    this.acceptor = new Acceptor(config.nodeId, group, store, config.faults);
    this.committer = new Committer(options);
    this.proposer = new Proposer(
      {
        nodeId: config.nodeId,
        members: () => this.system.current.members,
        broadcast: (msg) => this.broadcast(msg),
        schedule: (delay, fn) => this.loop.schedule(delay, fn),
        lastChecksum: () => this.lastChecksum,
        previousChosenBallot: () => this.previousChosenBallot,
        chosen: (instanceId, proposalId) => this.proposerChosen(instanceId, proposalId),
        event: (name, fields) => this.log('debug', `proposer-${name}`, fields),
      },
      options,
    );
    this.learner = new Learner(this.learnerHost(), options.learner);
    this.checkpoint = config.checkpoint && this.checkpointManager(config.checkpoint);
  }

  get isFollower(): boolean {
    return this.config.followToNodeId !== undefined;
  }

  get instanceId(): number {
    return this.learner.instanceId;
  }

  get members(): readonly number[] {
    return this.system.current.members;
  }

  /**
   * Loads the acceptor's state, replays the log into the state machines from their checkpoints
   * up to the now instance (PhxPaxos Instance::Init + PlayLog), and starts learning.
   */
  async start(): Promise<void> {
    const { store, group } = this.config;
    // A crash may have left an install to finish or a transfer to discard (DESIGN §4).
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
    const now = this.acceptor.load();
    const minChosen = store.getMinChosenInstanceId(group);
    // The start-up rule: never skip records a machine still needs (PhxPaxos PlayLog fails too).
    const needs =
      this.checkpoint?.checkStartup() ??
      checkReplayable(
        [...this.machines.values()].filter((sm) => sm !== this.system),
        group,
        minChosen,
      );
    if (needs !== undefined) {
      this.learner.instanceId = now;
      this.proposer.instanceId = now;
      this.log('error', 'needs-checkpoint', { code: needs.code, message: needs.message });
      if (this.checkpoint === undefined)
        this.stopGroup(new PaxosError('E_NEEDS_CHECKPOINT', needs.message, { cause: needs }));
      this.armCheckpointTimer(0);
      return;
    }
    // Replay from the oldest state machine checkpoint (none: from the start of the log).
    let from = now;
    for (const sm of this.machines.values()) {
      if (sm !== this.system)
        from = Math.min(from, (sm.getCheckpointInstanceId?.(group) ?? -1) + 1);
    }
    from = Math.max(from, minChosen);
    for (const record of store.range(group, from, now)) {
      this.executeValue(record.instanceId, record.value, undefined);
      this.lastChecksum = record.checksum;
    }
    if (now > 0 && from >= now) this.lastChecksum = store.get(group, now - 1)?.checksum ?? 0;
    await Promise.all(this.pendingWrites.splice(0));
    this.learner.instanceId = now;
    this.proposer.instanceId = now;
    this.proposer.setStartProposalId(this.acceptor.promiseBallot.proposalId + 1);
    this.log('info', 'group-started', {
      instanceId: now,
      replayedFrom: from,
      members: this.members,
    });
    this.learner.start();
    if (
      !this.isFollower &&
      this.members.includes(this.config.nodeId) &&
      !isNullBallot(this.acceptor.acceptedBallot)
    ) {
      // Recovery (ours; PhxPaxos waits for the next proposal): the highest instance holds an
      // accepted value that may have been chosen and learned by nobody (e.g. every node restarted).
      // A no-op proposal runs prepare on it, which re-proposes that value if any acceptor of the
      // majority has it, so it gets learned (and applied) now, not at the next client write.
      this.propose(NO_SM_ID, new Uint8Array(0), false, this.config.options.proposeTimeoutMs).catch(
        () => {},
      );
    }
    this.armCheckpointTimer();
  }

  /** Stops timers and work; pending proposals reject with E_STOPPED. */
  async stop(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.committer.rejectAll(new PaxosError('E_STOPPED', 'the node is stopping'));
    this.proposer.exit();
    this.learner.stop();
    this.cancelCommitTimer?.();
    this.cancelCheckpointTimer?.();
    await this.loop.stop();
    await this.checkpoint?.stop();
  }

  /** A message from the network for this group; `from` is the authenticated sender. */
  receive(from: number, msg: PaxosMsg): void {
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
    if (!this.loop.enqueueMessage(() => this.handle(msg, false))) this.counters.messagesDropped++;
  }

  propose(
    smId: number,
    value: Uint8Array,
    batch: boolean,
    timeoutMs: number,
  ): Promise<ProposeResult> {
    if (this.closed) return Promise.reject(new PaxosError('E_STOPPED', 'the node is stopped'));
    if (this.stoppedReason !== undefined) return Promise.reject(this.stoppedReason);
    const needs = this.checkpoint?.needsCheckpoint;
    if (needs !== undefined)
      return Promise.reject(new PaxosError('E_NEEDS_CHECKPOINT', needs.message, { cause: needs }));
    if (this.isFollower)
      return Promise.reject(new PaxosError('E_FOLLOWER', 'a follower cannot propose'));
    if (smId !== NO_SM_ID && !this.machines.has(smId)) {
      return Promise.reject(
        new PaxosError('E_UNKNOWN_STATE_MACHINE', `no state machine with id ${smId} on this node`),
      );
    }
    if (value.length > this.config.options.maxValueBytes) {
      return Promise.reject(
        new PaxosError(
          'E_VALUE_TOO_LARGE',
          `value of ${value.length} bytes exceeds ${this.config.options.maxValueBytes}`,
        ),
      );
    }
    const now = this.config.scheduler.now();
    const promise = this.committer.add(smId, value, batch, now, timeoutMs);
    this.loop.enqueue(() => this.checkNewValue());
    this.armCommitTimer(now + timeoutMs);
    return promise;
  }

  /** Proposes a new membership against the current version (PhxPaxos AddMember/RemoveMember). */
  changeMembership(members: number[], timeoutMs: number): Promise<ProposeResult> {
    const change = encodeSystemVariables({ version: this.system.current.version, members });
    return this.propose(SYSTEM_SM_ID, change, false, timeoutMs);
  }

  status(): GroupStatus {
    const { store, group, nodeId } = this.config;
    let checkpointInstanceId = -1;
    for (const sm of this.machines.values()) {
      if (sm.getCheckpointInstanceId)
        checkpointInstanceId = Math.max(checkpointInstanceId, sm.getCheckpointInstanceId(group));
    }
    return {
      nodeId,
      group,
      instanceId: this.learner.instanceId,
      minChosenInstanceId: store.getMinChosenInstanceId(group),
      checkpointInstanceId,
      lastChecksum: this.lastChecksum,
      isFollower: this.isFollower,
      members: [...this.members],
      membershipVersion: this.system.current.version,
      followers: [...this.followers],
      stopped:
        (this.stoppedReason && {
          code: this.stoppedReason.code,
          message: this.stoppedReason.message,
        }) ??
        this.checkpoint?.status().needsCheckpoint,
      proposer: {
        phase: this.proposer.phase,
        proposalId: this.proposer.proposalId,
        counters: { ...this.proposer.counters },
      },
      learner: this.learner.status(),
      committer: {
        queued: this.committer.queueLength,
        inFlightInstanceId: this.committer.inFlight?.instanceId,
        counters: { ...this.committer.counters },
      },
      counters: { ...this.counters },
      checkpoint: this.checkpoint?.status(),
    };
  }

  // ---- routing (PhxPaxos Instance::OnReceivePaxosMsg) ---------------------------------------

  private async handle(msg: PaxosMsg, isRetry: boolean): Promise<void> {
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
        this.receiveForProposer(msg);
        return;
      case PaxosMsgType.Prepare:
      case PaxosMsgType.Accept:
        if (!this.checksumLogic(msg)) return;
        await this.receiveForAcceptor(msg, isRetry);
        return;
      default:
        if (!LEARNER_TYPES.has(msg.msgType)) {
          this.counters.messagesDropped++;
          return;
        }
        if (!this.checksumLogic(msg)) return;
        await this.receiveForLearner(msg);
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
    if (msg.instanceId === this.acceptor.instanceId) {
      const reply =
        msg.msgType === PaxosMsgType.Prepare
          ? await this.acceptor.onPrepare(msg, this.lastChecksum)
          : await this.acceptor.onAccept(msg, this.lastChecksum);
      if (reply !== undefined) this.sendTo(msg.nodeId, reply);
    } else if (!isRetry && msg.instanceId > this.acceptor.instanceId) {
      if (msg.instanceId >= this.learner.seenInstanceId) {
        if (msg.instanceId < this.acceptor.instanceId + this.config.options.retryQueueMaxMessages) {
          if (this.retryQueue.length >= this.config.options.retryQueueMaxMessages)
            this.retryQueue.shift();
          this.retryQueue.push(msg);
        } else {
          this.retryQueue = [];
        }
      }
    }
  }

  private async receiveForLearner(msg: PaxosMsg): Promise<void> {
    await this.learner.handle(msg);
    await this.afterLearnerMessage();
  }

  /** Runs after every learner message: executes a learned value, acks, resumes the sender. */
  private async afterLearnerMessage(): Promise<void> {
    if (this.learner.state.isLearned) await this.onLearned();
    this.learner.flushAck();
    this.learner.pumpSender();
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
    if (msg.lastChecksum === this.lastChecksum) return true;
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

  private stopGroup(error: PaxosError): void {
    if (this.stoppedReason !== undefined) return;
    this.stoppedReason = error;
    this.log('error', 'group-stopped', { code: error.code, message: error.message });
    this.proposer.exit();
    this.learner.stop();
    this.committer.rejectAll(error);
  }

  // ---- learning and executing -------------------------------------------------------------

  private async onLearned(): Promise<void> {
    const instanceId = this.learner.instanceId;
    const value = this.learner.state.value;
    const flight = this.committer.inFlight;
    const isMine =
      flight !== undefined && flight.instanceId === instanceId && bytesEqual(flight.value, value);
    let results: unknown[];
    try {
      results = this.executeValue(instanceId, value, isMine);
      await Promise.all(this.pendingWrites.splice(0));
    } catch (error) {
      this.counters.executeFailures++;
      this.proposer.cancelSkipPrepare();
      if (
        error instanceof PaxosError &&
        (error.code === 'E_UNKNOWN_STATE_MACHINE' || error.code === 'E_BAD_ARGUMENT')
      ) {
        this.stopGroup(error);
        return;
      }
      this.log('error', 'execute-failed', { instanceId, error: String(error) });
      if (isMine)
        this.committer.failed(
          new PaxosError('E_EXECUTE_FAILED', `state machine failed: ${String(error)}`, {
            cause: error,
          }),
        );
      this.armExecuteRetry();
      return;
    }
    if (isMine) this.committer.committed(results);
    else if (flight !== undefined && flight.instanceId === instanceId) this.committer.conflicted();
    this.counters.instancesLearned++;
    this.lastChecksum = this.learner.state.newChecksum;
    this.previousChosenBallot = this.learner.state.ballot;
    this.newInstance();
    this.rearmCommitTimer();
    await this.retryMessages();
    this.checkNewValue();
  }

  /** Executes every state machine a value is for; returns their results in value order. */
  private executeValue(
    instanceId: number,
    packed: Uint8Array,
    isMine: boolean | undefined,
  ): unknown[] {
    const items = unpackValue(packed);
    const results: unknown[] = [];
    for (const item of items) {
      if (item.smId === NO_SM_ID) {
        results.push(undefined);
        continue;
      }
      const sm = this.machines.get(item.smId);
      if (sm === undefined) {
        throw new PaxosError(
          'E_UNKNOWN_STATE_MACHINE',
          `instance ${instanceId} is for state machine ${item.smId}, which this node does not have`,
        );
      }
      const ctx: ExecuteContext = { group: this.config.group, instanceId, isMine: isMine === true };
      results.push(sm.execute(item.value, ctx));
    }
    return results;
  }

  private armExecuteRetry(): void {
    if (this.executeRetryArmed) return;
    this.executeRetryArmed = true;
    this.loop.schedule(this.config.options.executeRetryDelayMs, async () => {
      this.executeRetryArmed = false;
      if (this.learner.state.isLearned) await this.afterLearnerMessage();
    });
  }

  private newInstance(): void {
    this.acceptor.newInstance();
    this.learner.newInstance();
    this.proposer.newInstance();
  }

  private async retryMessages(): Promise<void> {
    if (this.retryQueue.length === 0) return;
    const now = this.acceptor.instanceId;
    const due = this.retryQueue.filter((m) => m.instanceId === now);
    this.retryQueue = this.retryQueue.filter((m) => m.instanceId > now);
    for (const msg of due) {
      this.counters.retriedMessages++;
      await this.handle(msg, true);
    }
  }

  // ---- proposing (PhxPaxos Instance::CheckNewValue) -----------------------------------------

  private checkNewValue(): void {
    if (this.closed || this.stoppedReason !== undefined || this.isFollower) return;
    if (this.committer.inFlight !== undefined || !this.committer.hasWork) return;
    if (!this.learner.isLatest()) return; // behind someone: learn first, propose after
    if (!this.members.includes(this.config.nodeId)) {
      this.committer.take(this.proposer.instanceId);
      this.committer.failed(
        new PaxosError(
          'E_NOT_MEMBER',
          `node ${this.config.nodeId} is not a member of group ${this.config.group}`,
        ),
      );
      return;
    }
    const flight = this.committer.take(this.proposer.instanceId);
    if (flight !== undefined) this.proposer.newValue(flight.value);
  }

  private proposerChosen(instanceId: number, proposalId: number): void {
    const msg = this.learner.proposerSendSuccessMsg(instanceId, proposalId);
    // Learn here first, then tell the others (PhxPaxos BroadcastMessage_Type_RunSelf_First).
    this.loop.enqueue(() => this.receiveForLearner(msg));
    for (const member of this.members) if (member !== this.config.nodeId) this.sendTo(member, msg);
  }

  /**
   * Keeps one timer at the earliest commit deadline. A new proposal passes its own deadline, so
   * proposing stays O(1); the full scan of the queue runs only when the timer fires.
   */
  private armCommitTimer(deadline?: number): void {
    const next = deadline ?? this.committer.nextDeadline();
    if (next === undefined || next >= this.commitTimerAt) return;
    this.cancelCommitTimer?.();
    this.commitTimerAt = next;
    this.cancelCommitTimer = this.loop.schedule(
      Math.max(0, next - this.config.scheduler.now()),
      () => {
        this.cancelCommitTimer = undefined;
        this.commitTimerAt = Number.POSITIVE_INFINITY;
        if (this.committer.expire(this.config.scheduler.now())) this.proposer.exit();
        this.armCommitTimer();
        this.checkNewValue();
      },
    );
  }

  /** Drops the commit timer once nothing waits or is in flight. */
  private rearmCommitTimer(): void {
    if (!this.committer.hasWork && this.committer.inFlight === undefined) {
      this.cancelCommitTimer?.();
      this.cancelCommitTimer = undefined;
      this.commitTimerAt = Number.POSITIVE_INFINITY;
    }
  }

  // ---- sending --------------------------------------------------------------------------

  private sendTo(to: number, msg: PaxosMsg): void {
    if (to === this.config.nodeId) {
      this.loop.enqueue(() => this.handle(msg, false));
      return;
    }
    this.config.send(to, this.config.group, msg);
  }

  /** To every member, this node included (PhxPaxos BroadcastMessage). */
  private broadcast(msg: PaxosMsg): void {
    for (const member of this.members) this.sendTo(member, msg);
  }

  // ---- checkpoints (DESIGN §4) -------------------------------------------------------------

  /** A checkpoint frame from the network for this group; `from` is the authenticated sender. */
  receiveCheckpoint(from: number, msg: CheckpointMsg): void {
    this.counters.messagesReceived++;
    if (this.checkpoint === undefined || msg.nodeId !== from) {
      this.counters.messagesDropped++;
      return;
    }
    const manager = this.checkpoint;
    const accepted = this.loop.enqueueMessage(async () => {
      if (this.closed || this.stoppedReason !== undefined) return;
      let event;
      try {
        event = await manager.handle(from, msg);
      } catch (error) {
        // The install could not finish (a machine failed to load, a staged file is damaged): the
        // record stays, a restart tries again; meanwhile the group serves status only.
        if (!isInstallError(error)) throw error;
        this.stopGroup(
          new PaxosError('E_CHECKPOINT_INSTALL_FAILED', String((error as Error).message), {
            cause: error,
          }),
        );
        return;
      }
      if (event?.kind === 'installed') this.restartFromCheckpoint(event.checkpointInstanceId);
    });
    if (!accepted) this.counters.messagesDropped++;
  }

  /**
   * Deletes the log below the checkpoint, keeping `keep` instances (node.compact). The new min
   * chosen id is durable when this resolves; records go in bounded steps on the next ticks.
   */
  compact(keep: number): Promise<number> {
    const manager = this.checkpoint;
    if (manager === undefined)
      return Promise.reject(new PaxosError('E_BAD_ARGUMENT', 'the group has no checkpoint config'));
    if (this.closed) return Promise.reject(new PaxosError('E_STOPPED', 'the node is stopped'));
    // One durable write of the min chosen id (no loop task: a stopping loop drops its queue and
    // would leave this promise unsettled); the deletion steps run on the loop's checkpoint timer.
    return manager.compact(keep).then((minChosen) => {
      this.armCheckpointTimer(0);
      return minChosen;
    });
  }

  private checkpointManager(c: InstanceCheckpointConfig): CheckpointManager {
    const { config } = this;
    const machines = [...this.machines.values()].filter((sm) => sm !== this.system);
    return new CheckpointManager(
      {
        nodeId: config.nodeId,
        group: config.group,
        files: c.files,
        store: config.store,
        machines,
        stagingRoot: c.stagingRoot,
        now: () => config.scheduler.now(),
        random: () => config.random.next(),
        sendCheckpoint: (to, msg) => c.send(to, config.group, msg),
        sendAskforCheckpoint: (to) =>
          this.sendTo(
            to,
            paxosMsg({
              msgType: PaxosMsgType.AskforCheckpoint,
              instanceId: this.learner.instanceId,
              nodeId: config.nodeId,
            }),
          ),
        peers: () => this.members.filter((m) => m !== config.nodeId),
        majority: () => Math.floor(this.members.length / 2) + 1,
        nowInstanceId: () => this.learner.instanceId,
        minInstallableInstanceId: () => this.acceptor.instanceId,
        promiseBallot: () => ({ ...this.acceptor.promiseBallot }),
        applyForCheckpoint: (instanceId, value) => {
          for (const item of unpackValue(value)) {
            const sm = this.machines.get(item.smId);
            if (sm?.executeForCheckpoint?.(config.group, instanceId, item.value) === false)
              return false;
          }
          return true;
        },
      },
      c.options,
    );
  }

  /** The checkpoint roles' timer: sender timeouts, mode, cleaner and replayer steps. */
  private armCheckpointTimer(delayMs?: number): void {
    const manager = this.checkpoint;
    if (manager === undefined || this.closed) return;
    const options = this.config.checkpoint!.options;
    this.cancelCheckpointTimer?.();
    this.cancelCheckpointTimer = this.loop.schedule(delayMs ?? options.tickIntervalMs, async () => {
      this.cancelCheckpointTimer = undefined;
      if (this.closed) return;
      let more = false;
      try {
        more = await manager.tick({ autoCompact: this.config.checkpoint!.autoCompact });
      } finally {
        this.armCheckpointTimer(more ? options.cleanerStepDelayMs : undefined);
      }
    });
  }

  /**
   * After an install the group restarts in process from the checkpoint (PhxPaxos exits the
   * process): pending proposals fail, proposer, acceptor and learner start over from the log
   * the install left (empty after the checkpoint, with the acceptor's promise), and the learner
   * asks its peers for the rest.
   */
  private restartFromCheckpoint(checkpointInstanceId: number): void {
    this.counters.checkpointRestarts++;
    this.committer.rejectAll(
      new PaxosError(
        'E_CHECKPOINT_INSTALLED',
        `group ${this.config.group} restarted from the checkpoint of instance ${checkpointInstanceId}: ` +
          'the proposal was not chosen here; propose it again',
      ),
    );
    this.proposer.exit();
    this.proposer.cancelSkipPrepare();
    this.learner.stop();
    this.retryQueue = [];
    this.lastChecksum = 0; // unknown until a peer's chain is adopted (DESIGN §2)
    this.previousChosenBallot = NULL_BALLOT;
    this.acceptor.promiseBallot = NULL_BALLOT;
    this.acceptor.acceptedBallot = NULL_BALLOT;
    this.acceptor.acceptedValue = new Uint8Array(0);
    this.acceptor.checksum = 0;
    const now = this.acceptor.load();
    this.learner = new Learner(this.learnerHost(), this.config.options.learner);
    this.learner.instanceId = now;
    this.proposer.instanceId = now;
    this.proposer.setStartProposalId(this.acceptor.promiseBallot.proposalId + 1);
    this.log('info', 'group-restarted-from-checkpoint', { checkpointInstanceId, instanceId: now });
    this.learner.start();
    this.armCheckpointTimer();
  }

  private learnerHost(): LearnerHost {
    const { config } = this;
    return {
      nodeId: config.nodeId,
      group: config.group,
      store: config.store,
      now: () => config.scheduler.now(),
      random: () => config.random.next(),
      schedule: (delayMs, fn) => this.loop.schedule(delayMs, fn),
      send: (to, msg) => this.sendTo(to, msg),
      peers: () => {
        const peers = this.members.filter((m) => m !== config.nodeId);
        const followTo = config.followToNodeId;
        if (followTo !== undefined && !peers.includes(followTo)) peers.push(followTo);
        return peers;
      },
      followers: () => [...this.followers],
      addFollower: (nodeId) => {
        if (!this.followers.has(nodeId) && !this.members.includes(nodeId)) {
          this.followers.add(nodeId);
          this.log('info', 'follower-added', { nodeId });
        }
      },
      followToNodeId: () => config.followToNodeId,
      lastChecksum: () => this.lastChecksum,
      minChosenInstanceId: () => config.store.getMinChosenInstanceId(config.group),
      promiseBallot: () => this.acceptor.promiseBallot,
      acceptedState: () => ({
        ballot: this.acceptor.acceptedBallot,
        value: this.acceptor.acceptedValue,
        checksum: this.acceptor.checksum,
      }),
      systemVariables: () => encodeSystemVariables(this.system.current),
      applySystemVariables: (bytes) => {
        const v = decodeSystemVariables(bytes);
        return v !== undefined && this.system.adopt(v);
      },
      needCheckpoint: (from, peerMin) => {
        const asked = this.checkpoint?.prepareForAskforCheckpoint(from) ?? false;
        this.log(asked ? 'info' : 'debug', asked ? 'asked-for-checkpoint' : 'needs-checkpoint', {
          from,
          peerMinChosenInstanceId: peerMin,
          instanceId: this.learner.instanceId,
          ...(this.checkpoint === undefined ? { note: 'no checkpoint config: cannot ask' } : {}),
        });
      },
      event: (name, fields) => this.log('debug', name, fields),
    };
  }

  private log(
    level: 'debug' | 'info' | 'warn' | 'error',
    event: string,
    fields: Record<string, unknown>,
  ): void {
    this.config.log?.(level, event, {
      node: this.config.nodeId,
      group: this.config.group,
      ...fields,
    });
  }
}
