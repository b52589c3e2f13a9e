// CheckpointMgr (PhxPaxos src/checkpoint/cp_mgr.cpp) and the group's checkpoint roles around it:
// the AskforCheckpoint gate, checkpoint mode, the one sender at a time, the receiver and its
// install, the cleaner and the replayer. Sans-IO: the host (packages/paxos Instance) feeds it
// messages and ticks on its per-group loop and carries out what it asks through the port.
import type { LogStore } from '@tspaxos/storage';
import { type CheckpointMsg, CheckpointMsgType } from '@tspaxos/transport';
import { CheckpointError } from './errors';
import type { CheckpointFiles } from './files';
import { chainChecksumAt, type RecoveryOutcome, recoverInstall } from './install';
import { type CheckpointOptions, MIN_AUTOMATIC_HOLD_COUNT } from './options';
import { CheckpointReceiver, type CheckpointReceiverStatus, type ReceiverEvent } from './receiver';
import { Cleaner } from './cleaner';
import { Replayer } from './replayer';
import {
  CheckpointSender,
  type CheckpointSenderEndReason,
  type CheckpointSenderStatus,
} from './sender';
import { type CheckpointStateMachine, groupCheckpointInstanceId } from './state-machine';

export interface CheckpointManagerPort {
  nodeId: number;
  group: number;
  files: CheckpointFiles;
  store: LogStore;
  machines: readonly CheckpointStateMachine[];
  stagingRoot: string;
  now(): number;
  /** Uniform in [0, 1): transfer uuids. */
  random(): number;
  sendCheckpoint(to: number, msg: CheckpointMsg): void;
  /** Sends PaxosMsg AskforCheckpoint (type 12) to a peer. */
  sendAskforCheckpoint(to: number): void;
  /** Voting peers, this node excluded. */
  peers(): number[];
  /** Majority of the voting members (PhxPaxos Config::GetMajorityCount). */
  majority(): number;
  nowInstanceId(): number;
  minInstallableInstanceId(): number;
  promiseBallot(): { proposalId: number; nodeId: number };
  /** Applies a chosen value to the machines' checkpoints (Replayer). */
  applyForCheckpoint(instanceId: number, value: Uint8Array): boolean;
  /** The host's state an install makes stale, made durable before the log reset (install.ts). */
  beforeLogReset?(checkpointInstanceId: number, groupState: string): Promise<void>;
  /**
   * The host's state a receiver's install needs and the checkpoint files do not hold (the paxos
   * master and system variables), read when BEGIN is sent; opaque to this package.
   */
  groupState?(): string;
}

export interface CheckpointStatus {
  /** Checkpoint mode: Paxos messages are not processed (PhxPaxos InAskforcheckpointMode). */
  mode: boolean;
  /** Set while a state machine is older than the log (the start-up rule). */
  needsCheckpoint: { code: 'E_NEEDS_CHECKPOINT'; message: string } | undefined;
  checkpointInstanceId: number | undefined;
  minChosenInstanceId: number;
  askedBy: number[];
  sender: CheckpointSenderStatus | undefined;
  /** Peers that asked for my checkpoint while the sender served another: served next, in order. */
  waitingAskers: number[];
  /** The transfer being received, and the receiver's counters since start. */
  receiver: CheckpointReceiverStatus & { counters: CheckpointReceiver['counters'] };
  cleaner: { paused: boolean } & Cleaner['counters'];
  replayer: { paused: boolean; nextInstanceId: number | undefined } & Replayer['counters'];
  counters: CheckpointManagerCounters;
}

export interface CheckpointManagerCounters {
  asksSent: number;
  asksReceived: number;
  sendersStarted: number;
  /** Asks that found the sender serving another peer (the asker waits in waitingAskers). */
  sendersBusy: number;
  senderEnds: Partial<Record<CheckpointSenderEndReason, number>>;
  /** File bytes sent by the transfers that ended (whatever the reason). */
  bytesSent: number;
  modeEntered: number;
  modeIdleExits: number;
  messagesOutsideMode: number;
  unfinishedTransfersRemoved: number;
  installsFinishedAtStart: number;
  /** Transfers dropped while a checkpoint was needed at start because their sender went quiet. */
  stalledTransfersDropped: number;
}

/**
 * The start-up rule on its own: E_NEEDS_CHECKPOINT when a machine's checkpoint is below
 * min chosen − 1, so the log cannot bring it up to date (PhxPaxos Instance::PlayLog fails there).
 */
export function checkReplayable(
  machines: readonly CheckpointStateMachine[],
  group: number,
  minChosenInstanceId: number,
): CheckpointError | undefined {
  if (minChosenInstanceId === 0) return undefined;
  for (const sm of machines) {
    const cp = sm.getCheckpointInstanceId?.(group) ?? -1;
    if (cp < minChosenInstanceId - 1) {
      return new CheckpointError(
        'E_NEEDS_CHECKPOINT',
        `group ${group}: state machine ${sm.smId} has checkpoint ${cp} but the log starts at ${minChosenInstanceId}: ` +
          'it cannot be replayed; a checkpoint from a peer is needed',
      );
    }
  }
  return undefined;
}

