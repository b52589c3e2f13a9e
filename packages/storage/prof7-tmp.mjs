import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { encodeRecord } from '@tspaxos/crc-wasm';
import { SqliteLogStore } from './dist/index.js';
const size = Number(process.argv[2]);
const value = randomBytes(size);
const rec = (id) => ({ instanceId: id, promiseId: 1, promiseNodeId: 1, acceptedId: 1, acceptedNodeId: 1, value, checksum: 1 });
const n = size > 1000 ? 2000 : 100000;
const dir = mkdtempSync(join(tmpdir(), 'p-'));
let s = SqliteLogStore.open(dir);
for (let i = 0; i < n; i += 500) await s.putMany(0, Array.from({ length: 500 }, (_, k) => rec(i + k)), { sync: false });
await s.close();
const enc = Buffer.from(encodeRecord(rec(0)));
const rdir = mkdtempSync(join(tmpdir(), 'p-'));
const d = new Database(join(rdir, 'x.sqlite')); d.pragma('locking_mode = EXCLUSIVE'); d.pragma('journal_mode = WAL');
d.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)'); const ins = d.prepare('INSERT INTO t VALUES (?, ?)');
d.transaction(() => { for (let i = 0; i < n; i++) ins.run(i, enc); })();
const sel = d.prepare('SELECT id, v FROM t WHERE id >= ? AND id < ? ORDER BY id').raw();
const res = {};
for (let rep = 0; rep < 5; rep++) {
  for (const cb of [64 * 1024, 256 * 1024, 1 << 20, 4 << 20]) {
    s = SqliteLogStore.open(dir, { rangeChunkBytes: cb });
    let t0 = performance.now(); let k = 0; for (const r of s.range(0, 0, n)) k++;
    (res['ours ' + cb] ??= []).push(Math.round(k / ((performance.now() - t0) / 1000)));
    await s.close();
  }
  let t0 = performance.now(); let k = 0; for (const r of sel.iterate(0, n)) k++;
  (res.raw ??= []).push(Math.round(k / ((performance.now() - t0) / 1000)));
}
for (const [k, v] of Object.entries(res)) console.log(k.padEnd(16), v.sort((a, b) => a - b).join(' '));
d.close(); rmSync(dir, { recursive: true }); rmSync(rdir, { recursive: true });
