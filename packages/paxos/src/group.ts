// One group on one node (PhxPaxos Instance): owns proposer, acceptor and learner, routes every
// message, and when the learner has learned an instance, executes the state machines, settles
// the committer's pending proposal, and starts the next instance. It verifies the checksum chain
// of every message that carries one; a mismatch means this node's log diverged from a peer's,
// so the group stops accepting values and says so in its status (PhxPaxos asserts and dies).
import { StorageError } from '@tspaxos/storage';
import { CheckpointManager, chainChecksumAt, checkReplayable } from '@tspaxos/checkpoint';
import {
  assert,
  type Ballot,
  InvariantError,
  isNullBallot,
  type LogLevel,
  NULL_BALLOT,
} from '@tspaxos/core';
import { Learner } from '@tspaxos/learner';
import { type CheckpointMsg, type PaxosMsg, PaxosMsgType } from '@tspaxos/transport';
import { Acceptor } from './acceptor';
import { type CommitInFlight, Committer, type ProposeResult } from './committer';
import { invariantStop, PaxosError } from './errors';
import { IOLoop } from './io-loop';
import { type CheckpointPortContext, createCheckpointManager } from './checkpoint-port';
import { Executor } from './executor';
import { Followers } from './followers';
import { replayLog, type RestartContext, skipToCheckpoint } from './restart';
import type { GroupCheckpointConfig, GroupConfig, GroupEvent } from './group-config';
import { learnerPort, type LearnerPortContext } from './learner-port';
import {
  createElection,
  createMaster,
  type ElectionPortContext,
  type MasterPortContext,
} from './master-port';
import {
  type ErrorCount,
  type GroupCounters,
  type GroupErrors,
  type GroupStatus,
  groupStatus,
} from './group-status';
import { MasterElection, type MasterInfo, MasterStateMachine } from './master';
import { Proposer } from './proposer';
import { isPromiseLike } from './scheduler';
import {
  decodeCarriedGroupState,
  encodeCarriedGroupState,
  encodeStoredMaster,
  encodeUnknownMaster,
  type MasterVariables,
  NO_MASTER_YET,
} from './master';
import {
  decodeSystemVariables,
  encodeSystemVariables,
  SystemStateMachine,
  type SystemVariables,
} from './state-machine';
import {
  BATCH_HEADER_BYTES,
  BATCH_ITEM_OVERHEAD_BYTES,
  bytesEqual,
  hasIdentity,
  IDENTITY_HEADER_BYTES,
  NO_SM_ID,
  SINGLE_VALUE_OVERHEAD_BYTES,
  SYSTEM_SM_ID,
  withoutIdentity,
} from './value';

export type { ErrorCount, GroupCounters, GroupErrors, GroupStatus };
export type { GroupCheckpointConfig, GroupConfig, GroupEvent };

/** The log's meta key of the group's incarnation on this node (u32 LE; see takeIncarnation). */
const INCARNATION_META_KEY = 'incarnation';

/** Codes a recovery no-op proposal may end with that are expected outcomes, not failures. */
const RECOVERY_EXPECTED_CODES = new Set([
  'E_TIMEOUT',
  'E_STOPPED',
  'E_NOT_MEMBER',
  'E_QUEUE_FULL',
  'E_CHECKSUM_MISMATCH',
  'E_STORAGE',
  'E_EXECUTE_FAILED',
  // A checkpoint was installed meanwhile: the group restarted from it (found by the simulator).
  'E_CHECKPOINT_INSTALLED',
]);

function describeError(error: unknown): { code: string; message: string } {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { code: typeof code === 'string' ? code : error.name, message: error.message };
  }
  return { code: 'NON_ERROR_THROWN', message: String(error) };
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

export class Group {
  readonly acceptor: Acceptor;
  readonly proposer: Proposer;
  /** Replaced when the group restarts from a checkpoint. */
  learner: Learner;
  /** Checkpoint roles (undefined without GroupConfig.checkpoint). */
  readonly checkpoint: CheckpointManager | undefined;
  readonly committer: Committer;
  readonly loop: IOLoop;
  readonly counters: GroupCounters = {
    messagesReceived: 0,
    messagesDropped: 0,
    instancesLearned: 0,
    executeFailures: 0,
    checksumMismatches: 0,
    checksumChecks: 0,
    retriedMessages: 0,
    recoveryProposalsFailed: 0,
    checkpointModeDrops: 0,
    checkpointRestarts: 0,
  };
  readonly errors: GroupErrors = {
    taskErrors: { count: 0, last: undefined },
    executeFailures: { count: 0, last: undefined },
    persistFailures: { count: 0, last: undefined },
  };

