import { describe, expect, it } from 'vitest';
import { StaleLeaseChecker } from './stale-lease';

describe('StaleLeaseChecker', () => {
  it('accepts leases under the newest election, renewals included, and counts the checks', () => {
    const failures: string[] = [];
    const c = new StaleLeaseChecker((m) => failures.push(m));
    c.observe({ kind: 'lease-held', group: 0, nodeId: 1, version: 3 }); // no election seen yet
    c.observe({ kind: 'master-changed', group: 0, nodeId: 2, masterNodeId: 1, version: 3 });
    c.observe({ kind: 'lease-held', group: 0, nodeId: 1, version: 3 });
    c.observe({ kind: 'lease-held', group: 0, nodeId: 1, version: 9 }); // a renewal of its own
    // n2 elected at 12 (applied on n3); n1's older variables, adopted late elsewhere, change nothing.
    c.observe({ kind: 'master-changed', group: 0, nodeId: 3, masterNodeId: 2, version: 12 });
    c.observe({ kind: 'master-changed', group: 0, nodeId: 1, masterNodeId: 1, version: 9 });
    c.observe({ kind: 'lease-held', group: 0, nodeId: 2, version: 12 });
    // Another group is judged on its own.
    c.observe({ kind: 'lease-held', group: 1, nodeId: 1, version: 2 });
    expect(failures).toEqual([]);
    expect(c.finish()).toEqual({ 'master-leases-checked-for-staleness': 3 });
  });

  it('catches a lease under variables an applied election superseded (the planted stale master)', () => {
    const failures: string[] = [];
    const c = new StaleLeaseChecker((m) => failures.push(m));
    c.observe({ kind: 'master-changed', group: 0, nodeId: 1, masterNodeId: 2, version: 40 });
    // n3 kept (or adopted) variables from before that election and granted itself a lease.
    c.observe({ kind: 'lease-held', group: 0, nodeId: 3, version: 30 });
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatch(
      /n3 holds the master lease under version 30, but n2's election at version 40 was already applied on n1/,
    );
  });
});
