import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runSeed } from './simulate';

const SEEDS = Number(process.env.SIM_SEEDS ?? 300);

describe('simulator', () => {
  it(`holds every invariant on ${SEEDS} seeds of faults (drop, delay, duplicate, reorder, partition, crash, clock jumps)`, async () => {
    const failures: string[] = [];
    for (let seed = 1; seed <= SEEDS; seed++) {
      const r = await runSeed({ seed });
      if (!r.ok) failures.push(`seed ${seed}: ${r.violation!.invariant}: ${r.violation!.message}`);
    }
    expect(failures).toEqual([]);
  }, 600_000);

  it('replays a seed exactly: same trace, line for line', async () => {
    const a = await runSeed({ seed: 77, trace: true });
    const b = await runSeed({ seed: 77, trace: true });
    expect(a.trace.length).toBeGreaterThan(1000);
    expect(b.trace).toEqual(a.trace);
    expect(b.stats).toEqual(a.stats);
  });

  it('catches an acceptor that forgets its promises within a few hundred seeds', async () => {
    let caught: string | undefined;
    for (let seed = 1; seed <= 300 && caught === undefined; seed++) {
      const r = await runSeed({ seed, brokenAcceptor: true });
      if (!r.ok) caught = `${seed} ${r.violation!.invariant}`;
    }
    expect(caught).toMatch(/agreement|chain|durability/);
  });

  it("catches PhxPaxos's per-instance promise reset (unsafe with skipped prepares), which tspaxos does not do", async () => {
    let caught: string | undefined;
    for (let seed = 1; seed <= 300 && caught === undefined; seed++) {
      const r = await runSeed({ seed, phxpaxosPromiseReset: true });
      if (!r.ok) caught = r.violation!.invariant;
    }
    expect(caught).toBe('agreement');
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
    const streamed = r.trace.filter((l) => /deliver n[12]→n3 SendLearnValue/.test(l));
    const values = streamed.reduce((n, l) => n + Number(/batch=(\d+)/.exec(l)?.[1] ?? 1), 0);
    expect(values).toBeGreaterThan(20);
    // Batched: far fewer frames than values.
    expect(streamed.some((l) => /batch=([2-9]|\d\d)/.test(l))).toBe(true);
    expect(r.trace.some((l) => /deliver n3→n[12] ComfirmAskforLearn/.test(l))).toBe(true);
  });
});

describe('the sim CLI', () => {
  const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000 });

  it('refuses bad arguments with the usage and exit code 2, never a stack trace', () => {
    for (const args of [['--bogus'], ['--seeds', 'abc'], ['--seed'], ['--from', '-3']]) {
      const r = run(...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).not.toMatch(/^\s+at /m);
      expect(r.stderr, args.join(' ')).toMatch(/--(bogus|seeds|seed|from)/);
    }
  });

  it('runs seeds and ends with the "X passed, Y failed" line', () => {
    const r = run('--seeds', '3', '--from', '5', '--quiet');
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('3 passed, 0 failed');
  });
});
