// One queue of work per group (PhxPaxos IOLoop): messages, timer callbacks and proposals run one
// at a time, each to completion (awaiting its storage writes), so a group's roles never see
// interleaved state. Messages are bounded; timers and proposals are not dropped (their number is
// bounded by their owners). A task that throws is handed to `onError` (the instance counts it in
// status().errors.taskErrors with its code and message; the simulator fails on it): the loop goes
// on with the next task, and nothing thrown is ever dropped unseen.
//
// Two priorities. Messages, proposals and timers are the group's own work and run first, in
// order. Background work (the learner's catch-up stream, scheduleIdle) runs only in the loop's
// idle time: one slice at a time, each started after the event loop has polled I/O (so an Accept
// that arrived is queued first) and only when no other task is queued. A Paxos message therefore
// waits behind at most the one background slice already running.
import type { UnsafeFaults } from './faults';
import { MAX_SYNC_SLICE_MS } from './options';
import type { Scheduler } from '@tspaxos/core';
import { SyncSlice, yieldToEventLoop } from './scheduler';

export type Task = () => void | Promise<void>;

export interface IOLoopCounters {
  tasksRun: number;
  messagesDropped: number;
  taskErrors: number;
  /** Background slices run (scheduleIdle). */
  idleTasksRun: number;
  /** Times a background slice found other work queued and let it go first. */
  idleTasksDeferred: number;
  /** Tasks queued only after the event loop turned (enqueueNextTurn). */
  nextTurnTasks: number;
  /** Callbacks run once the event loop turned (afterThisTurnIf): proposers' answers. */
  afterTurnCallbacks: number;
  /** Callbacks of afterThisTurnIf run a microtask later, no turn being needed then. */
  atOnceCallbacks: number;
}

export class IOLoop {
  readonly counters: IOLoopCounters = {
    tasksRun: 0,
    messagesDropped: 0,
    taskErrors: 0,
    idleTasksRun: 0,
    idleTasksDeferred: 0,
    nextTurnTasks: 0,
    afterTurnCallbacks: 0,
    atOnceCallbacks: 0,
  };
  /** Background work waiting for the loop's idle time, oldest first. */
  private idleQueue: Array<{ task: Task; cancelled: boolean }> = [];
  /** A yield to the event loop is pending, after which the next background slice may start. */
  private idleArmed = false;
  private queue: Array<{ task: Task; isMessage: boolean }> = [];
  private head = 0;
  private queuedMessages = 0;
  private running = false;
  private stopped = false;
  private idleWaiters: Array<() => void> = [];
  private readonly timers = new Set<() => void>();

  constructor(
    private readonly scheduler: Scheduler,
    private readonly maxQueuedMessages: number,
    /** Receives every error a task throws (never swallowed: see the file comment). */
    private readonly onError: (error: unknown) => void,
    /** Planted bugs (tests only, faults.ts). */
    private readonly faults: Pick<UnsafeFaults, 'backgroundWorkAsTasks'> = {},
  ) {}

  get length(): number {
    return this.queue.length - this.head;
  }

  /** Queues a network message's handling; false (and counted) when the queue is full. */
  enqueueMessage(task: Task): boolean {
    if (this.stopped) return false;
    if (this.queuedMessages >= this.maxQueuedMessages) {
      this.counters.messagesDropped++;
      return false;
    }
    this.queuedMessages++;
    this.push(task, true);
    return true;
  }

  /** Queues internal work (a proposal, a timer's callback). */
  enqueue(task: Task): void {
    if (this.stopped) return;
    this.push(task, false);
  }

  /**
   * Queues internal work once the event loop has turned: after the I/O this turn queued has
   * gone out (the TCP transport writes its queued frames at setImmediate). A broadcast delivers
   * to this node this way, so a proposer's Accept leaves for its peers before its own acceptor's
   * write starts, not after it (issue 22; etcd's raftNode.start sends before storage.Save).
   */
  enqueueNextTurn(task: Task): void {
    if (this.stopped) return;
    this.counters.nextTurnTasks++;
    void yieldToEventLoop(this.scheduler).then(() => this.enqueue(task));
  }

