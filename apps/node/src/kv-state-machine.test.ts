// Unit tests of KvStateMachine over a real SQLite file. One idea, kept in one file though it
// passes 600 lines (issue 21): one scenario per `it` of the state machine's promises.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { decodeWrite, encodeWrite, KvCommandError, OP_PUT, type KvWrite } from './kv-command';
import { KvStateMachine, prefixEnd, type KvResult, type WriteOutcome } from './kv-state-machine';
const dirs: string[] = [];
function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tspaxos-kv-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined) =>
  b === undefined ? undefined : new TextDecoder().decode(b);
const fatal = (e: Error) => {
  throw e;
};
const flush = () => new Promise<void>((r) => queueMicrotask(r));

/** Applies instance `id` carrying the given ops, as the paxos instance does (back to back). */
async function apply(kv: KvStateMachine, id: number, ops: Uint8Array[]): Promise<KvResult[]> {
  const results = ops.map((op) => kv.execute(op, { group: 0, instanceId: id, isMine: false }));
  await flush();
  return results;
}

/** The outcome of the one write of instance `id`. */
async function applyOne(kv: KvStateMachine, id: number, op: Uint8Array): Promise<WriteOutcome> {
  const [r] = await apply(kv, id, [op]);
  if (r === undefined || !r.ok || !('outcome' in r))
    throw new Error(`no outcome: ${JSON.stringify(r)}`);
  return r.outcome;
}

const WINDOW = { ms: 60_000, keys: 1000 };
const T0 = 1_700_000_000_000;

function write(action: 'put' | 'delete', key: string, value: string, extra: Partial<KvWrite>) {
  return encodeWrite({
    action,
    key,
    value: bytes(value),
    precondition: { kind: 'none' },
    proposedAtMs: T0,
    window: WINDOW,
    ...extra,
  });
}
const put = (key: string, value: string, extra: Partial<KvWrite> = {}) =>
  write('put', key, value, extra);
const del = (key: string, extra: Partial<KvWrite> = {}) => write('delete', key, '', extra);
const idem = (s: string) => ({ idempotencyKey: bytes(s) });

describe('KV commands', () => {
  it('round-trip every field', () => {
    const w: KvWrite = {
      action: 'put',
      key: 'ключ',
      value: bytes('v'),
      precondition: { kind: 'version', version: '12.1' },
      idempotencyKey: bytes('retry-me'),
      proposedAtMs: T0,
      window: { ms: 5000, keys: 7 },
    };
    const back = decodeWrite(encodeWrite(w));
    expect({ ...back, value: text(back.value), idempotencyKey: text(back.idempotencyKey) }).toEqual(
      {
        ...w,
        value: 'v',
        idempotencyKey: 'retry-me',
      },
    );
    expect(decodeWrite(del('k', { precondition: { kind: 'absent' } }))).toMatchObject({
      action: 'delete',
      precondition: { kind: 'absent' },
    });
    expect(decodeWrite(put('k', 'v')).idempotencyKey).toBeUndefined();
  });

  it('a write of before versions (no clock, no version) still decodes', () => {
    const legacy = new Uint8Array([OP_PUT, 0, 0, 0, 1, 0x6b, 0x76]); // put k = v
    expect(decodeWrite(legacy)).toMatchObject({
      action: 'put',
      key: 'k',
      precondition: { kind: 'none' },
    });
    expect(decodeWrite(legacy).proposedAtMs).toBeUndefined();
  });

  it('anything else is a KvCommandError that says what is wrong', () => {
    const good = put('k', 'v', idem('i'));
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array([9, 0, 0, 0, 0]), /unknown operation code 9/],
      [new Uint8Array([1, 0, 0, 0, 9, 65]), /key runs past the end/],
      [new Uint8Array([1, 0, 0, 0, 1, 0xff]), /not UTF-8/],
      [new Uint8Array([]), /unknown operation code none/],
      [good.subarray(0, 10), /shorter than the header/],
      [Uint8Array.from(good, (b, i) => (i === 1 ? 7 : b)), /unknown action 7/],
      [Uint8Array.from(good, (b, i) => (i === 2 ? 9 : b)), /unknown precondition 9/],
      [Uint8Array.from(good, (b, i) => (i === 4 ? 200 : b)), /idempotency key of 200 bytes/],
      [good.subarray(0, 23), /runs past the end/],
    ];
    for (const [bad, why] of cases) {
      expect(() => decodeWrite(bad)).toThrow(KvCommandError);
      expect(() => decodeWrite(bad)).toThrow(why);
    }
  });
});

