#!/usr/bin/env node
// npm run sim -- --seeds 1000 [--from N] [--nodes 3]   runs seeds N … N+999
// npm run sim -- --seed N --trace                      replays one seed with a readable trace
// npm run soak -- --minutes M                          runs as many seeds as M minutes allow
import { parseArgs } from 'node:util';
import { runSeed, type SimResult } from './simulate';

const USAGE = `usage: npm run sim -- --seeds N [--from N] [--nodes N] [--broken-acceptor] [--quiet]
       npm run sim -- --seed N [--trace] [--nodes N]
       npm run soak -- --minutes M [--from N]`;

const OPTIONS = {
  seeds: { type: 'string' },
  from: { type: 'string', default: '1' },
  seed: { type: 'string' },
  trace: { type: 'boolean', default: false },
  minutes: { type: 'string' },
  nodes: { type: 'string' },
  'broken-acceptor': { type: 'boolean', default: false },
  quiet: { type: 'boolean', default: false },
} as const;

/** Bad arguments: say what, show the usage, exit 2 (no stack trace). */
function usageError(message: string): never {
  console.error(`${message}\n${USAGE}`);
  process.exit(2);
}

function parseCommandLine() {
  try {
    return parseArgs({ options: OPTIONS, strict: true });
  } catch (e) {
    return usageError((e as Error).message); // an unknown option or a missing value
  }
}

const { values } = parseCommandLine();

function positiveInt(name: string, text: string | undefined, fallback?: number): number {
  if (text === undefined) {
    if (fallback !== undefined) return fallback;
    usageError(`--${name} is required`);
  }
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0)
    usageError(`--${name} must be a non-negative integer, got "${text}"`);
  return n;
}

const nodes = values.nodes === undefined ? undefined : positiveInt('nodes', values.nodes);
const base = { ...(nodes ? { nodes } : {}), brokenAcceptor: values['broken-acceptor'] };

function report(r: SimResult): void {
  if (!r.ok) {
    const v = r.violation!;
    console.log(`seed ${r.seed} FAILED ${v.invariant} at ${v.atMs} ms: ${v.message}`);
  } else if (!values.quiet && values.seed !== undefined) {
    console.log(`seed ${r.seed} ok: ${JSON.stringify(r.stats)}`);
  }
}

async function main(): Promise<void> {
  if (values.seed !== undefined) {
    const seed = positiveInt('seed', values.seed);
    const r = await runSeed({ seed, trace: values.trace, ...base });
    if (values.trace) for (const line of r.trace) console.log(line);
    report(r);
    console.log(`${r.ok ? 1 : 0} passed, ${r.ok ? 0 : 1} failed`);
    process.exit(r.ok ? 0 : 1);
  }
  const from = positiveInt('from', values.from, 1);
  const deadline =
    values.minutes === undefined
      ? Infinity
      : Date.now() + positiveInt('minutes', values.minutes) * 60_000;
  const count =
    values.seeds === undefined
      ? values.minutes === undefined
        ? 100
        : Infinity
      : positiveInt('seeds', values.seeds);
  let passed = 0;
  let failed = 0;
  for (let seed = from; seed < from + count && Date.now() < deadline; seed++) {
    const r = await runSeed({ seed, ...base });
    report(r);
    if (r.ok) passed++;
    else failed++;
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

void main();
