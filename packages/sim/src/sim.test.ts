import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { envInteger } from '../../../scripts/env.mjs';
import {
  addCoverage,
  type Coverage,
  emptyCoverage,
  FAULT_KINDS,
  PATH_KINDS,
  type PlantedBug,
  runSeed,
} from './simulate';

const SEEDS = envInteger('SIM_SEEDS', 300, { min: 1 });
/** Every fault kind and path must occur at least this often over the 300-seed run. */
const MIN_COVERAGE = 20;
/**
 * Paths a fault must hit mid-stream: a NACK needs a frame of a running catch-up lost (20 in
 * seeds 1–300 when added); their floor is lower so a shifted random stream does not fail CI.
 */
const RARE_PATHS = new Set<string>(['catch-up-nacks']);
const MIN_COVERAGE_RARE = 5;
/** A planted bug must be caught within this many seeds. */
const PLANTED_WITHIN = 200;

describe('simulator', () => {
  it(`holds every invariant on ${SEEDS} seeds, and every fault kind and path occurs at least ${MIN_COVERAGE} times`, async () => {
    const failures: string[] = [];
    const coverage: Coverage = emptyCoverage();
    const topologies = new Set<string>();
    for (let seed = 1; seed <= SEEDS; seed++) {
      const r = await runSeed({ seed });
      if (!r.ok) failures.push(`seed ${seed}: ${r.violation!.invariant}: ${r.violation!.message}`);
      addCoverage(coverage, r.coverage);
      topologies.add(`${r.topology.nodes}/${r.topology.groups}/${r.topology.followers}`);
    }
    expect(failures).toEqual([]);
    if (SEEDS >= 300) {
      const thin = [
        ...FAULT_KINDS.filter((k) => coverage.faults[k] < MIN_COVERAGE).map(
          (k) => `fault ${k}: ${coverage.faults[k]}`,
        ),
        ...PATH_KINDS.filter(
          (k) => coverage.paths[k] < (RARE_PATHS.has(k) ? MIN_COVERAGE_RARE : MIN_COVERAGE),
        ).map((k) => `path ${k}: ${coverage.paths[k]}`),
      ];
      expect(thin).toEqual([]);
      // 3 or 5 voters × 1–3 groups × 0–2 followers: all 18 topologies are drawn.
      expect(topologies.size).toBe(18);
    }
  }, 900_000);

  it('replays a seed exactly: same trace, line for line', async () => {
    const a = await runSeed({ seed: 77, trace: true });
    const b = await runSeed({ seed: 77, trace: true });
    expect(a.trace.length).toBeGreaterThan(1000);
    expect(b.trace).toEqual(a.trace);
    expect(b.stats).toEqual(a.stats);
    expect(b.coverage).toEqual(a.coverage);
  });

  it('lets a test pin the topology', async () => {
    const r = await runSeed({
      seed: 9,
      nodes: 5,
      groups: 3,
      followers: 2,
      membershipChange: true,
      longDown: true,
    });
    expect(r.ok, r.violation?.message).toBe(true);
    expect(r.topology).toEqual({
      nodes: 5,
      groups: 3,
      followers: 2,
      membershipChange: true,
      longDown: true,
    });
    expect(r.coverage.paths['long-down-restarts']).toBe(1);
    expect(r.coverage.paths['follower-values-learned']).toBeGreaterThan(0);
    expect(r.coverage.paths['catch-up-streams-finished']).toBeGreaterThan(0);
  });

  /** Runs seeds 1… with the bug planted until one fails; returns that failure. */
  async function firstCatch(planted: PlantedBug) {
    for (let seed = 1; seed <= PLANTED_WITHIN; seed++) {
      const r = await runSeed({ seed, planted });
      if (!r.ok) return { seed, ...r.violation! };
    }
    return undefined;
  }

  it(`planted bug: an acceptor that forgets its promises is caught within ${PLANTED_WITHIN} seeds`, async () => {
    expect((await firstCatch('forgetPromises'))?.invariant).toMatch(/agreement|chain|durability/);
  });

  it(`planted bug: an acceptor that forgets its promise at each new instance is caught within ${PLANTED_WITHIN} seeds`, async () => {
    expect((await firstCatch('resetPromisePerInstance'))?.invariant).toMatch(
      /agreement|chain|durability/,
    );
  });

  it(`planted bug: an acceptor that acknowledges before its write is durable is caught within ${PLANTED_WITHIN} seeds`, async () => {
    expect((await firstCatch('acknowledgeBeforeDurable'))?.invariant).toMatch(
      /agreement|chain|durability/,
    );
  }, 300_000);

  it(`planted bug: a task that throws now and then is caught within ${PLANTED_WITHIN} seeds, naming the error and the event`, async () => {
    const caught = await firstCatch('throwingTask');
    expect(caught?.invariant).toBe('error');
    expect(caught?.message).toMatch(/TypeError: planted bug: learner message \d+ throws/);
    expect(caught?.message).toMatch(/during event "deliver n\d→n\d g\d \w+/);
  });

  it(`planted bug: a learner that skips the chain check is caught within ${PLANTED_WITHIN} seeds`, async () => {
    expect((await firstCatch('learnerSkipsChainCheck'))?.invariant).toBe('chain');
  });

  it(`planted bug: a state machine that reports its checkpoint one instance too high is caught within ${PLANTED_WITHIN} seeds`, async () => {
    expect((await firstCatch('checkpointIdTooHigh'))?.invariant).toMatch(/checkpoint|durability/);
  });

  it(`planted bug: corrupt checkpoint chunks that pass the CRC (a receiver without the check) are caught within ${PLANTED_WITHIN} seeds`, async () => {
    const caught = await firstCatch('checkpointChunkCorruptValidCrc');
    expect(caught?.invariant).toMatch(/checkpoint|validity|agreement|error/);
  });

  it('checkpoints: two nodes compact, a partitioned third catches up through a checkpoint, then through the log', async () => {
    const r = await runSeed({
      seed: 5,
      faults: false,
      nodes: 3,
      compaction: true,
      trace: true,
      partitionNode: 3,
      partitionMs: [1000, 12_000],
    });
    expect(r.ok, r.violation?.message).toBe(true);
    expect(r.coverage.paths['checkpoint-compactions']).toBeGreaterThan(2);
    const installed = r.trace.findIndex((l) => /n3 group 0 installed the checkpoint/.test(l));
    expect(installed).toBeGreaterThan(0);
    // After the install it learns the rest from a peer's log.
    expect(
      r.trace.slice(installed).some((l) => /deliver n[12]→n3 g0 SendLearnValue /.test(l)),
    ).toBe(true);
  });

  it('the run fails on a promise rejected with no handler (planted in the simulator)', async () => {
    const r = await runSeedInChild(['--seed', '1', '--planted', 'unhandledRejection']);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/FAILED unhandled-rejection .*planted: a rejection nobody handles/);
  });

  it('lagging-learner-catches-up: a node partitioned away learns what it missed from a peer', async () => {
    const r = await runSeed({
      seed: 5,
      faults: false,
      nodes: 3,
      trace: true,
      partitionNode: 3,
      partitionMs: [1000, 12_000],
    });
    expect(r.ok).toBe(true);
    const streamed = r.trace.filter((l) => /deliver n[12]→n3 g0 SendLearnValue /.test(l));
    const values = streamed.reduce((n, l) => n + Number(/batch=(\d+)/.exec(l)?.[1] ?? 1), 0);
    expect(values).toBeGreaterThan(20);
    // Batched: far fewer frames than values.
    expect(streamed.some((l) => /batch=([2-9]|\d\d)/.test(l))).toBe(true);
    expect(r.trace.some((l) => /deliver n3→n[12] g0 ComfirmAskforLearn/.test(l))).toBe(true);
    expect(r.coverage.paths['catch-up-streams-finished']).toBeGreaterThan(0);
  });
});

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

