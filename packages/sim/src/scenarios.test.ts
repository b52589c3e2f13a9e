// Named scenarios as golden traces (etcd's testdata/*.txt style): each runs a scripted seed and
// compares its readable trace with testdata/<name>.txt, so a change of behaviour shows as a diff
// of what happened, not as a regular expression that stopped matching. SIM_GOLDEN_UPDATE=1
// rewrites the files (then read the diff before committing it).
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { SimResult } from './result';
import { runSeed } from './simulate';
import type { SimOptions } from './options';

const UPDATE = process.env.SIM_GOLDEN_UPDATE === '1';

function golden(name: string): URL {
  return new URL(`./testdata/${name}.txt`, import.meta.url);
}

/**
 * The scenario's story: every line but message deliveries and the nodes' own log lines (kept in
 * the full trace, `npm run sim -- --seed N --trace`), plus the deliveries `keep` names.
 */
function story(trace: readonly string[], keep: RegExp): string {
  const lines = trace.filter(
    (l) => !/\] (deliver |n\d+ (debug|info|warn|error) )/.test(l) || keep.test(l),
  );
  return lines.join('\n') + '\n';
}

async function expectGolden(name: string, options: SimOptions, keep: RegExp): Promise<SimResult> {
  const r = await runSeed({ ...options, trace: true });
  expect(r.ok, r.violation?.message).toBe(true);
  const text = story(r.trace, keep);
  if (UPDATE) writeFileSync(golden(name), text);
  expect(text).toBe(readFileSync(golden(name), 'utf8'));
  return r;
}

describe('named scenarios (golden traces in testdata/)', () => {
  it('lagging-learner-catches-up: a node partitioned away learns what it missed from a peer, in batches', async () => {
    // The stream into n3 (SendLearnValue with its batch size) and n3's confirmation of it.
    const r = await expectGolden(
      'lagging-learner-catches-up',
      { seed: 5, faults: false, nodes: 3, partitionNode: 3, partitionMs: [1000, 12_000] },
      /\] deliver (n[12]→n3 g0 SendLearnValue |n3→n[12] g0 ComfirmAskforLearn)/,
    );
    expect(r.coverage.paths['catch-up-streams-finished']).toBeGreaterThan(0);
  });
});
