// Simulated OS crash (power loss) at every step of the write path. A file layer in the test sits
// under the store's sync ports: it records what each fdatasync (segments) and fsync (the WAL,
// directories) made durable. At every call of a port (before it takes effect, and again when a
// sync is done but not yet reported), it builds the image a power cut would leave then: the WAL
// as of its last fsync, each segment file as of its last fdatasync (present only if its
// directory entries were fsynced), and of the bytes written since, nothing, a torn prefix, or
// random pages (seeded). A fresh store opens each image and must hold every write acknowledged
// as durable before that moment, byte for byte, with nothing damaged: no record reads as
// E_CORRUPT_RECORD, every record is one that was written, and every batch is whole or absent.
// Three planted writers (StorageUnsafeFaults: "ack before fdatasync", "index first", "join the
// round under way") must be caught. A run with syncInline (the one fdatasync of a round on the
// event loop) keeps the same promise. WAL checkpoints are off here, so the database file does
// not change during a run.
import {
  fdatasyncSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AcceptorRecord } from '@tspaxos/crc-wasm';
import { afterAll, expect, it } from 'vitest';
import type { StorageUnsafeFaults } from '../src/group-commit';
import { DATABASE_FILE, SqliteLogStore } from '../src/sqlite-log-store';
import { nextRandom } from './crash-values.mjs';

const dirs: string[] = [];
const tempDir = (prefix: string) => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

type Callback = (err: NodeJS.ErrnoException | null) => void;
type Mode = 'lose' | 'prefix' | 'holes';
const PAGE = 4096;

/** Every file and directory under `root`, by inode. */
function byInode(root: string): Map<number, string> {
  const out = new Map<number, string>();
  const walk = (p: string) => {
    const st = statSync(p);
    out.set(st.ino, p);
    if (st.isDirectory()) for (const name of readdirSync(p)) walk(join(p, name));
  };
  walk(root);
  return out;
}

/** The durable state of a data directory, as the sync ports made it. */
class SimDisk {
  /** Content of each file as of its last fdatasync/fsync. */
  readonly synced = new Map<string, Buffer>();
  /** Entries of each directory as of its last fsync. */
  readonly dirEntries = new Map<string, Set<string>>();
  readonly db: Buffer;
  private random: number;

  constructor(
    readonly root: string,
    seed: number,
  ) {
    this.random = seed;
    // The state right after the open counts as durable (the test is about writes after it).
    this.db = readFileSync(join(root, DATABASE_FILE));
    this.synced.set(
      join(root, `${DATABASE_FILE}-wal`),
      readFileSync(join(root, `${DATABASE_FILE}-wal`)),
    );
    this.dirEntries.set(root, new Set(readdirSync(root)));
  }

  private rand(n: number): number {
    this.random = nextRandom(this.random);
    return this.random % n;
  }

  /** Records what a sync of `fd` makes durable. */
  sync(fd: number): void {
    const st = fstatSync(fd);
    const path = byInode(this.root).get(st.ino);
    if (path === undefined) throw new Error(`fd ${fd} is not under ${this.root}`);
    if (st.isDirectory()) this.dirEntries.set(path, new Set(readdirSync(path)));
    else this.synced.set(path, readFileSync(path));
  }

  private entryDurable(path: string): boolean {
    if (path === this.root) return true;
    const parent = join(path, '..');
    const name = path.slice(parent.length + 1);
    return this.entryDurable(parent) && (this.dirEntries.get(parent)?.has(name) ?? false);
  }

