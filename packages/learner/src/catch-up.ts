// Catch-up accounting: what status().learner.catchUp shows while this node learns from a peer
// that is ahead, and the summary of the last catch-up that reached its target. Data only: the
// learner decides when a catch-up starts and counts and announces it.
import { RateWindow } from './rate';

/** What every view of a catch-up holds: who streams, from where to where, and how far it got. */
export interface CatchUpProgress {
  /** The peer streaming to us (now, or at the end). */
  fromNodeId: number;
  beginInstanceId: number;
  /** The highest now instance id a peer reported: where the catch-up ends. */
  targetInstanceId: number;
  learnedInstances: number;
  learnedBytes: number;
  startedAtMs: number;
}

/** A catch-up in progress, as status() shows it (rates over the last rateWindowMs). */
export interface CatchUpStatus extends CatchUpProgress {
  instancesPerSec: number;
  bytesPerSec: number;
  /** At the current rate; undefined while nothing has been learned. */
  etaMs: number | undefined;
}

/** The last catch-up that reached its target (average rates over its whole duration). */
export interface CatchUpSummary extends CatchUpProgress {
  finishedAtMs: number;
  durationMs: number;
  instancesPerSec: number;
  bytesPerSec: number;
}

export type LearnerEvent =
  | {
      type: 'catchUpStarted';
      fromNodeId: number;
      beginInstanceId: number;
      targetInstanceId: number;
    }
  | ({ type: 'caughtUp' } & CatchUpSummary);

interface CatchUp extends CatchUpProgress {
  rate: RateWindow;
}

/** The catch-up under way, if any, and the last one finished. */
export class CatchUpTracker {
  private current: CatchUp | undefined;
  private last: CatchUpSummary | undefined;

  constructor(
    private readonly rateWindowMs: number,
    private readonly now: () => number,
  ) {}

  /**
   * Starts a catch-up from `beginInstanceId`, or moves the one under way to a new peer and a
   * higher target. True when a new one started.
   */
  start(from: number, target: number, beginInstanceId: number, nowMs: number): boolean {
    const c = this.current;
    if (c !== undefined) {
      c.fromNodeId = from;
      c.targetInstanceId = Math.max(c.targetInstanceId, target);
      return false;
    }
    this.current = {
      fromNodeId: from,
      beginInstanceId,
      targetInstanceId: target,
      learnedInstances: 0,
      learnedBytes: 0,
      startedAtMs: nowMs,
      rate: new RateWindow(this.rateWindowMs),
    };
    return true;
  }

  /** Values learned from a peer (counted only while a catch-up is under way). */
  learned(instances: number, bytes: number): void {
    const c = this.current;
    if (c === undefined) return;
    c.learnedInstances += instances;
    c.learnedBytes += bytes;
    c.rate.add(this.now(), instances, bytes);
  }

  /**
   * A catch-up ends when this node has executed up to the highest now id a peer reported
   * (`seenInstanceId` raises the target). Returns its summary when it just ended.
   */
  finishIfReached(instanceId: number, seenInstanceId: number): CatchUpSummary | undefined {
    const c = this.current;
    if (c === undefined) return undefined;
    c.targetInstanceId = Math.max(c.targetInstanceId, seenInstanceId);
    if (instanceId < c.targetInstanceId) return undefined;
    const finishedAtMs = this.now();
    const durationMs = finishedAtMs - c.startedAtMs;
    const seconds = Math.max(durationMs, 1) / 1000;
    this.last = {
      fromNodeId: c.fromNodeId,
      beginInstanceId: c.beginInstanceId,
      targetInstanceId: c.targetInstanceId,
      learnedInstances: c.learnedInstances,
      learnedBytes: c.learnedBytes,
      startedAtMs: c.startedAtMs,
      finishedAtMs,
      durationMs,
      instancesPerSec: c.learnedInstances / seconds,
      bytesPerSec: c.learnedBytes / seconds,
    };
    this.current = undefined;
    return this.last;
  }

  /** The catch-up under way (undefined when none), with `instanceId` as how far we are. */
  status(nowMs: number, instanceId: number): CatchUpStatus | undefined {
    const c = this.current;
    if (c === undefined) return undefined;
    const { instancesPerSec, bytesPerSec } = c.rate.rates(nowMs, c.startedAtMs);
    const left = Math.max(0, c.targetInstanceId - instanceId);
    return {
      fromNodeId: c.fromNodeId,
      beginInstanceId: c.beginInstanceId,
      targetInstanceId: c.targetInstanceId,
      learnedInstances: c.learnedInstances,
      learnedBytes: c.learnedBytes,
      instancesPerSec,
      bytesPerSec,
      etaMs: instancesPerSec > 0 ? (left / instancesPerSec) * 1000 : undefined,
      startedAtMs: c.startedAtMs,
    };
  }

  /** A copy of the last catch-up that reached its target. */
  lastSummary(): CatchUpSummary | undefined {
    return this.last && { ...this.last };
  }
}
