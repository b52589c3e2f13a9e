import { crc32, KNOWN_CRC_MIN_BYTES, knownCrc } from '@tspaxos/crc-wasm';
import { describe, expect, it } from 'vitest';
import { Committer } from './committer';
import { InvariantError } from '@tspaxos/core';
import { PaxosError } from './errors';
import { defaultPaxosOptions, type PaxosOptions } from './options';
import {
  hasIdentity,
  packValue,
  SINGLE_VALUE_OVERHEAD_BYTES,
  unpackValue,
  valueIdentity,
} from './value';

const bytes = (s: string) => new TextEncoder().encode(s);

/** A committer of node 1 in its incarnation 5. */
function committer(options: PaxosOptions): Committer {
  const c = new Committer(options, 1);
  c.setIncarnation(5);
  return c;
}

describe('Committer', () => {
  it('proposes single values one per instance and resolves with the result', async () => {
    const c = committer(defaultPaxosOptions());
    const p = c.add(10, bytes('a'), false, 0, 1000);
    c.add(10, bytes('b'), false, 0, 1000).catch(() => {});
    const flight = c.take(7)!;
    const identity = { nodeId: 1, incarnation: 5, sequence: 0 };
    expect(flight.value).toEqual(packValue(10, bytes('a'), identity));
    expect(c.take(8)).toBeUndefined(); // one in flight at a time
    c.committed(['result-a']);
    await expect(p).resolves.toEqual({ instanceId: 7, result: 'result-a', identity });
  });

  it('packs waiting batch values into one instance, within the batch limits', async () => {
    const c = committer({ ...defaultPaxosOptions(), batchMaxValues: 3 });
    const ps = ['a', 'b', 'c', 'd'].map((s) => c.add(10, bytes(s), true, 0, 1000));
    const flight = c.take(1)!;
    expect(unpackValue(flight.value).map((v) => new TextDecoder().decode(v.value))).toEqual([
      'a',
      'b',
      'c',
    ]);
    c.committed([1, 2, 3]);
    await expect(ps[2]).resolves.toEqual({
      instanceId: 1,
      result: 3,
      batchIndex: 2,
      identity: { nodeId: 1, incarnation: 5, sequence: 0 },
    });
    expect(c.queueLength).toBe(1);
  });

  it('remembers the CRC of a large packed value (one pass serves every layer), not of a small one', () => {
    const c = committer(defaultPaxosOptions());
    const large = new Uint8Array(100 * 1024).map((_, i) => i * 7);
    for (const [value, batch] of [
      [large, false],
      [large, true],
      [bytes('small'), false],
    ] as const) {
      void c.add(10, value, batch, 0, 1000);
      const flight = c.take(1)!;
      const remembered = knownCrc(flight.value);
      if (flight.value.length >= KNOWN_CRC_MIN_BYTES) expect(remembered).toBe(crc32(flight.value));
      else expect(remembered).toBeUndefined();
      c.committed([undefined]);
    }
    expect(c.counters.committed).toBe(3);
  });

  it('packs a new identity into every value it takes, a retried one included; equal bytes differ', () => {
    const c = committer(defaultPaxosOptions());
    void c.add(10, bytes('same'), false, 0, 1000);
    const first = c.take(1)!;
    c.conflicted();
    const retry = c.take(2)!;
    expect(valueIdentity(first.value)).toEqual({ nodeId: 1, incarnation: 5, sequence: 0 });
    expect(valueIdentity(retry.value)).toEqual({ nodeId: 1, incarnation: 5, sequence: 1 });
    expect(hasIdentity(retry.value, first.identity)).toBe(false);
    expect(hasIdentity(retry.value, retry.identity)).toBe(true);
    // The user bytes are what the state machine gets, identity aside.
    expect(unpackValue(retry.value)).toEqual([{ smId: 10, value: bytes('same') }]);
    // A new incarnation (a restart) starts its sequence again under another number.
    c.committed([undefined]);
    c.setIncarnation(6);
    void c.add(10, bytes('same'), true, 0, 1000);
    expect(c.take(3)!.identity).toEqual({ nodeId: 1, incarnation: 6, sequence: 0 });
  });

  it('puts a value that lost its instance back at the head, to retry', () => {
    const c = committer(defaultPaxosOptions());
    void c.add(10, bytes('a'), false, 0, 1000);
    c.take(1);
    c.conflicted();
    expect(c.take(2)!.instanceId).toBe(2);
    expect(c.counters.conflicts).toBe(1);
  });

  it('times out waiting and in-flight values with E_TIMEOUT', async () => {
    const c = committer(defaultPaxosOptions());
    const a = c.add(10, bytes('a'), false, 0, 100);
    const b = c.add(10, bytes('b'), false, 0, 500);
    c.take(1);
    expect(c.nextDeadline()).toBe(100);
    expect(c.expire(100)).toBe(true); // the in-flight one was abandoned
    await expect(a).rejects.toMatchObject({ code: 'E_TIMEOUT' });
    expect(c.expire(499)).toBe(false);
    c.expire(500);
    await expect(b).rejects.toBeInstanceOf(PaxosError);
  });

  it('bounds the queue by count and bytes', async () => {
    const c = committer({
      ...defaultPaxosOptions(),
      committerQueueMaxProposals: 2,
      committerQueueMaxBytes: 10,
    });
    void c.add(10, bytes('12345'), false, 0, 1000);
    await expect(c.add(10, bytes('123456'), false, 0, 1000)).rejects.toMatchObject({
      code: 'E_QUEUE_FULL',
    });
    void c.add(10, bytes('1'), false, 0, 1000);
    await expect(c.add(10, bytes('1'), false, 0, 1000)).rejects.toMatchObject({
      code: 'E_QUEUE_FULL',
    });
    expect(c.counters.rejectedQueueFull).toBe(2);
  });

  it('rejects everything on stop', async () => {
    const c = committer(defaultPaxosOptions());
    const a = c.add(10, bytes('a'), false, 0, 1000);
    const b = c.add(10, bytes('b'), false, 0, 1000);
    c.take(1);
    c.rejectAll(new PaxosError('E_STOPPED', 'stopping'));
    await expect(a).rejects.toMatchObject({ code: 'E_STOPPED' });
    await expect(b).rejects.toMatchObject({ code: 'E_STOPPED' });
  });

  it('trips "every entry of a chosen value has a result" when a batch is settled with too few', async () => {
    const c = committer(defaultPaxosOptions());
    const ps = ['a', 'b'].map((s) => c.add(10, bytes(s), true, 0, 1000));
    c.take(3);
    expect(() => c.committed(['only-a'])).toThrow(InvariantError);
    expect(c.inFlight?.instanceId).toBe(3); // nothing settled: the callers are not told wrongly
    c.rejectAll(new PaxosError('E_STOPPED', 'test over'));
    for (const p of ps) await expect(p).rejects.toMatchObject({ code: 'E_STOPPED' });
  });

  it('trips "a packed value fits" on a value propose() should have refused', async () => {
    const options = { ...defaultPaxosOptions(), maxValueBytes: 16 };
    const c = committer(options);
    const fits = c.add(10, new Uint8Array(16), false, 0, 1000);
    expect(c.take(0)?.value.length).toBe(16 + SINGLE_VALUE_OVERHEAD_BYTES); // at the limit
    c.committed([undefined]);
    await expect(fits).resolves.toMatchObject({ instanceId: 0 });
    const tooLarge = c.add(10, new Uint8Array(17), false, 0, 1000);
    expect(() => c.take(1)).toThrow(
      'tspaxos invariant violated: a packed value fits maxValueBytes and its header',
    );
    c.rejectAll(new PaxosError('E_STOPPED', 'test over'));
    await expect(tooLarge).rejects.toMatchObject({ code: 'E_STOPPED' });
  });
});