export class CheckpointManager {
  readonly cleaner: Cleaner;
  readonly replayer: Replayer;
  readonly receiver: CheckpointReceiver;
  readonly counters: CheckpointManagerCounters = {
    asksSent: 0,
    asksReceived: 0,
    sendersStarted: 0,
    sendersBusy: 0,
    senderEnds: {},
    bytesSent: 0,
    modeEntered: 0,
    modeIdleExits: 0,
    messagesOutsideMode: 0,
    unfinishedTransfersRemoved: 0,
    installsFinishedAtStart: 0,
    stalledTransfersDropped: 0,
  };
  private sender: CheckpointSender | undefined;
  /** Askers waiting for the sender, oldest first; each once, at most one per peer. */
  private waiting: number[] = [];
  /** The uuid of the last transfer sent: the next ones are higher (the receiver relies on it). */
  private lastUuid = 0;
  private inMode = false;
  private modeActivityMs = 0;
  private needAsk = new Set<number>();
  private firstAskMs: number | undefined;
  private needs: CheckpointError | undefined;
  private lastStartupAskMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly port: CheckpointManagerPort,
    private readonly options: CheckpointOptions,
  ) {
    this.cleaner = new Cleaner(port, options);
    this.replayer = new Replayer(
      { ...port, apply: (id, value) => port.applyForCheckpoint(id, value) },
      options,
    );
    this.receiver = new CheckpointReceiver(
      { ...port, send: (to, msg) => port.sendCheckpoint(to, msg) },
      options,
    );
  }

  get inCheckpointMode(): boolean {
    return this.inMode;
  }

  get needsCheckpoint(): CheckpointError | undefined {
    return this.needs;
  }

  /** At start, before the log is replayed: finishes or discards what a crash left (install.ts). */
  async recover(): Promise<RecoveryOutcome> {
    const outcome = await recoverInstall(this.receiver.installContext());
    if (outcome.kind === 'installed') this.counters.installsFinishedAtStart++;
    if (outcome.kind === 'removed-unfinished') this.counters.unfinishedTransfersRemoved++;
    return outcome;
  }

  /**
   * The start-up rule: a machine whose checkpoint is below min chosen − 1 cannot be replayed from
   * this log (PhxPaxos Instance::PlayLog fails there). Returns the error, and from then on the
   * group stays in checkpoint mode and asks every peer for a checkpoint until one is installed.
   */
  checkStartup(): CheckpointError | undefined {
    const { group, store, machines } = this.port;
    this.needs = checkReplayable(machines, group, store.getMinChosenInstanceId(group));
    if (this.needs !== undefined) this.enterMode();
    return this.needs;
  }

  /**
   * A peer said the log I need is gone (PhxPaxos CheckpointMgr::PrepareForAskforCheckpoint):
   * ask once a majority said so, or askMajorityWaitMs after the first did. True: asked `from`.
   */
  prepareForAskforCheckpoint(from: number): boolean {
    const now = this.port.now();
    this.needAsk.add(from);
    this.firstAskMs ??= now;
    if (
      now <= this.firstAskMs + this.options.askMajorityWaitMs &&
      this.needAsk.size < this.port.majority()
    )
      return false;
    this.firstAskMs = undefined;
    this.needAsk.clear();
    this.enterMode();
    this.counters.asksSent++;
    this.port.sendAskforCheckpoint(from);
    return true;
  }

  /**
   * A peer asks for my checkpoint (PhxPaxos Learner::OnAskforCheckpoint): one sender at a time.
   * PhxPaxos drops an ask while its sender is busy; here the asker waits for its turn.
   */
  async onAskforCheckpoint(from: number): Promise<void> {
    this.counters.asksReceived++;
    if (this.sender !== undefined && !this.sender.isEnded) {
      this.counters.sendersBusy++;
      if (
        from !== this.sender.toNodeId &&
        !this.waiting.includes(from) &&
        this.waiting.length < this.port.peers().length
      ) {
        this.waiting.push(from);
      }
      return;
    }
    await this.startSender(from);
  }

  /** Serves the next waiting asker once the sender is free. */
  private async serveWaiting(): Promise<void> {
    if (this.sender !== undefined && !this.sender.isEnded) return;
    const next = this.waiting.shift();
    if (next !== undefined) await this.startSender(next);
  }

  private async startSender(to: number): Promise<void> {
    // Increasing per sender, so a receiver can tell a delayed BEGIN of an older transfer from a
    // newer one; a random base (and random steps) so a restarted node rarely reuses a uuid.
    const uuid =
      this.lastUuid === 0
        ? 1 + Math.floor(this.port.random() * 2 ** 47)
        : this.lastUuid + 1 + Math.floor(this.port.random() * 2 ** 16);
    this.lastUuid = uuid;
    const { store, group } = this.port;
    const sender = new CheckpointSender(
      {
        ...this.port,
        send: (to, msg) => this.port.sendCheckpoint(to, msg),
        chainChecksum: (instanceId) => chainChecksumAt(store, group, instanceId),
      },
      this.options,
      to,
      uuid,
    );
    this.sender = sender;
    this.counters.sendersStarted++;
    this.replayer.pause();
    sender.onEnd((reason) => {
      this.counters.senderEnds[reason] = (this.counters.senderEnds[reason] ?? 0) + 1;
      this.counters.bytesSent += sender.counters.bytesSent;
      this.replayer.resume();
    });
    await sender.start(this.port.now());
  }

  /**
   * A checkpoint frame from `from` (PhxPaxos Instance::OnReceiveCheckpointMsg). SendFile is taken
   * only in checkpoint mode; acks go to the sender. Returns the receiver's verdict, if any.
   */
  async handle(from: number, msg: CheckpointMsg): Promise<ReceiverEvent | undefined> {
    const now = this.port.now();
    if (msg.msgType === CheckpointMsgType.SendFileAck) {
      await this.sender?.onAck(from, msg, now);
      await this.serveWaiting();
      return undefined;
    }
    if (!this.inMode) {
      this.counters.messagesOutsideMode++;
      return { kind: 'ignored' };
    }
    this.modeActivityMs = now;
    const event = await this.receiver.handle(from, msg, now);
    if (event.kind === 'installed') {
      this.inMode = false;
      this.needs = undefined;
      this.replayer.reset();
    } else if (
      event.kind === 'rejected' &&
      !this.receiver.isReceiving &&
      this.needs === undefined
    ) {
      this.inMode = false; // learn normally again; the learner asks anew (PhxPaxos waits 5 s)
    }
    return event;
  }

  /**
   * Timers: sender ack timeout, checkpoint mode idle timeout, start-up re-asks, automatic
   * compaction (PhxPaxos's cleaner thread, keeping holdCount), one cleaner step and one replayer
   * step. Returns true when the cleaner or replayer has more to do (the host ticks again soon).
   */
  async tick(opts: { autoCompact: boolean } = { autoCompact: true }): Promise<boolean> {
    const now = this.port.now();
    await this.sender?.tick(now);
    await this.serveWaiting();
    if (this.inMode) {
      if (this.needs !== undefined) {
        // A transfer whose sender went quiet (crashed, cut off) is dropped, and the peers asked
        // again: the mode itself stays while a checkpoint is needed.
        const activity = this.receiver.lastActivityMs;
        if (activity !== undefined && now - activity >= this.options.checkpointModeIdleMs) {
          this.counters.stalledTransfersDropped++;
          await this.receiver.abandon();
        }
        if (!this.receiver.isReceiving && now - this.lastStartupAskMs >= this.options.askRetryMs) {
          this.lastStartupAskMs = now;
          for (const peer of this.port.peers()) {
            this.counters.asksSent++;
            this.port.sendAskforCheckpoint(peer);
          }
        }
      } else {
        const activity = Math.max(this.modeActivityMs, this.receiver.lastActivityMs ?? 0);
        if (now - activity >= this.options.checkpointModeIdleMs) {
          this.inMode = false;
          this.counters.modeIdleExits++;
          await this.receiver.abandon();
        }
      }
      return false; // no compaction or replay while the state is about to be replaced
    }
    if (opts.autoCompact && !this.cleaner.isPaused)
      await this.cleaner.plan(Math.max(this.options.holdCount, MIN_AUTOMATIC_HOLD_COUNT));
    const deleted = this.cleaner.step();
    const played = this.replayer.step();
    return deleted > 0 || played > 0;
  }

  /**
   * Compacts the log below the checkpoint, keeping `keep` instances (an operator's request: any
   * keep ≥ 0). The new min chosen id is durable when this resolves; the records below it go in
   * bounded steps on the following ticks. Returns the new min chosen id.
   */
  compact(keep: number): Promise<number> {
    return this.cleaner.plan(keep);
  }

  async stop(): Promise<void> {
    this.waiting = [];
    await this.sender?.stop();
    await this.receiver.close();
  }

  status(): CheckpointStatus {
    const { group, store, machines } = this.port;
    return {
      mode: this.inMode,
      needsCheckpoint: this.needs && { code: 'E_NEEDS_CHECKPOINT', message: this.needs.message },
      checkpointInstanceId: groupCheckpointInstanceId(machines, group),
      minChosenInstanceId: store.getMinChosenInstanceId(group),
      askedBy: [...this.needAsk],
      sender: this.sender?.status(),
      waitingAskers: [...this.waiting],
      receiver: {
        ...this.receiver.status(),
        counters: { ...this.receiver.counters, rejected: { ...this.receiver.counters.rejected } },
      },
      cleaner: { paused: this.cleaner.isPaused, ...this.cleaner.counters },
      replayer: {
        paused: this.replayer.isPaused,
        nextInstanceId: this.replayer.nextInstanceId,
        ...this.replayer.counters,
      },
      counters: { ...this.counters, senderEnds: { ...this.counters.senderEnds } },
    };
  }

  private enterMode(): void {
    if (!this.inMode) this.counters.modeEntered++;
    this.inMode = true;
    this.modeActivityMs = this.port.now();
  }
}