/** The CLI in a child process (its own unhandled-rejection handling, no vitest around it). */
function runSeedInChild(args: string[]): Promise<{ status: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout: Buffer.concat(chunks).toString() }));
  });
}

describe('the sim CLI', () => {
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });

  it('refuses bad arguments with the usage and exit code 2, never a stack trace', () => {
    for (const args of [
      ['--bogus'],
      ['--seeds', 'abc'],
      ['--seed'],
      ['--from', '-3'],
      ['--planted', 'nope'],
      ['--nodes', '4'],
      ['--groups', '9'],
    ]) {
      const r = run(...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).not.toMatch(/^\s+at /m);
      expect(r.stderr, args.join(' ')).toMatch(/--(bogus|seeds|seed|from|planted|nodes|groups)/);
    }
  });

  it('runs seeds and ends with the "X passed, Y failed" line', () => {
    const r = run('--seeds', '3', '--from', '5', '--quiet');
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('3 passed, 0 failed');
  });

  it('--json ends with one JSON object: passed, failed, failures, coverage', () => {
    const ok = run('--seeds', '2', '--from', '11', '--json');
    expect(ok.status).toBe(0);
    const summary = JSON.parse(ok.stdout.trim().split('\n').at(-1)!) as {
      passed: number;
      failed: number;
      failures: unknown[];
      coverage: Coverage;
    };
    expect(summary).toMatchObject({ passed: 2, failed: 0, failures: [] });
    expect(Object.keys(summary.coverage.faults).sort()).toEqual([...FAULT_KINDS].sort());
    expect(summary.coverage.paths.acknowledged).toBeGreaterThan(0);

    // Seed 3 reaches the 97th learner message of a node (seed 1 no longer does since the
    // checkpoint events restart nodes more often).
    const bad = run('--seeds', '1', '--from', '3', '--json', '--planted', 'throwingTask');
    expect(bad.status).toBe(1);
    const failed = JSON.parse(bad.stdout.trim().split('\n').at(-1)!) as {
      failures: Array<{ seed: number; invariant: string; message: string }>;
    };
    expect(failed.failures).toEqual([
      { seed: 3, invariant: 'error', message: expect.stringMatching(/planted bug/) as unknown },
    ]);
  });

  it('replays a seed byte for byte across two processes (--seed N --trace)', async () => {
    const [a, b] = await Promise.all([
      runSeedInChild(['--seed', '23', '--trace']),
      runSeedInChild(['--seed', '23', '--trace']),
    ]);
    expect(a.status).toBe(0);
    expect(a.stdout.split('\n').length).toBeGreaterThan(1000);
    expect(b.stdout).toBe(a.stdout);
  });
});
