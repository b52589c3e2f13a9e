// Self time by function in a V8 CPU profile (`node --cpu-prof`, or the catch-up bench's
// CATCHUP_PROF=<dir>), over the window where the profile's process was doing the work of interest:
// from the first to the last sample whose stack holds a function named `--marker` (default
// `learnEntries`, the catch-up receiver's store step, so a learning node's profile is cut to its
// catch-up: start-up and the idle wait after it are left out).
//
//   node bench/profile-summary.mjs [--marker NAME] [--top N] [--categories] FILE.cpuprofile...
//
// --categories adds the busy samples by what the learning node does with them (the table in
// BENCHMARKS.md, issue 22): the first rule of CATEGORIES that a sample's stack matches.
//
// Prints, per file: the window's length, busy and idle time, then the top functions by self time
// (name, file:line, ms, % of the window) and by samples (% of the busy samples). On a loaded
// machine the samples are the steadier figure: a sample taken after the process waited for a
// core carries the whole wait in its time. A file without the marker is reported as such (a
// profile of another node).
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

const args = process.argv.slice(2);
let marker = 'learnEntries';
let top = 25;
let categories = false;
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--marker') marker = args[++i];
  else if (args[i] === '--top') top = Number(args[++i]);
  else if (args[i] === '--categories') categories = true;
  else files.push(args[i]);
}
if (files.length === 0) {
  console.error('usage: profile-summary.mjs [--marker NAME] [--top N] FILE.cpuprofile...');
  process.exit(2);
}

/** [category, test of (self function name, names on the stack)]: the first that matches. */
const CATEGORIES = [
  ['garbage collection', (self) => self === '(garbage collector)'],
  ['log: segment writev (kernel copy into the page cache)', (self) => self === 'writeBuffers'],
  [
    'socket writes (acks; loopback TCP work of the kernel)',
    (self, s) => self === 'writeBuffer' && s.has('clearBuffer'),
  ],
  ['log: SQLite index rows, record codec, transaction', (self, s) => s.has('putMany')],
  [
    'frame CRC (the one pass over each value)',
    (self, s) => self === 'crc32' && s.has('decodeFrame'),
  ],
  ['frame decode (fields, msgpackr header)', (self, s) => s.has('decodeFrame')],
  [
    'learner, chain check, execution',
    (self, s) => s.has('receiveForLearner') || s.has('afterLearnerMessage'),
  ],
  ['socket reads, frame assembly (copies, buffers)', (self, s) => s.has('onStreamRead')],
  ['native, not attributed ((program))', (self) => self === '(program)'],
  ['other', () => true],
];

for (const file of files) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const underMarker = new Map();
  const isUnder = (id) => {
    if (underMarker.has(id)) return underMarker.get(id);
    const n = byId.get(id);
    const p = parent.get(id);
    const v = n.callFrame.functionName === marker || (p !== undefined && isUnder(p));
    underMarker.set(id, v);
    return v;
  };
  // Sample i lasts timeDeltas[i + 1] (the delta is to the previous sample).
  const times = [];
  let t = profile.startTime;
  for (const d of profile.timeDeltas) times.push((t += d));
  let first = -1;
  let last = -1;
  for (let i = 0; i < profile.samples.length; i++) {
    if (!isUnder(profile.samples[i])) continue;
    if (first < 0) first = i;
    last = i;
  }
  if (first < 0) {
    console.log(`${basename(file)}: no sample under ${marker}`);
    continue;
  }
  const self = new Map();
  const samples = new Map();
  const byCategory = new Map();
  const stackNames = (id) => {
    const names = new Set();
    for (let at = id; at !== undefined; at = parent.get(at))
      names.add(byId.get(at).callFrame.functionName);
    return names;
  };
  let windowUs = 0;
  for (let i = first; i <= last; i++) {
    const us = (times[i + 1] ?? times[i]) - times[i];
    windowUs += us;
    const f = byId.get(profile.samples[i]).callFrame;
    const where = f.url ? `${basename(f.url)}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName || '(anonymous)'}\t${where}`;
    self.set(key, (self.get(key) ?? 0) + us);
    samples.set(key, (samples.get(key) ?? 0) + 1);
    if (categories && f.functionName !== '(idle)') {
      const names = stackNames(profile.samples[i]);
      const [c] = CATEGORIES.find(([, test]) => test(f.functionName, names));
      byCategory.set(c, (byCategory.get(c) ?? 0) + 1);
    }
  }
  const idleUs = self.get('(idle)\t') ?? 0;
  const busySamples = last - first + 1 - (samples.get('(idle)\t') ?? 0);
  console.log(
    `${basename(file)}: window ${(windowUs / 1000).toFixed(0)} ms under ${marker}, ` +
      `busy ${((windowUs - idleUs) / 1000).toFixed(0)} ms, idle ${(idleUs / 1000).toFixed(0)} ms, ` +
      `${busySamples} busy samples`,
  );
  if (categories) {
    console.log('| what | busy samples | % |');
    console.log('|---|---:|---:|');
    for (const [c, n] of [...byCategory].sort((a, b) => b[1] - a[1]))
      console.log(`| ${c} | ${n} | ${((100 * n) / busySamples).toFixed(1)} |`);
  }
  console.log('| function | where | self ms | % of window | samples | % of busy samples |');
  console.log('|---|---|---:|---:|---:|---:|');
  for (const [key, n] of [...samples].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    const [name, where] = key.split('\t');
    const us = self.get(key);
    const share = name === '(idle)' ? '' : ((100 * n) / busySamples).toFixed(1);
    console.log(
      `| ${name} | ${where} | ${(us / 1000).toFixed(1)} | ${((100 * us) / windowUs).toFixed(1)} | ${n} | ${share} |`,
    );
  }
}
