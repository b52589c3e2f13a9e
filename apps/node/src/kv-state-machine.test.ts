import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeOp, encodeOp, KvStateMachine, OP_DELETE, OP_PUT } from './kv-state-machine';

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
async function apply(kv: KvStateMachine, id: number, ops: Uint8Array[]): Promise<void> {
  for (const op of ops) kv.execute(op, { group: 0, instanceId: id, isMine: false });
  await flush();
}

const put = (key: string, value: string) => encodeOp({ op: OP_PUT, key, value: bytes(value) });
const del = (key: string) => encodeOp({ op: OP_DELETE, key, value: new Uint8Array(0) });

describe('KV operations', () => {
  it('round-trip, and anything else decodes as undefined', () => {
    expect(decodeOp(put('ключ', 'v'))).toMatchObject({ op: OP_PUT, key: 'ключ' });
    expect(decodeOp(new Uint8Array([9, 0, 0, 0, 0]))).toBeUndefined();
    expect(decodeOp(new Uint8Array([1, 0, 0, 0, 9, 65]))).toBeUndefined(); // key past the end
    expect(decodeOp(new Uint8Array([1, 0, 0, 0, 1, 0xff]))).toBeUndefined(); // not UTF-8
    expect(decodeOp(new Uint8Array([1]))).toBeUndefined();
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

  it('replay after a restart skips what the file already reflects (exactly once)', async () => {
    const dir = tempDir();
    const kv = new KvStateMachine({ dir, group: 0, onFatal: fatal });
    for (let i = 0; i < 5; i++) await apply(kv, i, [put(`k${i}`, `v${i}`)]);
    kv.close();
    const again = new KvStateMachine({ dir, group: 0, onFatal: fatal });
    // The node replays from the checkpoint instance id (-1: from the start of the log).
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
    expect(r).toEqual({ ok: false });
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
    kv.noteExecuted(1);
    expect(kv.status().appliedInstanceId).toBe(0);
    // Master leases and barriers at 1 … 6: no key written, the log moved on.
    kv.noteExecuted(7);
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
    kv.noteExecuted(9);
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
