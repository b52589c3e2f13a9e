// The environment knobs of tests and benchmarks (scripts/env.mjs): a bad value is an error naming
// the variable, never a NaN that makes a loop run zero times; and turbo.json declares every knob
// that a test or bench reads, so strict env mode passes it through `npm test` / `npm run bench`.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { envInteger } from '../../../scripts/env.mjs';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const saved = { ...process.env };
afterEach(() => {
  process.env = { ...saved };
});

describe('envInteger', () => {
  it('takes the default when unset or empty, and parses decimal and hex', () => {
    delete process.env.TSPAXOS_TEST_KNOB;
    expect(envInteger('TSPAXOS_TEST_KNOB', 30)).toBe(30);
    process.env.TSPAXOS_TEST_KNOB = ' ';
    expect(envInteger('TSPAXOS_TEST_KNOB', 30)).toBe(30);
    process.env.TSPAXOS_TEST_KNOB = '12';
    expect(envInteger('TSPAXOS_TEST_KNOB', 30)).toBe(12);
    process.env.TSPAXOS_TEST_KNOB = '0x5eed';
    expect(envInteger('TSPAXOS_TEST_KNOB', 30)).toBe(0x5eed);
  });

  it.each(['abc', '12abc', '1.5', 'NaN', 'Infinity', '-1', '0'])(
    'rejects %j naming the variable and the range',
    (raw) => {
      process.env.TSPAXOS_TEST_KNOB = raw;
      expect(() => envInteger('TSPAXOS_TEST_KNOB', 30, { min: 1, max: 1000 })).toThrow(
        `TSPAXOS_TEST_KNOB must be an integer in 1 … 1000, got ${JSON.stringify(raw)}`,
      );
    },
  );
});

/** Every file under `dir` (no node_modules, dist). */
function* files(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else if (/\.(ts|mts|mjs|js)$/.test(name)) yield path;
  }
}

describe('turbo.json', () => {
  it('declares every environment variable a test or bench reads', () => {
    const read = new Set<string>();
    for (const dir of ['packages', 'apps', 'scripts']) {
      for (const file of files(join(root, dir))) {
        const text = readFileSync(file, 'utf8');
        for (const m of text.matchAll(/envInteger\('([A-Z_]+)'|process\.env\.([A-Z_]+)/g)) {
          const name = m[1] ?? m[2]!;
          if (!name.startsWith('TSPAXOS_TEST_')) read.add(name);
        }
      }
    }
    const turbo = JSON.parse(readFileSync(join(root, 'turbo.json'), 'utf8')) as {
      tasks: Record<string, { env?: string[]; passThroughEnv?: string[] }>;
    };
    const declared = new Set(
      Object.values(turbo.tasks).flatMap((t) => [...(t.env ?? []), ...(t.passThroughEnv ?? [])]),
    );
    expect(read.size).toBeGreaterThanOrEqual(7);
    expect([...read].filter((name) => !declared.has(name))).toEqual([]);
  });
});
