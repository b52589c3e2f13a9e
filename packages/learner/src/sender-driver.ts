// Runs the learner's sender (LearnerSender) on the host's loop: one timer at the sender's next
// deadline, its slices in the host's idle time, a pause in proportion to each turn while the
// group has Paxos work of its own (senderLoopShare), and its batches framed as SendLearnValue.
import type { AcceptorRecord } from '@tspaxos/crc-wasm';
import { type LearnedValue, PaxosMsgFlag, PaxosMsgType, paxosMsg } from '@tspaxos/transport';
import { SenderBudget } from './budget';
import type { LearnerPort } from './port';
import type { LearnerOptions } from './options';
import { LearnerSender, type SenderEndReason } from './sender';

export class SenderDriver {
  readonly sender: LearnerSender;
  readonly budget: SenderBudget;
  private cancelSenderTimer: (() => void) | undefined;
  private senderTimerAt = Number.POSITIVE_INFINITY;
  private senderContinueScheduled = false;
  private stopped = false;

  /**
   * `nowInstanceId`: the learner's current instance (the first not learned); `readChecksum`: the
   * chain checksum of a stored instance (0 when not stored or unreadable).
   */
  constructor(
    private readonly host: LearnerPort,
    private readonly options: LearnerOptions,
    private readonly nowInstanceId: () => number,
    readChecksum: (instanceId: number) => number,
  ) {
    this.budget = host.senderBudget ?? new SenderBudget(options.senderBudgetBytes);
    this.sender = new LearnerSender(
      options,
      {
        nowInstanceId: () => nowInstanceId(),
        now: () => host.runtime.now(),
        readRange: (from, to) => host.store.range(host.group, from, to),
        readChecksum: (id) => readChecksum(id),
        sendBatch: (to, lastChecksum, records) => this.sendBatch(to, lastChecksum, records),
        ended: (to, reason, next, error) => this.senderEnded(to, reason, next, error),
      },
      this.budget,
      () => this.continueSoon(),
    );
  }

  stop(): void {
    this.stopped = true;
    this.cancelSenderTimer?.();
    this.cancelSenderTimer = undefined;
    this.sender.stop();
  }

  /** Keeps one timer at the sender's next deadline. */
  armTimer(): void {
    const at = this.sender.deadline();
    if (at === undefined) {
      this.cancelSenderTimer?.();
      this.cancelSenderTimer = undefined;
      this.senderTimerAt = Number.POSITIVE_INFINITY;
      return;
    }
    if (this.cancelSenderTimer !== undefined && at === this.senderTimerAt) return;
    this.cancelSenderTimer?.();
    this.senderTimerAt = at;
    this.cancelSenderTimer = this.host.runtime.schedule(
      Math.max(0, at - this.host.runtime.now()),
      () => {
        this.cancelSenderTimer = undefined;
        this.senderTimerAt = Number.POSITIVE_INFINITY;
        const now = this.host.runtime.now();
        const busy = this.groupBusy(now);
        this.afterSenderWork(this.sender.tick(now, busy), busy);
      },
    );
  }

  /** After the sender worked: continue next turn if it yielded, and re-arm its deadline. */
  private afterSenderWork(yielded: boolean, busy: boolean): void {
    if (yielded) {
      // While the group is busy, leave it its share of the loop (and of the CPU): pause in
      // proportion to the turn just run. A quiet group's loop has nothing of its own to protect
      // from the stream: the next slice waits only for the idle lane (I/O and queued work first).
      const share = busy ? this.options.senderLoopShare : 1;
      this.continueSoon((this.sender.lastTurnMs * (1 - share)) / share);
    }
    this.armTimer();
  }

  /** The group has Paxos work of its own now or had some within senderBusyWindowMs. */
  private groupBusy(nowMs: number): boolean {
    const at = this.host.runtime.paxosActiveAtMs?.();
    return at !== undefined && nowMs - at < this.options.senderBusyWindowMs;
  }

  /**
   * The sender's one way to run: a slice in the host's idle time (after `delayMs` when the loop
   * share asks for a pause). At most one slice is pending at a time.
   */
  continueSoon(delayMs = 0): void {
    if (this.senderContinueScheduled || this.stopped) return;
    this.senderContinueScheduled = true;
    const slice = (): void => {
      this.senderContinueScheduled = false;
      if (this.stopped) return;
      const now = this.host.runtime.now();
      const busy = this.groupBusy(now);
      this.afterSenderWork(this.sender.pump(now, busy), busy);
    };
    const idle = this.host.runtime.scheduleIdle?.bind(this.host.runtime);
    if (idle === undefined) this.host.runtime.schedule(delayMs, slice);
    else if (delayMs <= 0) idle(slice);
    else this.host.runtime.schedule(delayMs, () => void idle(slice));
  }

  private senderEnded(to: number, reason: SenderEndReason, next: number, error?: unknown): void {
    this.host.runtime.event('sender-ended', {
      to,
      reason,
      nextInstanceId: next,
      error: error === undefined ? undefined : String(error),
    });
  }

  /** Sends one batch of a stream (SendLearnValue, NeedAck), with our now id for the receiver. */
  private sendBatch(to: number, lastChecksum: number, records: readonly AcceptorRecord[]): void {
    const batch: LearnedValue[] = new Array<LearnedValue>(records.length);
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      batch[i] = {
        proposalId: r.acceptedId,
        proposalNodeId: r.acceptedNodeId,
        checksum: r.checksum,
        value: r.value,
      };
    }
    this.host.send(
      to,
      paxosMsg({
        msgType: PaxosMsgType.SendLearnValue,
        instanceId: records[0]!.instanceId,
        nodeId: this.host.nodeId,
        nowInstanceId: this.nowInstanceId(),
        lastChecksum,
        flag: PaxosMsgFlag.SendLearnValueNeedAck,
        batch,
      }),
    );
  }
}