  private lastChecksum = 0;
  /** Ballot the previous instance was chosen with (rides on Prepare/Accept, see receiveForAcceptor). */
  private previousChosenBallot: Ballot = NULL_BALLOT;
  private readonly system: SystemStateMachine;
  private readonly master: MasterStateMachine;
  /** The master state the last install left (takeCarriedGroupState); undefined: unknown. */
  private installedMaster:
    { master: MasterVariables | typeof NO_MASTER_YET; asOf: number } | undefined;
  private readonly election: MasterElection | undefined;
  private readonly executor: Executor;
  private readonly followers: Followers;
  private retryQueue: PaxosMsg[] = [];
  /** When this group last handled a Prepare, Accept or reply (the learner sender reads it). */
  private paxosActiveAtMs = Number.NEGATIVE_INFINITY;
  private stoppedReason: PaxosError | undefined;
  private closed = false;
  private cancelCommitTimer: (() => void) | undefined;
  private commitTimerAt = Number.POSITIVE_INFINITY;
  /** System-variable writes in flight, each already handled (a failure stops the group). */
  private pendingWrites: Promise<void>[] = [];
  private executeRetryArmed = false;
  private learnerMessagesHandled = 0;
  private cancelCheckpointTimer: (() => void) | undefined;

  constructor(private readonly config: GroupConfig) {
    const { store, group, options } = config;
    this.loop = new IOLoop(
      config.scheduler,
      options.ioLoopQueueMaxMessages,
      (error) => this.taskFailed(error),
      { backgroundWorkAsTasks: config.faults?.backgroundWorkAsTasks ?? false },
    );
    const saved = store.getMeta(group, 'systemVariables');
    const initial: SystemVariables = (saved && decodeSystemVariables(saved)) || {
      version: 0,
      members: [...config.initialMembers].sort((a, b) => a - b),
    };
    this.system = new SystemStateMachine(initial, (v) => {
      // Handled at once (no promise without a handler); awaited before the group moves on.
      this.pendingWrites.push(
        store
          .setMeta(group, 'systemVariables', encodeSystemVariables(v), { sync: true })
          .then(undefined, (error: unknown) => this.persistFailed(error)),
      );
      // A node removed from the membership stops holding its lease at once (the others wait it out).
      if (!v.members.includes(config.nodeId) && this.master.dropLocal())
        this.log('info', 'master-dropped', { reason: 'removed from the membership' });
    });
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
      (error) => this.persistFailed(error),
      config.faults,
    );
    this.committer = new Committer(options, config.nodeId);
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
      { proposerIgnoresAcceptedValues: config.faults?.proposerIgnoresAcceptedValues ?? false },
    );
    this.learner = new Learner(learnerPort(this.ports()), options.learner, {
      skipChainCheck: config.faults?.learnerSkipsChainCheck ?? false,
    });
    this.checkpoint = config.checkpoint && createCheckpointManager(this.ports(), config.checkpoint);
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
    await this.takeIncarnation();
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
      this.armCheckpointTimer(0);
      return;
    }
    now = await skipToCheckpoint(this.ports(), now);
    const from = await replayLog(this.ports(), now, minChosen);
    await Promise.all(this.pendingWrites.splice(0));
    if (this.stoppedReason !== undefined) return; // a replayed membership could not be saved
    this.learner.instanceId = now;
    this.proposer.startAt(now);
    this.proposer.setStartProposalId(this.acceptor.promiseBallot.proposalId + 1);
    this.assertAligned();
    this.log('info', 'group-started', {
      instanceId: now,
      replayedFrom: from,
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
        (error: unknown) => this.recoveryProposalFailed(error),
      );
    }
    this.armCheckpointTimer();
  }

  /**
   * A new incarnation for this start: the identities of the values proposed from now on differ
   * from every earlier start's (value.ts). Durable before anything is proposed, so a crash cannot
   * hand the same number to the next start. The first start (or a log whose meta was lost) draws
   * one at random, so a wiped node does not repeat the numbers of its former life.
   */
  private async takeIncarnation(): Promise<void> {
    const { store, group } = this.config;
    const saved = store.getMeta(group, INCARNATION_META_KEY);
    const incarnation =
      saved?.length === 4
        ? (new DataView(saved.buffer, saved.byteOffset, 4).getUint32(0, true) + 1) % 0x1_0000_0000
        : Math.floor(this.config.random.next() * 0x1_0000_0000);
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, incarnation, true);
    await store.setMeta(group, INCARNATION_META_KEY, bytes, { sync: true });
    this.committer.setIncarnation(incarnation);
  }

  /** Stops timers and work; pending proposals reject with E_STOPPED. */
  async stop(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.committer.rejectAll(new PaxosError('E_STOPPED', 'the node is stopping'));
    this.proposer.exit();
    this.learner.stop();
    this.election?.stop();
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
    if (smId !== NO_SM_ID && !this.executor.has(smId)) {
      return Promise.reject(
        new PaxosError('E_UNKNOWN_STATE_MACHINE', `no state machine with id ${smId} on this node`),
      );
    }
    // What fits one Accept frame once packed (options.ts maxValueBytesForFrame); a batch value
    // carries the batch's own header and item header besides.
    const maxBytes =
      this.config.options.maxValueBytes -
      (batch
        ? IDENTITY_HEADER_BYTES +
          BATCH_HEADER_BYTES +
          BATCH_ITEM_OVERHEAD_BYTES -
          SINGLE_VALUE_OVERHEAD_BYTES
        : 0);
    if (value.length > maxBytes) {
      return Promise.reject(
        new PaxosError(
          'E_VALUE_TOO_LARGE',
          `value of ${value.length} bytes exceeds the ${batch ? 'batchPropose' : 'propose'} limit of ${maxBytes} (maxValueBytes ${this.config.options.maxValueBytes})`,
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
    const every = this.config.faults?.throwInLearnerTaskEvery;
    if (every !== undefined && ++this.learnerMessagesHandled % every === 0)
      throw new TypeError(`planted bug: learner message ${this.learnerMessagesHandled} throws`);
    try {
      await this.learner.handle(msg);
    } catch (error) {
      // A learned value that cannot be written (the store refuses writes after a failed fsync)
      // stops the group; anything else is a bug and goes to the loop as a task error.
      if (!(error instanceof StorageError)) throw error;
      this.persistFailed(error);
      return;
    }
    await this.afterLearnerMessage();
  }

  /** Awaits the system-variable writes in flight; false when one failed (the group stopped). */
  private async flushWrites(): Promise<boolean> {
    if (this.pendingWrites.length > 0) await Promise.all(this.pendingWrites.splice(0));
    return this.stoppedReason === undefined;
  }

  /**
   * Runs after every learner message: executes what was learned (a batch streamed by a peer is
   * executed instance by instance, in order), acks, resumes the sender.
   */
  private async afterLearnerMessage(): Promise<void> {
    // Adopted system variables could not be saved (no await when nothing is pending: a microtask
    // per instance of a streamed batch is measurable).
    if (this.pendingWrites.length > 0 && !(await this.flushWrites())) return;
    const before = this.learner.instanceId;
    while (this.learner.state.isLearned && this.stoppedReason === undefined && !this.closed) {
      const at = this.learner.instanceId;
      const learning = this.onLearned();
      if (learning !== undefined) await learning;
      if (this.learner.instanceId === at) break; // execution failed: retried later
    }
    const count = this.learner.instanceId - before;
    if (count > 0)
      this.config.onEvent?.({
        type: 'learned',
        group: this.config.group,
        instanceId: this.learner.instanceId,
        count,
      });
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

  /**
   * A write to the log failed. A store whose fsync failed refuses every later write (the kernel
   * may have dropped the dirty pages), so the group cannot go on: it stops with E_STORAGE and
   * says why in its status; the process and the other groups' state are untouched.
   */
  private persistFailed(error: unknown): void {
    const described = describeError(error);
    this.errors.persistFailures.count++;
    this.errors.persistFailures.last = described;
    this.stopGroup(
      new PaxosError(
        'E_STORAGE',
        `group ${this.config.group}: a write to the log failed (${described.code}: ${described.message}); the group stopped`,
        { cause: error },
      ),
    );
  }

  /**
   * A task of the loop threw: a bug (expected conditions are counted drops, never thrown). A
   * broken invariant also stops the group: its state can no longer be trusted to keep Paxos's
   * promises (etcd raft panics; PhxPaxos asserts and dies; a library stops only the group).
   */
  private taskFailed(error: unknown): void {
    const described = describeError(error);
    this.errors.taskErrors.count++;
    this.errors.taskErrors.last = described;
    this.log('error', 'task-failed', { ...described });
    if (error instanceof InvariantError) this.stopGroup(invariantStop(error));
  }

  /** The recovery no-op at start ended: expected codes are counted, anything else is a bug. */
  private recoveryProposalFailed(error: unknown): void {
    // The group's own stop reason is already in its status (and counted where it arose).
    if (
      error instanceof PaxosError &&
      (RECOVERY_EXPECTED_CODES.has(error.code) || error === this.stoppedReason)
    ) {
      this.counters.recoveryProposalsFailed++;
      this.log('info', 'recovery-proposal-ended', { code: error.code });
      return;
    }
    this.taskFailed(error);
  }

  private stopGroup(error: PaxosError): void {
    if (this.stoppedReason !== undefined) return;
    this.stoppedReason = error;
    this.log('error', 'group-stopped', { code: error.code, message: error.message });
    this.election?.stop();
    this.proposer.exit();
    this.learner.stop();
    this.committer.rejectAll(error);
  }

  // ---- learning and executing -------------------------------------------------------------

  /**
   * Executes the learned value and moves to the next instance. Synchronous (returns undefined)
   * unless something must be awaited: an execute() that returned a promise, a system-variable
   * write, or retried messages. A streamed batch learns thousands of instances in a row, and an
   * async call plus an await per instance showed in the receiver's catch-up profile.
   */
  private onLearned(): Promise<void> | undefined {
    const instanceId = this.learner.instanceId;
    const value = this.learner.state.value;
    const flight = this.committer.inFlight;
    // Mine only if the chosen value carries my proposal's identity: equal bytes from another node
    // (or another barrier) are not mine, and my value adopted by another proposer still is.
    const isMine =
      flight !== undefined &&
      flight.instanceId === instanceId &&
      (this.config.faults?.matchValueByBytesOnly === true
        ? bytesEqual(withoutIdentity(flight.value), withoutIdentity(value))
        : hasIdentity(value, flight.identity));
    let executed: unknown[] | Promise<unknown[]>;
    try {
      executed = this.executor.execute(instanceId, value, isMine);
    } catch (error) {
      this.executeFailed(instanceId, isMine, error);
      return undefined;
    }
    if (isPromiseLike(executed))
      return this.afterAsyncExecute(executed, instanceId, flight, isMine);
    return this.afterExecute(executed, instanceId, flight, isMine);
  }

  private async afterAsyncExecute(
    executed: Promise<unknown[]>,
    instanceId: number,
    flight: CommitInFlight | undefined,
    isMine: boolean,
  ): Promise<void> {
    let results: unknown[];
    try {
      results = await executed;
    } catch (error) {
      this.executeFailed(instanceId, isMine, error);
      return;
    }
    await this.afterExecute(results, instanceId, flight, isMine);
  }

  private executeFailed(instanceId: number, isMine: boolean, error: unknown): void {
    this.counters.executeFailures++;
    this.errors.executeFailures.count++;
    this.errors.executeFailures.last = describeError(error);
    this.proposer.cancelSkipPrepare();
    if (error instanceof InvariantError) error = invariantStop(error);
    if (
      error instanceof PaxosError &&
      (error.code === 'E_UNKNOWN_STATE_MACHINE' ||
        error.code === 'E_BAD_ARGUMENT' ||
        error.code === 'E_INVARIANT')
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
  }

  /** After a successful execute: saves what must be saved, settles the commit, moves on. */
  private afterExecute(
    results: unknown[],
    instanceId: number,
    flight: CommitInFlight | undefined,
    isMine: boolean,
  ): Promise<void> | undefined {
    if (this.pendingWrites.length > 0)
      return this.flushWrites().then((ok) =>
        // a membership change could not be saved: the group stopped
        ok ? this.finishLearned(results, instanceId, flight, isMine) : undefined,
      );
    return this.finishLearned(results, instanceId, flight, isMine);
  }

  private finishLearned(
    results: unknown[],
    instanceId: number,
    flight: CommitInFlight | undefined,
    isMine: boolean,
  ): Promise<void> | undefined {
    if (isMine) this.committer.committed(results);
    else if (flight !== undefined && flight.instanceId === instanceId) this.committer.conflicted();
    this.counters.instancesLearned++;
    this.lastChecksum = this.learner.state.newChecksum;
    this.previousChosenBallot = this.learner.state.ballot;
    this.newInstance();
    this.rearmCommitTimer();
    if (this.retryQueue.length > 0) return this.retryMessages().then(() => this.checkNewValue());
    this.checkNewValue();
    return undefined;
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

  // ---- checkpoints (design.md §4) -------------------------------------------------------------

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
        // A write of the install failed (the store refuses writes after a failed fsync): the
        // group stops with E_STORAGE, as for any failed write; the record stays for a restart.
        if (error instanceof StorageError) {
          this.persistFailed(error);
          return;
        }
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
    this.learner.stop();
    this.retryQueue = [];
    this.previousChosenBallot = NULL_BALLOT;
    const now = this.acceptor.reload();
    // The chain goes on from the sender's value at the checkpoint instance, which the install
    // kept (0 when the sender did not know it: adopted from a peer then, design.md §2).
    this.lastChecksum = chainChecksumAt(this.config.store, this.config.group, now - 1);
    this.learner = new Learner(learnerPort(this.ports()), this.config.options.learner, {
      skipChainCheck: this.config.faults?.learnerSkipsChainCheck ?? false,
    });
    this.learner.instanceId = now;
    this.proposer.startAt(now);
    this.proposer.setStartProposalId(this.acceptor.promiseBallot.proposalId + 1);
    this.assertAligned();
    this.log('info', 'group-restarted-from-checkpoint', { checkpointInstanceId, instanceId: now });
    this.learner.start();
    this.armCheckpointTimer();
  }

  /** The context the port factories read the group through (built once: closures, no copies). */
  private ports(): RestartContext &
    LearnerPortContext &
    MasterPortContext &
    ElectionPortContext &
    CheckpointPortContext {
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
      setLastChecksum: (checksum) => {
        this.lastChecksum = checksum;
      },
      checkpoint: () => this.checkpoint,
      carriedGroupState: () => this.carriedGroupState(),
      takeCarriedGroupState: (cp, groupState) => this.takeCarriedGroupState(cp, groupState),
      members: () => this.members,
      nowInstanceId: () => this.learner.instanceId,
      lastChecksum: () => this.lastChecksum,
      paxosActiveAtMs: () => this.paxosActiveAtMs,
      sendTo: (to, msg) => this.sendTo(to, msg),
      checkNewValue: () => this.checkNewValue(),
      pendingWrite: (write) => {
        this.pendingWrites.push(write);
      },
      persistFailed: (error) => this.persistFailed(error),
      canPropose: () =>
        !this.closed &&
        this.stoppedReason === undefined &&
        this.members.includes(this.config.nodeId),
      propose: (smId, value, batch, timeoutMs) => this.propose(smId, value, batch, timeoutMs),
      log: (level, event, fields) => this.log(level, event, fields),
    };
  }

  /** What a checkpoint I send carries besides its files (master.ts CarriedGroupState). */
  private carriedGroupState(): string {
    const v = this.master.variables;
    return encodeCarriedGroupState({
      asOf: this.learner.instanceId,
      master: !this.master.anchored ? undefined : v === undefined ? NO_MASTER_YET : v,
      system: this.system.current,
    });
  }

  /**
   * The install's hook, before the log reset, at every run of it (a crash anywhere in the install
   * must not restart the node trusting its own stale variables): the checkpoint passes master
   * operations this node never applied, so its master state becomes the sender's (with the
   * sender's membership, which judged those operations), or unknown when none came. Durable
   * before the reset; see MasterStateMachine.restore for why variables ahead of the log are safe.
   */
  private async takeCarriedGroupState(cp: number, text: string): Promise<void> {
    const { store, group } = this.config;
    const carried = text === '' ? undefined : decodeCarriedGroupState(text);
    if (text !== '' && carried === undefined) this.master.counters.malformedVariables++;
    // The sender holds the checkpoint, so its log passed cp; anything else is not its state.
    const valid = carried !== undefined && carried.asOf > cp ? carried : undefined;
    if (valid !== undefined) {
      // Version-checked like the master's: being ahead is safe, older changes are refused.
      this.system.adopt(valid.system);
      await store.setMeta(group, 'systemVariables', encodeSystemVariables(this.system.current), {
        sync: true,
      });
    }
    this.installedMaster =
      valid?.master === undefined ? undefined : { master: valid.master, asOf: valid.asOf };
    this.master.restore(this.installedMaster?.master, this.installedMaster?.asOf ?? 0);
    await store.setMeta(
      group,
      'masterVariables',
      this.installedMaster === undefined
        ? encodeUnknownMaster()
        : encodeStoredMaster(this.installedMaster.master, this.installedMaster.asOf),
      { sync: true },
    );
  }

  private log(level: LogLevel, event: string, fields: Record<string, unknown>): void {
    this.config.log?.(level, event, {
      node: this.config.nodeId,
      group: this.config.group,
      ...fields,
    });
  }
}