  /** Builds the image a power cut would leave now, in a new directory. */
  image(mode: Mode): string {
    const out = tempDir('tspaxos-image-');
    writeFileSync(join(out, DATABASE_FILE), this.db);
    writeFileSync(
      join(out, `${DATABASE_FILE}-wal`),
      this.synced.get(join(this.root, `${DATABASE_FILE}-wal`))!,
    );
    const segRoot = join(this.root, 'segments');
    let groups: string[] = [];
    try {
      groups = readdirSync(segRoot);
    } catch {
      // no segment yet
    }
    for (const g of groups) {
      for (const name of readdirSync(join(segRoot, g))) {
        const path = join(segRoot, g, name);
        if (!this.entryDurable(path)) continue;
        const durable = this.synced.get(path) ?? Buffer.alloc(0);
        const now = readFileSync(path);
        let bytes: Buffer;
        if (mode === 'lose' || now.length <= durable.length) bytes = durable;
        else if (mode === 'prefix') {
          const pages = Math.ceil((now.length - durable.length) / PAGE);
          bytes = Buffer.concat([
            durable,
            now.subarray(durable.length, durable.length + this.rand(pages + 1) * PAGE),
          ]);
        } else {
          bytes = Buffer.from(now);
          durable.copy(bytes);
          for (let at = durable.length; at < now.length; at += PAGE)
            if (this.rand(2) === 0) bytes.fill(0, at, Math.min(now.length, at + PAGE));
        }
        mkdirSync(join(out, 'segments', g), { recursive: true });
        writeFileSync(join(out, 'segments', g, name), bytes);
      }
    }
    return out;
  }
}

/** A value saying which write made it: `<id>:<version>:<batch>|` then filler. */
function value(id: number, version: number, batch: number, bytes: number): Uint8Array {
  const head = new TextEncoder().encode(`${id}:${version}:${batch}|`);
  const out = new Uint8Array(head.length + bytes);
  out.set(head);
  for (let k = 0; k < bytes; k++) out[head.length + k] = (id * 7 + version * 13 + k) & 0xff;
  return out;
}

function rec(id: number, version: number, batch: number, bytes: number): AcceptorRecord {
  return {
    instanceId: id,
    promiseId: version + 1,
    promiseNodeId: 1,
    acceptedId: version + 1,
    acceptedNodeId: 1,
    value: value(id, version, batch, bytes),
    checksum: (id * 31 + version) % 2 ** 32,
  };
}

const eq = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

interface Written {
  /** Per id: every version written (record), and the highest acknowledged durable version. */
  versions: Map<number, Map<number, AcceptorRecord>>;
  /** Per batch version: its ids (written once, never rewritten). */
  batches: Map<number, number[]>;
  batched: Set<number>;
}

interface Snapshot {
  dir: string;
  /** Highest acknowledged sync version per id at the moment of the image. */
  acked: Map<number, number>;
  ackedMeta: number;
  step: string;
}

/**
 * Runs a seeded writer against a store whose sync ports are the SimDisk's, taking an image at
 * every step; returns the images with what was acknowledged at each, and what was written.
 */
