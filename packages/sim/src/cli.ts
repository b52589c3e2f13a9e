#!/usr/bin/env node
// npm run sim -- --seeds 1000 [--from N] [--nodes 3] [--json]   runs seeds N … N+999
// npm run sim -- --seed N --trace                               replays one seed with a readable trace
// npm run soak -- --minutes M                                   runs as many seeds as M minutes allow
import { parseArgs } from 'node:util';
import { addCoverage, emptyCoverage } from './coverage';
import { PLANTED_BUGS, type PlantedBug, type SimOptions } from './options';
import type { SimResult } from './result';
import { runSeed } from './simulate';

const USAGE = `usage: npm run sim -- --seeds N [--from N] [topology] [--planted BUG] [--json] [--quiet]
       npm run sim -- --seed N [--trace] [topology] [--planted BUG]
       npm run soak -- --minutes M [--from N]
topology (default: drawn from each seed): --nodes 3|5 --groups 1-3 --followers 0-2
master elections (default: drawn, half the seeds): --master on|off
planted bugs (the run must fail): ${PLANTED_BUGS.join(', ')}; --broken-acceptor = forgetPromises`;

const OPTIONS = {
  seeds: { type: 'string' },
  from: { type: 'string', default: '1' },
  seed: { type: 'string' },
  trace: { type: 'boolean', default: false },
  minutes: { type: 'string' },
  nodes: { type: 'string' },
  groups: { type: 'string' },
  followers: { type: 'string' },
  master: { type: 'string' },
  planted: { type: 'string' },
  'broken-acceptor': { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
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

function inRange(name: string, text: string | undefined, lo: number, hi: number) {
  if (text === undefined) return undefined;
  const n = positiveInt(name, text);
  if (n < lo || n > hi) usageError(`--${name} must be ${lo} … ${hi}, got ${n}`);
  return n;
}

function plantedBug(): PlantedBug | undefined {
  if (values['broken-acceptor']) return 'forgetPromises';
  const p = values.planted;
  if (p === undefined) return undefined;
  if (!(PLANTED_BUGS as readonly string[]).includes(p))
    usageError(`--planted must be one of ${PLANTED_BUGS.join(', ')}, got "${p}"`);
  return p as PlantedBug;
}

const nodes = inRange('nodes', values.nodes, 3, 5);
const groups = inRange('groups', values.groups, 1, 3);
const followers = inRange('followers', values.followers, 0, 2);
if (nodes !== undefined && nodes !== 3 && nodes !== 5) usageError(`--nodes must be 3 or 5`);
const planted = plantedBug();
if (values.master !== undefined && values.master !== 'on' && values.master !== 'off')
  usageError(`--master must be on or off, got "${values.master}"`);
const masterElection = values.master === undefined ? undefined : values.master === 'on';
const base: Omit<SimOptions, 'seed'> = {
  ...(nodes !== undefined ? { nodes } : {}),
  ...(groups !== undefined ? { groups } : {}),
  ...(followers !== undefined ? { followers } : {}),
  ...(planted !== undefined ? { planted } : {}),
  ...(masterElection !== undefined ? { masterElection } : {}),
};

function report(r: SimResult): void {
  if (values.json) return;
  if (!r.ok) {
    const v = r.violation!;
    console.log(`seed ${r.seed} FAILED ${v.invariant} at ${v.atMs} ms: ${v.message}`);
  } else if (!values.quiet && values.seed !== undefined) {
    console.log(`seed ${r.seed} ok: ${JSON.stringify({ ...r.stats, topology: r.topology })}`);
  }
}

async function main(): Promise<void> {
  let from: number;
  let count: number;
  let deadline = Infinity;
  if (values.seed !== undefined) {
    from = positiveInt('seed', values.seed);
    count = 1;
  } else {
    from = positiveInt('from', values.from, 1);
    if (values.minutes !== undefined)
      deadline = Date.now() + positiveInt('minutes', values.minutes) * 60_000;
    count =
      values.seeds === undefined
        ? values.minutes === undefined
          ? 100
          : Infinity
        : positiveInt('seeds', values.seeds);
  }
  let passed = 0;
  const failures: Array<{ seed: number; invariant: string; message: string }> = [];
  const coverage = emptyCoverage();
  for (let seed = from; seed < from + count && Date.now() < deadline; seed++) {
    const r = await runSeed({ seed, trace: values.trace, ...base });
    if (values.trace) for (const line of r.trace) console.log(line);
    report(r);
    addCoverage(coverage, r.coverage);
    if (r.ok) passed++;
    else failures.push({ seed, invariant: r.violation!.invariant, message: r.violation!.message });
  }
  if (values.json) {
    console.log(JSON.stringify({ passed, failed: failures.length, failures, coverage }));
  } else {
    console.log(`${passed} passed, ${failures.length} failed`);
  }
  // exitCode, not exit(): exit() may cut off output still queued for a pipe.
  process.exitCode = failures.length === 0 ? 0 : 1;
}

void main().catch((error: unknown) => {
  console.error(error);
  process.exit(3);
});