  /**
   * Runs `fn` (not a task: it needs no turn of the queue, and runs after stop() too) a microtask
   * from now, after the synchronous work in progress: at once if `needsTurn()` is false then, else
   * once the event loop has turned, after the I/O queued in this turn has gone out (including what
   * that work queued after this call). What it (or `needsTurn`) throws goes to `onError` like a
   * task's error.
   */
  afterThisTurnIf(needsTurn: () => boolean, fn: () => void): void {
    Promise.resolve()
      .then(() => {
        if (!needsTurn()) {
          this.counters.atOnceCallbacks++;
          return undefined;
        }
        this.counters.afterTurnCallbacks++;
        return yieldToEventLoop(this.scheduler);
      })
      .then(fn)
      .catch((error: unknown) => {
        this.counters.taskErrors++;
        this.onError(error);
      });
  }

  /** A timer whose callback runs on this loop; the returned function cancels it. */
  schedule(delayMs: number, fn: () => void | Promise<void>): () => void {
    if (this.stopped) return () => {};
    let cancelled = false;
    const cancelTimer = this.scheduler.schedule(delayMs, () => {
      this.timers.delete(cancel);
      if (!cancelled) this.enqueue(() => (cancelled ? undefined : fn()));
    });
    const cancel = (): void => {
      cancelled = true;
      this.timers.delete(cancel);
      cancelTimer();
    };
    this.timers.add(cancel);
    return cancel;
  }

  /**
   * Background work: `fn` runs in the loop's idle time, after the event loop has polled I/O and
   * only when no message, proposal or timer task is queued or running (see the file comment).
   * The returned function cancels it.
   */
  scheduleIdle(fn: Task): () => void {
    if (this.stopped) return () => {};
    const entry = { task: fn, cancelled: false };
    if (this.faults.backgroundWorkAsTasks === true) {
      this.enqueue(() => (entry.cancelled ? undefined : fn()));
      return () => {
        entry.cancelled = true;
      };
    }
    this.idleQueue.push(entry);
    this.armIdle();
    return () => {
      entry.cancelled = true;
    };
  }

  /** Resolves when the queue is empty and nothing runs. */
  idle(): Promise<void> {
    if (!this.running && this.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Drops queued work and cancels every timer; the task running now finishes. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const cancel of [...this.timers]) cancel();
    this.idleQueue = [];
    this.queue = [];
    this.head = 0;
    this.queuedMessages = 0;
    await this.idle();
  }

  private push(task: Task, isMessage: boolean): void {
    this.queue.push({ task, isMessage });
    if (!this.running) void this.run();
  }

  private async run(): Promise<void> {
    this.running = true;
    // Tasks that settle through microtasks alone would starve the event loop (sockets, timers):
    // every MAX_SYNC_SLICE_MS of work, let it run.
    const slice = new SyncSlice(this.scheduler, MAX_SYNC_SLICE_MS);
    while (this.head < this.queue.length) {
      if (slice.due()) await slice.yield();
      if (this.head >= this.queue.length) break;
      const item = this.queue[this.head]!;
      this.queue[this.head] = undefined as never;
      this.head++;
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      if (item.isMessage) this.queuedMessages--;
      try {
        await item.task();
      } catch (error) {
        this.counters.taskErrors++;
        this.onError(error);
      }
      this.counters.tasksRun++;
    }
    this.running = false;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
    this.armIdle();
  }

  /** Starts the next background slice after the event loop has polled I/O. */
  private armIdle(): void {
    if (this.idleArmed || this.stopped || this.idleQueue.length === 0) return;
    this.idleArmed = true;
    void yieldToEventLoop(this.scheduler).then(() => {
      this.idleArmed = false;
      this.runIdle();
    });
  }

  private runIdle(): void {
    while (this.idleQueue.length > 0 && this.idleQueue[0]!.cancelled) this.idleQueue.shift();
    if (this.stopped || this.idleQueue.length === 0) return;
    if (this.running || this.length > 0) {
      // The group's own work goes first; run() re-arms the idle lane when it has drained.
      this.counters.idleTasksDeferred++;
      return;
    }
    const entry = this.idleQueue.shift()!;
    this.counters.idleTasksRun++;
    this.push(entry.task, false);
  }
}
