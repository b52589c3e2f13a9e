// The short black-box fault run of `npm test` (test/jepsen/run.ts; longer runs: `npm run jepsen
// -- --seconds N`). Three node processes, every paxos link through a proxy, eight clients writing
// and reading three keys through random nodes while the nemesis kills, terminates, pauses and
// partitions nodes; afterwards every node converges and the history is linearizable per key.
// JEPSEN_SECONDS sets the length, JEPSEN_SEED replays a schedule (the seed is in the output).
import { describe, expect, it } from 'vitest';
import { FAULT_KINDS } from './jepsen/nemesis';
import { formatReport, runJepsen } from './jepsen/run';

const SECONDS = Number(process.env.JEPSEN_SECONDS ?? 45);
const SEED = Number(process.env.JEPSEN_SEED ?? Date.now() % 1_000_000_007);

describe('black-box fault run', () => {
  it(
    `keeps every promise of the HTTP API under kills, pauses and partitions (${SECONDS} s)`,
    { timeout: 300_000 },
    async () => {
      const report = await runJepsen({ seconds: SECONDS, seed: SEED });
      console.log(formatReport(report));

      // It exercised what it claims: every fault kind, traffic through every link proxy, and
      // enough operations of every kind for the checks to mean something.
      for (const kind of FAULT_KINDS) expect(report.faults[kind], kind).toBeGreaterThanOrEqual(1);
      for (const [name, link] of Object.entries(report.links)) {
        expect(link.bytesForwarded, name).toBeGreaterThan(0);
        expect(link.bytesBack, name).toBe(0); // the transport never answers on a dialled link
      }
      expect(
        Object.values(report.links).reduce(
          (s, l) => s + l.connectionsCut + l.connectionsRefused,
          0,
        ),
      ).toBeGreaterThan(0);
      expect(report.ops.write.ok).toBeGreaterThanOrEqual(50);
      expect(report.ops.consistent.ok).toBeGreaterThanOrEqual(20);
      expect(report.ops.lease.ok).toBeGreaterThanOrEqual(5);
      expect(report.ops.plain.ok).toBeGreaterThanOrEqual(20);
      expect(report.ops.write.fail + report.ops.write.unknown).toBeGreaterThan(0);

      // The promises: convergence, equal checksums, linearizable histories, no server bug.
      expect(report.converged).toBe(true);
      expect(new Set(report.finalStatus.map((s) => s.lastChecksum)).size).toBe(1);
      for (const v of [...report.verdicts.consistent, ...report.verdicts.lease])
        expect(v.verdict.ops).toBeGreaterThan(0);
      expect(report.problems).toEqual([]);

      // Consistent reads ran on the quorum read path (issue 22): rounds on every node (at least
      // the final reads), shared by the reads, and no barrier proposed for them but fallbacks.
      for (const n of report.readPath) {
        expect(n.rounds, `node ${n.nodeId}`).toBeGreaterThanOrEqual(1);
        expect(n.reads, `node ${n.nodeId}`).toBeGreaterThanOrEqual(n.rounds);
        expect(n.barriers, `node ${n.nodeId}`).toBe(0);
      }
    },
  );
});