describe('KvStateMachine', () => {
  it('applies a batch in one transaction and records the instance with it', async () => {
    const dir = tempDir();
    const kv = new KvStateMachine({ dir, group: 0, onFatal: fatal });
    await apply(kv, 0, [put('a', '1'), put('b', '2'), del('a')]);
    expect(text(kv.get('a'))).toBeUndefined();
    expect(text(kv.get('b'))).toBe('2');
    expect(kv.status()).toMatchObject({ appliedInstanceId: 0, counters: { appliedOps: 3 } });
    kv.close();
    const again = new KvStateMachine({ dir, group: 0, onFatal: fatal });
    expect(again.status()).toMatchObject({ appliedInstanceId: 0, counters: { appliedOps: 3 } });
    again.close();
  });

  it('holds its file exclusively while open: no other connection reads it, and a close frees it', async () => {
    const dir = tempDir();
    const kv = new KvStateMachine({ dir, group: 0, onFatal: fatal });
    await apply(kv, 0, [put('a', '1')]);
    expect(text(kv.get('a'))).toBe('1');
    expect(fs.existsSync(`${kv.file}-shm`)).toBe(false); // the WAL's index is in memory
    const other = new Database(kv.file, { timeout: 0 });
    try {
      expect(() => other.prepare('SELECT value FROM kv').all()).toThrow(/database is locked/);
    } finally {
      other.close();
    }
    kv.close();
    const after = new Database(kv.file, { readonly: true });
    expect(after.prepare('SELECT key FROM kv').all()).toEqual([{ key: 'a' }]);
    after.close();
  });

  it('replay after a restart skips what the file already reflects (exactly once)', async () => {
    const dir = tempDir();
    const kv = new KvStateMachine({ dir, group: 0, onFatal: fatal });
    for (let i = 0; i < 5; i++) await apply(kv, i, [put(`k${i}`, `v${i}`)]);
    kv.close();
    const again = new KvStateMachine({ dir, group: 0, onFatal: fatal });
    // Where the node's replay begins (the last instance in the file, checked again by paxos's
    // own machines). A replay from the checkpoint (-1 here) is skipped the same way.
    expect(again.getAppliedInstanceId()).toBe(4);
    for (let i = 0; i < 7; i++) await apply(again, i, [put(`k${i}`, `v${i}`)]);
    expect(again.status().counters).toMatchObject({ appliedOps: 7, skippedInstances: 5 });
    again.close();
  });

  it('planted bug: re-applying reflected instances is visible in appliedOps', async () => {
    const dir = tempDir();
    const kv = new KvStateMachine({ dir, group: 0, onFatal: fatal });
    for (let i = 0; i < 5; i++) await apply(kv, i, [put(`k${i}`, `v${i}`)]);
    kv.close();
    const buggy = new KvStateMachine({
      dir,
      group: 0,
      onFatal: fatal,
      unsafeIgnoreAppliedInstance: true,
    });
    for (let i = 0; i < 7; i++) await apply(buggy, i, [put(`k${i}`, `v${i}`)]);
    expect(buggy.status().counters.appliedOps).toBe(12); // the check above would fail on this
    buggy.close();
  });

  it('a value that is not an operation is a counted no-op on every node alike', async () => {
    const kv = new KvStateMachine({ dir: tempDir(), group: 0, onFatal: fatal });
    const r = kv.execute(new Uint8Array([7, 7]), { group: 0, instanceId: 0, isMine: false });
    await flush();
    expect(r).toEqual({
      ok: false,
      error: 'E_BAD_COMMAND',
      message: expect.stringMatching(/unknown operation code 7/),
    });
    expect(kv.status()).toMatchObject({
      appliedInstanceId: 0,
      counters: { badOps: 1, appliedOps: 0 },
    });
    kv.close();
  });

  it('checkpoint, then load it into another node idempotently, replacing its state', async () => {
    const a = new KvStateMachine({ dir: tempDir(), group: 0, onFatal: fatal });
    for (let i = 0; i < 10; i++) await apply(a, i, [put(`k${i}`, `a${i}`)]);
    expect(a.checkpoint(1000)).toBe(9);
    await apply(a, 10, [put('after', 'x')]); // not in the checkpoint
    expect(a.getCheckpointInstanceId()).toBe(9);
    const { dir, files } = a.getCheckpointState();
    expect(files).toEqual(['kv.sqlite']);

    const b = new KvStateMachine({ dir: tempDir(), group: 0, onFatal: fatal });
    await apply(b, 0, [put('only-b', 'y')]);
    // A peer copies it: the lock first brings the checkpoint up to what is applied (10).
    a.lockCheckpointState();
    expect(a.getCheckpointInstanceId()).toBe(10);
    expect(a.status().counters).toMatchObject({ checkpoints: 2, checkpointsForPeers: 1 });
    expect(() => a.checkpoint(2000)).toThrow(/being sent/);
    b.loadCheckpointState(0, dir, files, 10);
    b.loadCheckpointState(0, dir, files, 10); // asked again after a crash: same result
    a.unlockCheckpointState();
    expect(text(b.get('k3'))).toBe('a3');
    expect(b.get('only-b')).toBeUndefined();
    expect(text(b.get('after'))).toBe('x');
    expect(b.status()).toMatchObject({ appliedInstanceId: 10, checkpointInstanceId: 10 });
    await apply(b, 11, [put('later', 'z')]);
    expect(text(b.get('later'))).toBe('z');
    expect(() => b.loadCheckpointState(0, dir, files, 9)).toThrow(/expected 9/);
    a.close();
    b.close();
  });

  it('starts from its checkpoint when the live file is gone', async () => {
    const dir = tempDir();
    const kv = new KvStateMachine({ dir, group: 0, onFatal: fatal });
    for (let i = 0; i < 3; i++) await apply(kv, i, [put(`k${i}`, `v${i}`)]);
    kv.checkpoint(0);
    kv.close();
    fs.rmSync(kv.file);
    const again = new KvStateMachine({ dir, group: 0, onFatal: fatal });
    expect(again.status().appliedInstanceId).toBe(2);
    expect(text(again.get('k2'))).toBe('v2');
    again.close();
  });

  it('an OS crash rolled the live file back below its checkpoint: it starts from the checkpoint', async () => {
    // The live file is committed with synchronous=NORMAL, the checkpoint fsynced: after a power
    // cut the live file can hold instance 4 while the checkpoint holds 9. The node replays the
    // log from 10 on (getCheckpointInstanceId), so 5 … 9 must come from the checkpoint.
    const dir = tempDir();
    const kv = new KvStateMachine({ dir, group: 0, onFatal: fatal });
    for (let i = 0; i < 5; i++) await apply(kv, i, [put(`k${i}`, `v${i}`)]);
    kv.close(); // folds the WAL into the file
    const older = path.join(dir, 'older.sqlite');
    fs.copyFileSync(kv.file, older);
    const newer = new KvStateMachine({ dir, group: 0, onFatal: fatal });
    for (let i = 5; i < 10; i++) await apply(newer, i, [put(`k${i}`, `v${i}`)]);
    expect(newer.checkpoint(0)).toBe(9);
    newer.close();
    fs.copyFileSync(older, newer.file); // what the crash left

    const again = new KvStateMachine({ dir, group: 0, onFatal: fatal });
    const from = again.getCheckpointInstanceId() + 1;
    // The replay the node does: from the checkpoint on (nothing above it in this log).
    for (let i = from; i < 10; i++) await apply(again, i, [put(`k${i}`, `v${i}`)]);
    for (let i = 0; i < 10; i++) expect(text(again.get(`k${i}`)), `k${i}`).toBe(`v${i}`);
    expect(again.status()).toMatchObject({
      appliedInstanceId: 9,
      counters: { checkpointReinstalls: 1 },
    });
    again.close();
  });

  it('instances without a KV operation count as applied, toward checkpoints too', async () => {
    const errors: Error[] = [];
    const kv = new KvStateMachine({
      dir: tempDir(),
      group: 0,
      onFatal: fatal,
      checkpointEveryInstances: 5,
      onError: (e) => errors.push(e),
    });
    await apply(kv, 0, [put('a', '1')]);
    kv.executeOther({ group: 0, instanceId: 0, isMine: false });
    expect(kv.status().appliedInstanceId).toBe(0);
    // Master leases and barriers at 1 … 6: no key written, the log moved on.
    kv.executeOther({ group: 0, instanceId: 6, isMine: false });
    expect(kv.status().appliedInstanceId).toBe(6);
    await new Promise((r) => setImmediate(r));
    expect(kv.getCheckpointInstanceId()).toBe(6);
    expect(kv.status().counters.automaticCheckpoints).toBe(1);
    // The checkpoint file says so itself (a peer installing it checks that).
    const { dir, files } = kv.getCheckpointState();
    const b = new KvStateMachine({ dir: tempDir(), group: 0, onFatal: fatal });
    b.loadCheckpointState(0, dir, files, 6);
    expect(text(b.get('a'))).toBe('1');
    // A peer asks while the log moved on again: the lock writes the checkpoint at 8 first.
    kv.executeOther({ group: 0, instanceId: 8, isMine: false });
    kv.lockCheckpointState();
    expect(kv.getCheckpointInstanceId()).toBe(8);
    kv.unlockCheckpointState();
    expect(errors).toEqual([]);
    kv.close();
    b.close();
  });

  it('writes a checkpoint on its own every N instances, out of the apply path', async () => {
    const errors: Error[] = [];
    const kv = new KvStateMachine({
      dir: tempDir(),
      group: 0,
      onFatal: fatal,
      checkpointEveryInstances: 5,
      onError: (e) => errors.push(e),
    });
    for (let i = 0; i < 12; i++) {
      await apply(kv, i, [put(`k${i}`, `v${i}`)]);
      await new Promise((r) => setImmediate(r));
    }
    expect(kv.getCheckpointInstanceId()).toBe(9); // at 4 (0…4 applied) and at 9
    expect(kv.status().counters).toMatchObject({ checkpoints: 2, automaticCheckpoints: 2 });
    // A peer copies the checkpoint (brought up to 11 first); meanwhile the automatic one, due at
    // 16, waits for the next instance.
    kv.lockCheckpointState();
    expect(kv.getCheckpointInstanceId()).toBe(11);
    for (let i = 12; i < 17; i++) await apply(kv, i, [put(`k${i}`, `v${i}`)]);
    await new Promise((r) => setImmediate(r));
    expect(kv.getCheckpointInstanceId()).toBe(11);
    kv.unlockCheckpointState();
    await apply(kv, 17, [put('k17', 'v17')]);
    await new Promise((r) => setImmediate(r));
    expect(kv.getCheckpointInstanceId()).toBe(17);
    expect(errors).toEqual([]);
    kv.close();
  });
});

