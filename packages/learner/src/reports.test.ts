// PeerReports.majorityPast answers what comparing quorumSeenInstanceId gives, for every case of
// small groups (it skips the sort only where the answer cannot be yes).
import { describe, expect, it } from 'vitest';
import { PeerReports } from './reports';

describe('PeerReports.majorityPast', () => {
  it('agrees with quorumSeenInstanceId > instanceId for every report of 3 and 5 members', () => {
    let cases = 0;
    let shortcut = 0;
    for (const peers of [
      [2, 3],
      [2, 3, 4, 5],
    ]) {
      const ids = [0, 1, 2, 3];
      // Every combination of the peers' reports (0: none), and a report from a non-member.
      const combos = peers.reduce<number[][]>(
        (acc) => acc.flatMap((c) => ids.map((id) => [...c, id])),
        [[]],
      );
      for (const combo of combos)
        for (const outsider of [0, 5]) {
          const reports = new PeerReports(() => peers);
          combo.forEach((id, i) => id > 0 && reports.setSeen(id, peers[i]!));
          if (outsider > 0) reports.setSeen(outsider, 9);
          for (const mine of ids)
            for (let instanceId = 0; instanceId <= 6; instanceId++) {
              const expected = reports.quorumSeenInstanceId(mine) > instanceId;
              expect(reports.majorityPast(instanceId, mine)).toBe(expected);
              cases++;
              if (instanceId >= mine && instanceId >= reports.seenInstanceId) shortcut++;
            }
        }
    }
    expect(cases).toBe((16 + 256) * 2 * 4 * 7);
    expect(shortcut).toBeGreaterThan(cases / 4); // the shortcut was taken, and agreed
  });
});
