// Where a process's CPU went, from a system-wide `perf` profile (issue 22): every thread of the
// process, the kernel included. V8's own profiler (--cpu-prof, profile-summary.mjs) sees the main
// thread's JavaScript only: a socket read made by libuv before its JS callback, with the page
// faults of the memory it reads into, counts there as "(idle)", and V8's background threads
// (concurrent marking, the optimizing compiler) are not in it at all.
//
//   NODE_OPTIONS=--perf-basic-prof BENCH_CATCHUP_QUIET_ONLY=1 ... node bench/catchup.mjs &
//   perf record -F 499 -a -g -o perf.data -- sleep 60
//   perf script -i perf.data -F pid,tid,time,ip,sym,dso > perf.txt
//   node bench/perf-summary.mjs perf.txt PID MARKER VALUES [HZ]
//
// PID: the process (the learning node 3 of the quiet catch-up: the one whose /tmp/perf-PID.map
// names `learnEntries`; or the physical receiver, the `receive-file` process). The window runs
// from the first to the last main-thread sample whose stack holds MARKER (`learnEntries` for a
// learning node, `tcp_recvmsg` for the physical receiver), all threads counted. VALUES: values
// received in that window, for the µs per value column (HZ: perf's -F, default 499).
import { readFileSync } from 'node:fs';

const [file, pidArg, marker, valuesArg, hzArg] = process.argv.slice(2);
if (file === undefined || pidArg === undefined || marker === undefined || valuesArg === undefined) {
  console.error('usage: perf-summary.mjs PERF_SCRIPT_FILE PID MARKER VALUES [HZ]');
  process.exit(2);
}
const values = Number(valuesArg);
const hz = Number(hzArg ?? 499);

/** One sample: main thread or not, its time (s), and its frames (symbol, dso), leaf first. */
const samples = [];
let current;
for (const line of readFileSync(file, 'utf8').split('\n')) {
  const head = /^\s*(\d+)\/(\d+)\s+([\d.]+):/.exec(line);
  if (head !== null) {
    current =
      head[1] === pidArg
        ? { main: head[1] === head[2], t: Number(head[3]), frames: [] }
        : undefined;
    if (current !== undefined) samples.push(current);
    continue;
  }
  const frame = /^\s+[0-9a-f]+ (.*) \((.*)\)$/.exec(line);
  if (frame !== null && current !== undefined) current.frames.push([frame[1], frame[2]]);
}
const has = (s, ...names) => s.frames.some(([f]) => names.some((n) => f.includes(n)));
const leaf = (s) => s.frames[0]?.[0] ?? '';
const leafDso = (s) => s.frames[0]?.[1] ?? '';

/** [what, test]: the first that matches a sample names it. */
const CATEGORIES = [
  ['frame CRC (zlib crc32: one pass over each value)', (s) => s.main && leaf(s).includes('crc32')],
  [
    'page faults of the memory socket reads land in (fresh frame buffers)',
    (s) => s.main && has(s, 'exc_page_fault') && has(s, 'tcp_recvmsg'),
  ],
  ['page faults, other', (s) => s.main && has(s, 'exc_page_fault')],
  [
    'socket reads (the kernel: TCP receive, copy to user memory)',
    (s) => s.main && has(s, 'tcp_recvmsg', 'sock_recvmsg', 'sock_read_iter'),
  ],
  ['socket writes (acks)', (s) => s.main && has(s, 'tcp_sendmsg', 'sock_write_iter')],
  [
    'file writes (the kernel: copy into the page cache; segment pwritev, or write)',
    (s) =>
      s.main &&
      has(
        s,
        'generic_perform_write',
        'ext4_buffered_write_iter',
        'ext4_file_write_iter',
        'do_pwritev',
      ),
  ],
  [
    'SQLite (index rows, transactions)',
    (s) => s.main && s.frames.slice(0, 4).some(([, dso]) => dso.includes('better_sqlite3')),
  ],
  [
    'garbage collection on the main thread',
    (s) =>
      s.main &&
      s.frames
        .slice(0, 8)
        .some(([f]) => /Heap::|Scaveng|MarkCompact|Sweeper|Marking|GCTracer/.test(f)),
  ],
  ['other kernel work (epoll, timers, syscalls)', (s) => s.main && leafDso(s).includes('kernel')],
  ['JavaScript and the V8 runtime (learner, codecs, store)', (s) => s.main],
  [
    'V8 background threads: optimizing compiler',
    (s) => has(s, 'PlatformWorkerThread') && has(s, 'compiler::', 'OptimizingCompile', 'maglev'),
  ],
  [
    'V8 background threads: concurrent marking, sweeping (major GC)',
    (s) => has(s, 'PlatformWorkerThread'),
  ],
  ['other threads (libuv pool: fdatasync, WAL checkpoints)', () => true],
];

const marks = samples.filter((s) => s.main && has(s, marker)).map((s) => s.t);
if (marks.length === 0) {
  console.log(`process ${pidArg}: no main-thread sample with ${marker} on its stack`);
  process.exit(1);
}
const from = Math.min(...marks);
const to = Math.max(...marks);
const window = samples.filter((s) => s.t >= from && s.t <= to);
const counts = new Map(CATEGORIES.map(([what]) => [what, 0]));
for (const s of window) {
  const [what] = CATEGORIES.find(([, test]) => test(s));
  counts.set(what, counts.get(what) + 1);
}
const usPerValue = (n) => ((n / hz) * 1e6) / values;
console.log(
  `process ${pidArg}: ${(to - from).toFixed(2)} s under ${marker}, ${window.length} samples, ` +
    `${usPerValue(window.length).toFixed(0)} µs of CPU per value`,
);
console.log('| what | samples | % | µs per value |');
console.log('|---|---:|---:|---:|');
for (const [what, n] of counts)
  console.log(
    `| ${what} | ${n} | ${((100 * n) / window.length).toFixed(1)} | ${usPerValue(n).toFixed(0)} |`,
  );
