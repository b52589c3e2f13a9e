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
    a.lockCheckpointState();
    expect(() => a.checkpoint(2000)).toThrow(/being sent/);
    b.loadCheckpointState(0, dir, files, 9);
    b.loadCheckpointState(0, dir, files, 9); // asked again after a crash: same result
    a.unlockCheckpointState();
    expect(text(b.get('k3'))).toBe('a3');
    expect(b.get('only-b')).toBeUndefined();
    expect(b.get('after')).toBeUndefined();
    expect(b.status()).toMatchObject({ appliedInstanceId: 9, checkpointInstanceId: 9 });
    await apply(b, 10, [put('after', 'x')]);
    expect(text(b.get('after'))).toBe('x');
    expect(() => b.loadCheckpointState(0, dir, files, 8)).toThrow(/expected 8/);
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
    // While a peer copies the checkpoint, the automatic one waits for the next instance.
    kv.lockCheckpointState();
    for (let i = 12; i < 16; i++) await apply(kv, i, [put(`k${i}`, `v${i}`)]);
    await new Promise((r) => setImmediate(r));
    expect(kv.getCheckpointInstanceId()).toBe(9);
    kv.unlockCheckpointState();
    await apply(kv, 16, [put('k16', 'v16')]);
    await new Promise((r) => setImmediate(r));
    expect(kv.getCheckpointInstanceId()).toBe(16);
    expect(errors).toEqual([]);
    kv.close();
  });
});
