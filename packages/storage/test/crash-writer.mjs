// Child process of test/crash.test.ts: writes to the log until it is killed, and prints every
// write it has seen acknowledged, one line each, the moment its promise resolves:
//   `r <first> <count> <s|n>`  records first … first+count−1 (one put or one putMany), sync or not
//   `m <id>`                   the meta value 'masterVariables' = `meta-<id>` (sync)
// Each record's value says which batch it belongs to and is otherwise fully determined by its id
// (crashValue), so the parent can tell an intact record from a damaged or half-written one.
// The parent kills it with SIGKILL at a random moment.
//
// usage: crash-writer.mjs <dir> <first id> <seed> [plant] [kill at step]
// `kill at step` k > 0: the writer kills itself (SIGKILL) at the k-th call of the store's file
// ports (segment write, fdatasync, fsync): before the call when k is odd, right after it when k
// is even (so also between a segment append and the commit of its index rows).
// `plant` makes the writer misbehave on purpose, so the parent can show its checks catch it
// (style.md 13): `ack-early` acknowledges a write and makes it only PLANT_DELAY_MS later,
// `split-batch` writes a batch as separate transactions and stalls PLANT_DELAY_MS halfway,
// `index-first` makes every value large (out of line) and gives the store a segment writer that
// writes the bytes only PLANT_DELAY_MS later, so the index rows commit (and sync writes are
// acknowledged) before their bytes are in the segment, let alone durable. The delay is longer
// than any kill delay the parent picks, so every round that acknowledged or started such a
// write shows the bug: the planted tests cannot pass by luck of timing.
import { fdatasync, fsync, writevSync } from 'node:fs';
import { SqliteLogStore } from '../dist/sqlite.js';
import { crashRecord, nextRandom } from './crash-values.mjs';

const [dir, startText, seedText, plant = 'none', killText = '0'] = process.argv.slice(2);
const killAtStep = Number(killText);
let steps = 0;
/** Runs one file-port call, dying before or after it at step killAtStep. */
const step = (call) => {
  steps++;
  if (steps === killAtStep && killAtStep % 2 === 1) process.kill(process.pid, 'SIGKILL');
  call();
  if (steps === killAtStep) process.kill(process.pid, 'SIGKILL');
};
const writeAll = (fd, buffers, position) => {
  let at = position;
  for (const b of buffers) {
    let done = 0;
    while (done < b.length) done += writevSync(fd, [b.subarray(done)], at + done);
    at += b.length;
  }
};
const PLANT_DELAY_MS = 5_000;
// Small checkpoint thresholds: the WAL is checkpointed and restarted many times per run: on the
// worker thread (the store switching its locking mode around each) once it holds
// walCheckpointMaxPages, sync writes or not, and on the event loop after a group commit past
// walCheckpointPages when no worker checkpoint runs: the paths where an fsync of a kept WAL
// descriptor could go wrong. Small segments: values above
// 4 KiB go out of line (the default threshold) and roll over to a new segment every 1 MiB.
const store = SqliteLogStore.open(dir, {
  walCheckpointPages: 192,
  walCheckpointMaxPages: 128,
  segmentBytes: 1024 * 1024,
  ...(plant === 'index-first'
    ? {
        writeSegment: (fd, buffers, position) => {
          const copies = buffers.map((b) => Uint8Array.from(b));
          setTimeout(() => writevSync(fd, copies, position), PLANT_DELAY_MS);
        },
      }
    : {}),
  ...(killAtStep > 0
    ? {
        writeSegment: (fd, buffers, position) => step(() => writeAll(fd, buffers, position)),
        fsync: (fd, done) => step(() => fsync(fd, done)),
        fdatasync: (fd, done) => step(() => fdatasync(fd, done)),
      }
    : {}),
});
let id = Number(startText);
let random = Number(seedText) >>> 0;
const rand = (n) => {
  random = nextRandom(random);
  return random % n;
};
const MAX_IN_FLIGHT = 8;
const fail = (e) => {
  process.stderr.write(`crash-writer: ${e?.code} ${e?.message}\n`);
  process.exit(3);
};
const yieldToIo = () => new Promise((r) => setImmediate(r));
const plantDelay = () => new Promise((r) => setTimeout(r, PLANT_DELAY_MS));
let inFlight = 0;
let reportedCheckpoints = 0;

async function write(records, sync) {
  if (plant === 'ack-early') {
    const [first, count] = [records[0].instanceId, records.length];
    process.stdout.write(`r ${first} ${count} ${sync ? 's' : 'n'}\n`);
    await plantDelay();
  }
  if (records.length === 1) return store.put(0, records[0], { sync });
  if (plant === 'split-batch') {
    const half = records.length >> 1;
    for (let k = 0; k < records.length; k++) {
      if (k === half) await plantDelay();
      await store.put(0, records[k], { sync: false });
    }
    return;
  }
  return store.putMany(0, records, { sync });
}

for (;;) {
  while (inFlight >= MAX_IN_FLIGHT) await yieldToIo();
  const sync = rand(3) !== 0;
  const count = rand(4) === 0 ? 1 + rand(60) : 1;
  const first = id;
  const records = [];
  for (let k = 0; k < count; k++)
    records.push(crashRecord(first + k, first, count, rand(8) === 0 || plant === 'index-first'));
  id += count;
  inFlight++;
  write(records, sync).then(() => {
    inFlight--;
    if (plant !== 'ack-early') process.stdout.write(`r ${first} ${count} ${sync ? 's' : 'n'}\n`);
    // Checkpoints on the worker thread: started (`walCheckpointer.running`, a private field read
    // here for the test) or completed. The parent counts the rounds killed after one started.
    const onWorker = store.syncStats.walCheckpoints - store.syncStats.inlineWalCheckpoints;
    const seen = onWorker + (store.walCheckpointer.running ? 1 : 0);
    if (seen > reportedCheckpoints) {
      reportedCheckpoints = seen;
      process.stdout.write(`c ${seen}\n`);
    }
  }, fail);
  if (rand(10) === 0) {
    const m = first; // grows across runs: the parent checks the log never goes back
    inFlight++;
    store
      .setMeta(0, 'masterVariables', new TextEncoder().encode(`meta-${m}`), { sync: true })
      .then(() => {
        inFlight--;
        process.stdout.write(`m ${m}\n`);
      }, fail);
  }
  await yieldToIo();
}