async function run(seed: number, faults: StorageUnsafeFaults, modes: Mode[], syncInline = false) {
  const dir = tempDir('tspaxos-power-');
  const written: Written = { versions: new Map(), batches: new Map(), batched: new Set() };
  const acked = new Map<number, number>();
  let ackedMeta = 0;
  const snapshots: Snapshot[] = [];
  const holder: { disk?: SimDisk } = {};
  let random = seed;
  const rand = (n: number) => ((random = nextRandom(random)), random % n);
  const snap = (step: string) => {
    const disk = holder.disk;
    if (disk === undefined) return;
    for (const mode of modes)
      snapshots.push({ dir: disk.image(mode), acked: new Map(acked), ackedMeta, step });
  };
  const syncPort = (real: (fd: number) => void, what: string) => (fd: number, done: Callback) => {
    snap(`before ${what}`);
    real(fd);
    holder.disk!.sync(fd);
    snap(`after ${what}`);
    setImmediate(() => done(null));
  };
  const store = SqliteLogStore.open(dir, {
    walCheckpointPages: 1e9,
    walCheckpointMaxPages: 1e9,
    segmentBytes: 256 * 1024,
    segmentGrowBytes: 64 * 1024,
    fsync: syncPort(fsyncSync, 'fsync'),
    fdatasync: syncPort(fdatasyncSync, 'fdatasync'),
    syncInline,
    fdatasyncSync: (fd) => {
      snap('before inline fdatasync');
      fdatasyncSync(fd);
      holder.disk!.sync(fd);
      snap('after inline fdatasync');
    },
    writeSegment: (fd, buffers, position) => {
      snap('before segment write');
      let at = position;
      for (const b of buffers) {
        writeSync(fd, b, 0, b.length, at);
        at += b.length;
      }
    },
    unsafeFaults: faults,
  });
  holder.disk = new SimDisk(dir, seed);
  const remember = (r: AcceptorRecord, version: number) => {
    let m = written.versions.get(r.instanceId);
    if (m === undefined) written.versions.set(r.instanceId, (m = new Map()));
    m.set(version, r);
  };
  const inFlight = new Set<Promise<void>>();
  let nextId = 0;
  let version = 0;
  for (let op = 0; op < 36; op++) {
    // Now and then the writer waits for everything: the next write then starts a round alone.
    if (rand(4) === 0) await Promise.all(inFlight);
    const kind = rand(12);
    let p: Promise<void>;
    const putOne = () => {
      // A single put: small (as a promise) or large (an accept), sometimes rewriting an id.
      const id = nextId > 0 && rand(3) === 0 ? rand(nextId) : nextId++;
      if (written.batched.has(id)) return undefined;
      const v = ++version;
      const r = rec(id, v, 0, rand(2) === 0 ? 20 + rand(200) : 5000 + rand(60_000));
      remember(r, v);
      const sync = rand(5) !== 0;
      return store.put(0, r, { sync }).then(() => {
        if (sync) acked.set(id, Math.max(acked.get(id) ?? 0, v));
      });
    };
    if (kind < 2) {
      // A burst of single sync puts in one turn (concurrent acceptors' writes): those that come
      // while a round runs are written together as the next begins and share its fdatasync.
      const burst: Promise<void>[] = [];
      for (let k = 2 + rand(7); k > 0; k--) {
        const one = putOne();
        if (one !== undefined) burst.push(one);
      }
      p = Promise.all(burst).then(() => undefined);
    } else if (kind < 8) {
      const one = putOne();
      if (one === undefined) continue;
      p = one;
    } else if (kind < 11) {
      // A batch of fresh ids (never rewritten), small and large values.
      const v = ++version;
      const ids = Array.from({ length: 2 + rand(5) }, () => nextId++);
      const records = ids.map((id) => rec(id, v, v, rand(3) === 0 ? 5000 + rand(40_000) : 50));
      for (const r of records) remember(r, v);
      for (const id of ids) written.batched.add(id);
      written.batches.set(v, ids);
      const sync = rand(4) !== 0;
      p = store.putMany(0, records, { sync }).then(() => {
        if (sync) for (const id of ids) acked.set(id, v);
      });
    } else {
      const m = op + 1;
      p = store
        .setMeta(0, 'masterVariables', new TextEncoder().encode(`meta-${m}`), { sync: true })
        .then(() => {
          ackedMeta = Math.max(ackedMeta, m);
        });
    }
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
    if (inFlight.size >= 1 + rand(4)) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  snap('end');
  const stats = { ...store.syncStats };
  await store.close();
  return { snapshots, written, stats };
}

/** Opens every image and returns what it finds wrong, and what the opens repaired. */
async function check(snapshots: Snapshot[], written: Written) {
  const violations: string[] = [];
  const totals = { images: 0, replayedRecords: 0, tornTails: 0, droppedEntries: 0, acked: 0 };
  for (const s of snapshots) {
    let store: SqliteLogStore;
    try {
      store = SqliteLogStore.open(s.dir);
    } catch (e) {
      violations.push(`${s.step}: the open failed: ${(e as Error).message}`);
      continue;
    }
    totals.images++;
    totals.replayedRecords += store.recovery.replayedRecords;
    totals.tornTails += store.recovery.tornTails;
    totals.droppedEntries += store.recovery.droppedEntries;
    try {
      for (const [id, versions] of written.versions) {
        let r: AcceptorRecord | undefined;
        try {
          r = store.get(0, id);
        } catch (e) {
          violations.push(`${s.step}: record ${id} reads as ${(e as { code?: string }).code}`);
          continue;
        }
        const ackedVersion = s.acked.get(id);
        if (ackedVersion !== undefined) totals.acked++;
        if (r === undefined) {
          if (ackedVersion !== undefined)
            violations.push(`${s.step}: acknowledged record ${id} v${ackedVersion} is missing`);
          continue;
        }
        const v = r.promiseId - 1;
        const original = versions.get(v);
        if (
          original === undefined ||
          !eq(original.value, r.value) ||
          original.checksum !== r.checksum
        )
          violations.push(`${s.step}: record ${id} is not a version that was written`);
        else if (ackedVersion !== undefined && v < ackedVersion)
          violations.push(
            `${s.step}: record ${id} is v${v}, older than the acknowledged v${ackedVersion}`,
          );
      }
      for (const [batch, ids] of written.batches) {
        const present = ids.filter((id) => store.get(0, id)?.promiseId === batch + 1).length;
        if (present !== 0 && present !== ids.length)
          violations.push(`${s.step}: batch v${batch} has ${present} of ${ids.length} records`);
      }
      if (s.ackedMeta > 0) {
        const meta = new TextDecoder().decode(store.getMeta(0, 'masterVariables'));
        if (!(Number(meta.slice('meta-'.length)) >= s.ackedMeta))
          violations.push(`${s.step}: meta ${meta} is older than the acknowledged ${s.ackedMeta}`);
      }
      expect([...store.range(0, 0, 1e9)].length).toBeLessThanOrEqual(written.versions.size);
    } catch (e) {
      violations.push(`${s.step}: ${(e as Error).message}`);
    } finally {
      await store.close();
    }
    rmSync(s.dir, { recursive: true, force: true });
  }
  return { violations, totals };
}

const TIMEOUT_MS = 240_000;

it(
  'keeps every acknowledged write and damages nothing when the power fails at any step',
  async () => {
    const all = {
      images: 0,
      replayedRecords: 0,
      tornTails: 0,
      droppedEntries: 0,
      acked: 0,
      queuedSyncWrites: 0,
    };
    for (const seed of [0x5eed, 0xbeef]) {
      const { snapshots, written, stats } = await run(seed, {}, ['lose', 'prefix', 'holes']);
      const { violations, totals } = await check(snapshots, written);
      expect(violations).toEqual([]);
      for (const k of Object.keys(totals) as Array<keyof typeof totals>) all[k] += totals[k];
      all.queuedSyncWrites += stats.queuedSyncWrites;
    }
    // The same with syncInline: the rounds with one segment's fdatasync run it on the event loop.
    const inline = await run(0x5eed, {}, ['lose', 'prefix', 'holes'], true);
    const inlineCheck = await check(inline.snapshots, inline.written);
    expect(inlineCheck.violations).toEqual([]);
    expect(inline.stats.inlineFdatasyncs).toBeGreaterThanOrEqual(3); // 5 with this seed
    expect(inlineCheck.totals.acked).toBeGreaterThan(100);
    console.log('power loss:', all, 'syncInline:', inlineCheck.totals, inline.stats);
    // Every step of two runs, three ways each; the opens rebuilt index rows from entries the
    // WAL had not made durable, and cut torn tails.
    expect(all.images).toBeGreaterThan(200);
    expect(all.acked).toBeGreaterThan(1000);
    expect(all.replayedRecords).toBeGreaterThan(50);
    expect(all.tornTails).toBeGreaterThan(10);
    // Sync puts that came during a round were written together and shared the next fdatasync.
    expect(all.queuedSyncWrites).toBeGreaterThan(20);
  },
  TIMEOUT_MS,
);

it(
  'catches a writer that acknowledges before its fdatasync, one that makes the index durable first, and one that adds writes to the round under way (planted)',
  async () => {
    for (const faults of [
      { ackBeforeFdatasync: true },
      { indexFirst: true },
      { joinRoundUnderWay: true },
    ]) {
      const { snapshots, written } = await run(0x5eed, faults, ['lose']);
      const { violations } = await check(snapshots, written);
      expect(violations.length, JSON.stringify(faults)).toBeGreaterThan(0);
      console.log(
        `${JSON.stringify(faults)}: ${violations.length} violations, first: ${violations[0]}`,
      );
    }
  },
  TIMEOUT_MS,
);
