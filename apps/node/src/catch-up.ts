// `learner.catchUp` of DESIGN §6 when the learner package does not report it itself: the server
// samples each group's now instance id and the highest instance id it has seen from a peer, and
// derives the rate and the ETA over a sliding window.
import { CATCH_UP_RATE_WINDOW_MS } from './options';

export interface CatchUp {
  fromNodeId: number;
  beginInstanceId: number;
  targetInstanceId: number;
  learnedInstances: number;
  /** Null when only the server's estimate is available (it does not see value sizes). */
  learnedBytes: number | null;
  instancesPerSec: number;
  bytesPerSec: number | null;
  etaMs: number | null;
}

export interface LearnerView {
  instanceId: number;
  highestSeenInstanceId: number;
  highestSeenFromNodeId: number;
  isLearning: boolean;
}

interface Sample {
  atMs: number;
  instanceId: number;
}

export class CatchUpTracker {
  private samples: Sample[] = [];
  private beginInstanceId: number | undefined;

  /** Records a sample; returns the catch-up view, or undefined when this group is not behind. */
  update(view: LearnerView, nowMs: number): CatchUp | undefined {
    this.samples.push({ atMs: nowMs, instanceId: view.instanceId });
    while (this.samples.length > 2 && this.samples[0]!.atMs < nowMs - CATCH_UP_RATE_WINDOW_MS)
      this.samples.shift();
    const gap = view.highestSeenInstanceId - view.instanceId;
    // One instance ahead is the steady state (a proposer's message for the next instance).
    const behind = gap > 1 || (view.isLearning && gap > 0);
    if (!behind) {
      this.beginInstanceId = undefined;
      return undefined;
    }
    this.beginInstanceId ??= view.instanceId;
    const first = this.samples[0]!;
    const spanMs = nowMs - first.atMs;
    const instancesPerSec = spanMs > 0 ? ((view.instanceId - first.instanceId) * 1000) / spanMs : 0;
    return {
      fromNodeId: view.highestSeenFromNodeId,
      beginInstanceId: this.beginInstanceId,
      targetInstanceId: view.highestSeenInstanceId,
      learnedInstances: view.instanceId - this.beginInstanceId,
      learnedBytes: null,
      instancesPerSec: Math.round(instancesPerSec * 10) / 10,
      bytesPerSec: null,
      etaMs: instancesPerSec > 0 ? Math.round((gap * 1000) / instancesPerSec) : null,
    };
  }
}