describe('copiesValues: nothing keeps a view of an executed value (issue 22)', () => {
  it('a value overwritten right after execute(), before the commit, is stored as it was', async () => {
    const kv = new KvStateMachine({ dir: tempDir(), group: 0, onFatal: fatal });
    expect(kv.copiesValues).toBe(true);
    // As the paxos learner releases a catch-up's receive buffer: after the instance's execute(),
    // while its transaction still waits for the commit's microtask.
    const ops = [put('a', 'x'.repeat(70_000)), put('b', 'y'.repeat(100))];
    const results = ops.map((op, i) => kv.execute(op, { group: 0, instanceId: i, isMine: true }));
    for (const op of ops) op.fill(0xa5);
    await flush();
    expect(text(kv.get('a'))).toBe('x'.repeat(70_000));
    expect(text(kv.get('b'))).toBe('y'.repeat(100));
    expect(JSON.stringify(results)).not.toMatch(/x{8}|y{8}/); // the results hold no value bytes
    kv.close();
  });
});

describe('the WAL synced on the thread pool (issue 22: no 4 MB fsync on the event loop)', () => {
  /** A sync that answers at once and records which file it was given. */
  function recordingSync() {
    const files: string[] = [];
    const sync = (fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => {
      files.push(fs.readlinkSync(`/proc/self/fd/${fd}`));
      callback(null);
    };
    return { files, sync };
  }

  it('every 32 commits of small writes, and sooner for large values', async () => {
    const { files, sync } = recordingSync();
    const kv = new KvStateMachine({ dir: tempDir(), group: 0, onFatal: fatal, walSync: sync });
    for (let i = 0; i < 100; i++) await apply(kv, i, [put(`k${i}`, 'x'.repeat(100))]);
    // After commits 32, 64 and 96; each of the file SQLite writes its commits to.
    expect(files).toHaveLength(3);
    expect(new Set(files)).toEqual(new Set([`${kv.file}-wal`]));
    expect(kv.status().walSyncs).toBe(3);
    // 64 KiB values: once 256 KiB of commands went in (the 4th), not after 32 commits.
    for (let i = 100; i < 104; i++) await apply(kv, i, [put(`k${i}`, 'y'.repeat(65_536))]);
    expect(kv.status().walSyncs).toBe(4);
    kv.close();
  });

  it('none with walSyncEveryCommits 0 (before: the checkpoint fsynced the whole WAL)', async () => {
    const { files, sync } = recordingSync();
    const kv = new KvStateMachine({
      dir: tempDir(),
      group: 0,
      onFatal: fatal,
      walSync: sync,
      walSyncEveryCommits: 0,
    });
    for (let i = 0; i < 100; i++) await apply(kv, i, [put(`k${i}`, 'x'.repeat(100))]);
    expect(files).toEqual([]);
    expect(kv.status().walSyncs).toBe(0);
    kv.close();
  });

  it('one sync at a time; a failed one is reported, and a close waits for it to close the file', async () => {
    const pending: { fd: number; callback: (err: NodeJS.ErrnoException | null) => void }[] = [];
    const errors: Error[] = [];
    const kv = new KvStateMachine({
      dir: tempDir(),
      group: 0,
      onFatal: fatal,
      onError: (e) => errors.push(e),
      walSync: (fd, callback) => pending.push({ fd, callback }),
    });
    for (let i = 0; i < 100; i++) await apply(kv, i, [put(`k${i}`, 'v')]);
    expect(pending).toHaveLength(1); // the one in flight since commit 32 holds the others back
    const failed = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    pending.shift()!.callback(failed);
    expect(errors).toEqual([failed]);
    expect(kv.status().walSyncs).toBe(0);
    for (let i = 100; i < 132; i++) await apply(kv, i, [put(`k${i}`, 'v')]);
    expect(pending).toHaveLength(1);
    const { fd, callback } = pending.shift()!;
    kv.close();
    expect(() => fs.fstatSync(fd)).not.toThrow(); // not closed under the sync in flight
    callback(null);
    expect(() => fs.fstatSync(fd)).toThrow(/EBADF/); // closed by its callback
    expect(kv.status().walSyncs).toBe(1);
  });
});

describe('versions and preconditions (checked when the write applies)', () => {
  it('a version is the instance of the last write; a second write in one instance gets .1', async () => {
    const kv = new KvStateMachine({ dir: tempDir(), group: 0, onFatal: fatal });
    expect(await applyOne(kv, 3, put('a', '1'))).toEqual({
      status: 'applied',
      instanceId: 3,
      version: '3',
      replayed: false,
    });
    const batch = await apply(kv, 4, [put('a', '2'), put('b', 'x'), put('a', '3')]);
    expect(batch.map((r) => 'outcome' in r && r.outcome.version)).toEqual(['4', '4', '4.1']);
    expect(kv.read('a')).toMatchObject({ version: '4.1' });
    // If-Match names one write: the first write of instance 4 no longer holds.
    const stale = await applyOne(
      kv,
      5,
      put('a', 'lost', { precondition: { kind: 'version', version: '4' } }),
    );
    expect(stale).toMatchObject({ status: 'precondition_failed', version: '4.1' });
    expect(text(kv.get('a'))).toBe('3');
    expect(
      await applyOne(kv, 6, put('a', '4', { precondition: { kind: 'version', version: '4.1' } })),
    ).toMatchObject({ status: 'applied', version: '6' });
    expect(
      await applyOne(kv, 7, put('a', 'no', { precondition: { kind: 'absent' } })),
    ).toMatchObject({
      status: 'precondition_failed',
      version: '6',
    });
    expect(await applyOne(kv, 8, del('a', { precondition: { kind: 'exists' } }))).toMatchObject({
      status: 'applied',
      version: '8',
    });
    expect(await applyOne(kv, 9, del('a', { precondition: { kind: 'exists' } }))).toMatchObject({
      status: 'precondition_failed',
      version: null,
    });
    expect(
      await applyOne(kv, 10, put('a', 'new', { precondition: { kind: 'absent' } })),
    ).toMatchObject({ status: 'applied', version: '10' });
    expect(kv.status().counters).toMatchObject({ appliedOps: 7, preconditionFailures: 3 });
    kv.close();
  });

  it('a file from before versions: its rows and the old writes still in a log get version 0', async () => {
    const dir = tempDir();
    const kv = new KvStateMachine({ dir, group: 0, onFatal: fatal });
    kv.close();
    const db = new Database(kv.file);
    db.exec(
      'DROP TABLE kv; CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID',
    );
    db.prepare('INSERT INTO kv VALUES (?, ?)').run('old', Buffer.from('o'));
    db.close();
    const again = new KvStateMachine({ dir, group: 0, onFatal: fatal });
    expect(again.read('old')).toMatchObject({ version: '0' });
    const legacy = new Uint8Array([OP_PUT, 0, 0, 0, 1, 0x6b, 0x76]); // put k = v, no clock
    expect(await applyOne(again, 0, legacy)).toMatchObject({ status: 'applied', version: '0' });
    again.close();
  });
});

describe('idempotency keys', () => {
  it('a retry returns the first outcome and applies nothing, even after other writes', async () => {
    const kv = new KvStateMachine({ dir: tempDir(), group: 0, onFatal: fatal });
    const first = await applyOne(kv, 1, put('x', '1', idem('K')));
    await applyOne(kv, 2, put('x', '2'));
    const retry = await applyOne(kv, 3, put('x', '1', idem('K')));
    expect(retry).toEqual({ ...first, replayed: true });
    expect(text(kv.get('x'))).toBe('2'); // the retry did not write '1' again
    expect(kv.read('x')?.version).toBe('2');
    expect(kv.status()).toMatchObject({
      idempotencyKeys: 1,
      counters: { appliedOps: 2, idempotentReplays: 1 },
    });
    kv.close();
  });

  it('the same key with another request is refused, applied nowhere and not recorded', async () => {
    const kv = new KvStateMachine({ dir: tempDir(), group: 0, onFatal: fatal });
    await applyOne(kv, 1, put('x', '1', idem('K')));
    const others = [put('x', 'other', idem('K')), put('y', '1', idem('K')), del('x', idem('K'))];
    for (const [i, other] of others.entries())
      expect(await applyOne(kv, 2 + i, other)).toEqual({
        status: 'idempotency_mismatch',
        instanceId: 1,
        version: null,
        replayed: false,
      });
    expect(kv.get('y')).toBeUndefined();
    expect(text(kv.get('x'))).toBe('1');
    expect(kv.status()).toMatchObject({
      idempotencyKeys: 1,
      counters: { appliedOps: 1, idempotencyMismatches: 3 },
    });
    kv.close();
  });

  it('a failed precondition is the first outcome too: its retry fails alike', async () => {
    const kv = new KvStateMachine({ dir: tempDir(), group: 0, onFatal: fatal });
    const cas = put('x', 'new', { ...idem('K'), precondition: { kind: 'version', version: '1' } });
    expect(await applyOne(kv, 0, cas)).toMatchObject({
      status: 'precondition_failed',
      version: null,
    });
    await applyOne(kv, 1, put('x', 'now at 1'));
    // Retried after the key reached version 1: the answer is still the first one, nothing applied.
    expect(await applyOne(kv, 2, cas)).toEqual({
      status: 'precondition_failed',
      instanceId: 0,
      version: null,
      replayed: true,
    });
    expect(text(kv.get('x'))).toBe('now at 1');
    kv.close();
  });

  it('the window by count drops the oldest keys: a retry after that applies again', async () => {
    const kv = new KvStateMachine({ dir: tempDir(), group: 0, onFatal: fatal });
    const window = { ms: 60_000, keys: 3 };
    for (let i = 1; i <= 4; i++)
      await applyOne(kv, i, put(`k${i}`, 'v', { ...idem(`K${i}`), window }));
    expect(kv.status()).toMatchObject({
      idempotencyKeys: 3,
      counters: { idempotencyKeysExpired: 1 },
    });
    expect(await applyOne(kv, 5, put('k2', 'v', { ...idem('K2'), window }))).toMatchObject({
      replayed: true,
      instanceId: 2,
    });
    // K1 was the oldest: its retry is a new write (the documented limit of the window).
    expect(await applyOne(kv, 6, put('k1', 'v', { ...idem('K1'), window }))).toMatchObject({
      status: 'applied',
      replayed: false,
      instanceId: 6,
    });
    expect(kv.status().idempotencyKeys).toBe(3);
    kv.close();
  });

  it('the window by time runs on the clocks the writes carry, never moving back', async () => {
    const kv = new KvStateMachine({ dir: tempDir(), group: 0, onFatal: fatal });
    const window = { ms: 500, keys: 1000 };
    const at = (ms: number, key: string, ik: string) =>
      put(key, 'v', { ...idem(ik), window, proposedAtMs: T0 + ms });
    await applyOne(kv, 1, at(0, 'a', 'A'));
    await applyOne(kv, 2, at(400, 'b', 'B'));
    // A proposer whose clock is behind does not move the state machine's clock back.
    await applyOne(kv, 3, at(-10_000, 'c', 'C'));
    expect(await applyOne(kv, 4, at(450, 'a', 'A'))).toMatchObject({ replayed: true });
    expect(kv.status().idempotencyKeys).toBe(3);
    await applyOne(kv, 5, at(700, 'd', 'D')); // A (at 0) is now older than 700 − 500
    expect(kv.status()).toMatchObject({
      idempotencyKeys: 3,
      counters: { idempotencyKeysExpired: 1 },
    });
    expect(await applyOne(kv, 6, at(702, 'a', 'A'))).toMatchObject({
      replayed: false,
      instanceId: 6,
    });
    // C was recorded at the state machine's clock then (400), not its own: still here.
    expect(await applyOne(kv, 7, at(703, 'c', 'C'))).toMatchObject({
      replayed: true,
      instanceId: 3,
    });
    kv.close();
  });

  it('keys expire on time across writes without keys and a restart (the DELETE is skipped only when none can)', async () => {
    const dir = tempDir();
    const window = { ms: 500, keys: 1000 };
    const at = (ms: number, key: string, extra: Partial<KvWrite> = {}) =>
      put(key, 'v', { window, proposedAtMs: T0 + ms, ...extra });
    const a = new KvStateMachine({ dir, group: 0, onFatal: fatal });
    await applyOne(a, 1, at(0, 'a', idem('A')));
    await applyOne(a, 2, at(400, 'b', idem('B')));
    a.close();
    // The oldest key's time is read back at start: without it the restarted node kept A forever.
    const kv = new KvStateMachine({ dir, group: 0, onFatal: fatal });
    for (let i = 0; i < 5; i++) await applyOne(kv, 3 + i, at(100 * i, 'x'));
    expect(kv.status()).toMatchObject({
      idempotencyKeys: 2,
      counters: { idempotencyKeysExpired: 0 },
    });
    await applyOne(kv, 8, at(700, 'x')); // A (0) is older than 700 − 500; B (400) is not
    expect(kv.status()).toMatchObject({
      idempotencyKeys: 1,
      counters: { idempotencyKeysExpired: 1 },
    });
    await applyOne(kv, 9, at(899, 'x')); // B is not older than 399
    expect(kv.status().counters.idempotencyKeysExpired).toBe(1);
    await applyOne(kv, 10, at(901, 'x')); // B (400) is older than 401
    expect(kv.status()).toMatchObject({
      idempotencyKeys: 0,
      counters: { idempotencyKeysExpired: 2 },
    });
    // A key recorded after all others expired expires in its turn.
    await applyOne(kv, 11, at(1000, 'c', idem('C')));
    await applyOne(kv, 12, at(1501, 'x'));
    expect(kv.status()).toMatchObject({
      idempotencyKeys: 0,
      counters: { idempotencyKeysExpired: 3 },
    });
    expect(await applyOne(kv, 13, at(1502, 'a', idem('A')))).toMatchObject({
      replayed: false,
      instanceId: 13,
    });
    kv.close();
  });

  it('two replicas given the same writes decide the same, whatever their own clocks', async () => {
    const writes = [
      put('a', '1', { ...idem('A'), proposedAtMs: T0 }),
      put('a', '2', { ...idem('B'), proposedAtMs: T0 + 70_000, window: { ms: 60_000, keys: 2 } }),
      put('a', '1', { ...idem('A'), proposedAtMs: T0 + 70_001 }),
      put('b', 'x', { ...idem('B'), proposedAtMs: T0 + 1 }),
    ];
    const run = async () => {
      const kv = new KvStateMachine({
        dir: tempDir(),
        group: 0,
        onFatal: fatal,
        nowMs: () => Math.random(),
      });
      const outcomes = [];
      for (let i = 0; i < writes.length; i++) outcomes.push(await applyOne(kv, i, writes[i]!));
      const state = [kv.read('a'), kv.read('b'), kv.status().idempotencyKeys];
      kv.close();
      return { outcomes, state };
    };
    const [one, two] = [await run(), await run()];
    expect(one).toEqual(two);
    expect(one.outcomes.map((o) => `${o.status}${o.replayed ? ' replayed' : ''}`)).toEqual([
      'applied',
      'applied',
      'applied', // A expired by time at the second write (70 s later, window 60 s)
      'idempotency_mismatch',
    ]);
  });

  it('keys survive a restart and travel in checkpoints: a node that installs one knows them', async () => {
    const dir = tempDir();
    const a = new KvStateMachine({ dir, group: 0, onFatal: fatal });
    const first = await applyOne(a, 0, put('x', '1', idem('K')));
    a.close();
    const again = new KvStateMachine({ dir, group: 0, onFatal: fatal });
    expect(await applyOne(again, 1, put('x', '1', idem('K')))).toEqual({
      ...first,
      replayed: true,
    });
    again.checkpoint(0);
    const state = again.getCheckpointState();
    const b = new KvStateMachine({ dir: tempDir(), group: 0, onFatal: fatal });
    b.loadCheckpointState(0, state.dir, state.files, 1);
    expect(b.status().idempotencyKeys).toBe(1);
    expect(await applyOne(b, 2, put('x', '1', idem('K')))).toEqual({ ...first, replayed: true });
    // The replicated clock and the count window's sequence travel too.
    await applyOne(b, 3, put('y', '1', { ...idem('L'), window: { ms: 60_000, keys: 1 } }));
    expect(b.status()).toMatchObject({ idempotencyKeys: 1, counters: { appliedOps: 2 } });
    expect(await applyOne(b, 4, put('x', '1', idem('K')))).toMatchObject({ replayed: false });
    again.close();
    b.close();
  });

  it('a corrupt record in the file is a clear error, never a replay', async () => {
    const dir = tempDir();
    const kv = new KvStateMachine({ dir, group: 0, onFatal: fatal });
    await applyOne(kv, 0, put('x', '1', idem('K')));
    kv.close();
    const db = new Database(kv.file);
    db.prepare('UPDATE idempotency SET status = 9').run();
    db.close();
    const again = new KvStateMachine({ dir, group: 0, onFatal: fatal });
    // Instance 1: a write, then the retry that meets the broken record.
    const instance1 = [put('y', 'in the same instance'), put('x', '1', idem('K'))];
    await expect(apply(again, 1, instance1)).rejects.toThrow(
      /kv\.sqlite: an idempotency record with status 9 at instance 0/,
    );
    await flush();
    // Nothing of instance 1 stays: paxos retries the whole instance (the group does not advance).
    expect(again.get('y')).toBeUndefined();
    expect(again.status()).toMatchObject({
      appliedInstanceId: 0,
      counters: { appliedOps: 1, idempotentReplays: 0 },
    });
    // The disk repaired, the retry of instance 1 applies it whole, once.
    again.close();
    const fix = new Database(kv.file);
    fix.prepare('UPDATE idempotency SET status = 0').run();
    fix.close();
    const repaired = new KvStateMachine({ dir, group: 0, onFatal: fatal });
    const results = await apply(repaired, 1, instance1);
    expect(results.map((r) => 'outcome' in r && r.outcome.replayed)).toEqual([false, true]);
    expect(repaired.status()).toMatchObject({
      appliedInstanceId: 1,
      counters: { appliedOps: 2, idempotentReplays: 1 },
    });
    repaired.close();
  });

  it('planted bug: a state machine that ignores the key applies every retry again', async () => {
    const kv = new KvStateMachine({
      dir: tempDir(),
      group: 0,
      onFatal: fatal,
      unsafeIgnoreIdempotencyKey: true,
    });
    await applyOne(kv, 0, put('x', '1', idem('K')));
    const retry = await applyOne(kv, 1, put('x', '1', idem('K')));
    // What the replay test above rules out: a second application, at a new version.
    expect(retry).toMatchObject({ replayed: false, version: '1' });
    expect(kv.status().counters).toMatchObject({ appliedOps: 2, idempotentReplays: 0 });
    kv.close();
  });
});

describe('listing', () => {
  it('entries by prefix and after, in UTF-8 byte order', async () => {
    const kv = new KvStateMachine({ dir: tempDir(), group: 0, onFatal: fatal });
    const keys = ['a', 'ab', 'ab/c', 'abd', 'b', 'a\u{10FFFF}', '\u{E000}', '\u{1F600}'];
    await apply(
      kv,
      0,
      keys.map((k) => put(k, k)),
    );
    const list = (prefix: string, after?: string) =>
      [...kv.entries(prefix, after)].map((e) => e.key);
    expect(list('ab')).toEqual(['ab', 'ab/c', 'abd']);
    expect(list('ab', 'ab')).toEqual(['ab/c', 'abd']);
    expect(list('ab', 'a')).toEqual(['ab', 'ab/c', 'abd']);
    expect(list('a')).toEqual(['a', 'ab', 'ab/c', 'abd', 'a\u{10FFFF}']);
    expect(list('')).toEqual([
      'a',
      'ab',
      'ab/c',
      'abd',
      'a\u{10FFFF}',
      'b',
      '\u{E000}',
      '\u{1F600}',
    ]);
    expect(list('', '\u{E000}')).toEqual(['\u{1F600}']);
    expect(list('zz')).toEqual([]);
    expect([...kv.entries('b', undefined)][0]).toMatchObject({ key: 'b', version: '0' });
    kv.close();
  });

  it('prefixEnd: the least string above a prefix', () => {
    expect(prefixEnd('ab')).toBe('ac');
    expect(prefixEnd('')).toBeUndefined();
    expect(prefixEnd('a\u{10FFFF}')).toBe('b');
    expect(prefixEnd('\u{10FFFF}')).toBeUndefined();
    expect(prefixEnd('\u{D7FF}')).toBe('\u{E000}');
    expect(prefixEnd('a\u{FFFF}')).toBe('a\u{10000}');
  });
});
