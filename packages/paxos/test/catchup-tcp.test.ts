// Two processes over TCP: node 1 (a child process) holds 50,000 records in its SQLite log; node 2
// (this process) starts empty and catches up through the learner's batched stream. Afterwards
// both logs hold the same records, value by value and checksum by checksum.
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type AcceptorRecord, chainChecksum } from '@tspaxos/crc-wasm';
import { SqliteLogStore } from '@tspaxos/storage/sqlite';
import { TcpNetwork } from '@tspaxos/transport/tcp';
import { afterAll, expect, it } from 'vitest';
import { realRandom, realScheduler } from '../src/adapters/node-entry';
import { NO_SM_ID, packValue, type PaxosNode, startNode } from '../src/internal';

const RECORDS = 50_000;
const PEER = fileURLToPath(new URL('./catchup-peer.mjs', import.meta.url));
const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'tspaxos-catchup-tcp-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function writeLog(dir: string): Promise<void> {
  const store = SqliteLogStore.open(dir);
  let checksum = 0;
  for (let first = 0; first < RECORDS; first += 5000) {
    const records: AcceptorRecord[] = [];
    for (let id = first; id < first + 5000; id++) {
      const payload = new Uint8Array(100);
      new DataView(payload.buffer).setUint32(0, id, true);
      payload.fill(id & 0xff, 4);
      const value = packValue(NO_SM_ID, payload); // as propose() stores it
      checksum = chainChecksum(id, checksum, value);
      records.push({
        instanceId: id,
        promiseId: 3,
        promiseNodeId: 1,
        acceptedId: 3,
        acceptedNodeId: 1,
        value,
        checksum,
      });
    }
    await store.putMany(0, records, { sync: false });
  }
  await store.close();
}

function reply<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number) => reject(new Error(`peer exited (${code}) awaiting ${type}`));
    const onMessage = (m: { type: string }) => {
      if (m.type !== type) return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      resolve(m as T);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/**
 * Deadline of the catch-up (a few seconds on a quiet machine): no timing is asserted, so a loaded
 * machine (load 5–6 on 2 cores) gets room; the test's timeout adds the writes and the comparison.
 */
const CATCH_UP_TIMEOUT_MS = 120_000;

async function until(cond: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

it(
  'a fresh node catches up 50,000 records from another process over TCP; both logs are equal',
  async () => {
    const dir1 = tmp();
    const dir2 = tmp();
    await writeLog(dir1);
    const child = fork(PEER, [dir1], { stdio: 'inherit' });
    let node2: PaxosNode | undefined;
    let learnedEnd = 0;
    try {
      const { port } = await reply<{ port: number }>(child, 'listening');
      const network = new TcpNetwork({
        nodeId: 2,
        clusterId: 'catchup-test',
        listen: { host: '127.0.0.1', port: 0 },
        peers: { 1: { host: '127.0.0.1', port } },
      });
      const addr = await network.start();
      const started = reply<{ instanceId: number }>(child, 'started');
      child.send({ type: 'peer', port: addr.port });
      // The highest record may be accepted but not learned yet: node 1 starts at RECORDS - 1.
      expect((await started).instanceId).toBe(RECORDS - 1);
      const caughtUp: number[] = [];
      node2 = await startNode({
        nodeId: 2,
        cluster: [1, 2],
        groups: 1,
        store: SqliteLogStore.open(dir2),
        network,
        scheduler: realScheduler(),
        random: realRandom(),
      });
      node2.on('caughtUp', (e) => caughtUp.push(e.learnedInstances));
      const n2 = node2;
      let peerNow = 0;
      await until(async () => {
        const status = reply<{ instanceId: number }>(child, 'status');
        child.send({ type: 'status' });
        peerNow = (await status).instanceId;
        return n2.instanceId(0) >= RECORDS - 1 && n2.instanceId(0) === peerNow;
      }, CATCH_UP_TIMEOUT_MS);
      const status = n2.status(0);
      learnedEnd = n2.instanceId(0);
      expect(caughtUp.length).toBeGreaterThanOrEqual(1);
      expect(caughtUp[0]).toBeGreaterThanOrEqual(RECORDS - 1);
      // Batched: far fewer frames than values.
      expect(status.learner.counters.batchesLearned).toBeLessThan(200);
      expect(status.learner.counters.valuesLearnedFromPeers).toBeGreaterThanOrEqual(RECORDS - 1);
      await n2.stop();
      node2 = undefined;
      const stopped = reply(child, 'stopped');
      child.send({ type: 'stop' });
      await stopped;
    } finally {
      await node2?.stop();
      if (child.exitCode === null) child.kill();
    }
    const a = SqliteLogStore.open(dir1);
    const b = SqliteLogStore.open(dir2);
    try {
      // Only the learned prefix is chosen: the record at the now instance is acceptor state (node 1's
      // recovery proposal may have left a promise there on node 2, without a value yet).
      const end = learnedEnd;
      expect(end).toBeGreaterThanOrEqual(RECORDS - 1);
      const left = a.range(0, 0, end);
      const right = b.range(0, 0, end);
      let compared = 0;
      for (;;) {
        const x = left.next();
        const y = right.next();
        expect(x.done).toBe(y.done);
        if (x.done === true || y.done === true) break;
        const r = x.value;
        const s = y.value;
        if (r.instanceId !== s.instanceId || r.checksum !== s.checksum)
          expect({ id: s.instanceId, checksum: s.checksum }).toEqual({
            id: r.instanceId,
            checksum: r.checksum,
          });
        if (Buffer.compare(r.value, s.value) !== 0 || r.acceptedId !== s.acceptedId)
          expect(s).toEqual(r);
        compared++;
      }
      expect(compared).toBe(end);
    } finally {
      await a.close();
      await b.close();
    }
  },
  CATCH_UP_TIMEOUT_MS + 60_000,
);
