// `tspaxos status`'s catch-up line from the learner's status (the process test sees it live).
import { describe, expect, it } from 'vitest';
import { describeCatchUp } from './commands';

const catchUp = {
  fromNodeId: 2,
  beginInstanceId: 100,
  targetInstanceId: 700,
  learnedInstances: 120,
  learnedBytes: 24_000,
  instancesPerSec: 60.4,
  bytesPerSec: 12_080,
  etaMs: 8_000,
  startedAtMs: 0,
};

describe('describeCatchUp', () => {
  it('says from whom, how far, how fast and when it will be done', () => {
    expect(describeCatchUp(catchUp, 220)).toBe(
      'catching up from node 2: instance 220 of 700 (480 left), 60 instances/s, 12080 bytes/s, ETA 8.0 s',
    );
    expect(describeCatchUp({ ...catchUp, etaMs: 400_000 }, 220)).toMatch(/ETA 7 min$/);
  });

  it('has no ETA before anything is learned (no rate yet)', () => {
    const none = { ...catchUp, learnedInstances: 0, instancesPerSec: 0, bytesPerSec: 0 };
    delete (none as { etaMs?: number }).etaMs;
    expect(describeCatchUp(none, 100)).toMatch(/0 instances\/s, 0 bytes\/s, ETA unknown/);
  });
});
