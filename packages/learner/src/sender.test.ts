import type { AcceptorRecord } from '@tspaxos/crc-wasm';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LEARNER_OPTIONS, type LearnerOptions } from './options';
import { LearnerSender, type SenderEndReason } from './sender';

/** A sender over a log of `now` instances, recording what it sends and how streams end. */
function harness(now: number, options: Partial<LearnerOptions> = {}) {
  const sent: Array<{ to: number; id: number; lastChecksum: number }> = [];
  const ends: SenderEndReason[] = [];
  const log = { now, missing: new Set<number>() };
  const record = (id: number): AcceptorRecord => ({
    instanceId: id,
    promiseId: 1,
    promiseNodeId: 1,
    acceptedId: 1,
    acceptedNodeId: 1,
    value: new Uint8Array([id & 0xff]),
    checksum: 1000 + id,
  });
  const sender = new LearnerSender(
    { ...DEFAULT_LEARNER_OPTIONS, ...options },
    {
      nowInstanceId: () => log.now,
      readRecord: (id) => (log.missing.has(id) ? undefined : record(id)),
      sendValue: (to, r, lastChecksum) => sent.push({ to, id: r.instanceId, lastChecksum }),
      ended: (_to, reason) => ends.push(reason),
    },
  );
  return { sender, sent, ends, log };
}

describe('LearnerSender (per-peer progress)', () => {
  it('sends ackLead + 1 values past the last ack, then waits for an ack', () => {
    const { sender, sent } = harness(100);
    expect(sender.prepare(10, 2, 0)).toBe(true);
    expect(sender.confirm(10, 2, 0)).toBe(true);
    // window: instances 10 … 10 + 21
    expect(sent.map((s) => s.id)).toEqual(Array.from({ length: 22 }, (_, i) => 10 + i));
    expect(sent[0]!.lastChecksum).toBe(1009); // chain value of instance 9, so the first is checked too
    expect(sent[1]!.lastChecksum).toBe(1010);
    sender.ack(14, 2, 5);
    expect(sent.at(-1)!.id).toBe(14 + 21);
  });

  it('is busy for a second asker, and only the prepared peer can confirm', () => {
    const { sender } = harness(100);
    expect(sender.prepare(10, 2, 0)).toBe(true);
    expect(sender.prepare(20, 3, 1)).toBe(false);
    expect(sender.confirm(10, 3, 1)).toBe(false); // wrong node
    expect(sender.confirm(11, 2, 1)).toBe(false); // stale instance
    expect(sender.confirm(10, 2, 1)).toBe(true);
  });

  it('frees itself when a prepared stream is never confirmed', () => {
    const { sender, ends } = harness(100);
    sender.prepare(10, 2, 0);
    expect(sender.deadline()).toBe(DEFAULT_LEARNER_OPTIONS.senderPrepareTimeoutMs);
    sender.tick(DEFAULT_LEARNER_OPTIONS.senderPrepareTimeoutMs);
    expect(sender.phase).toBe('idle');
    expect(ends).toEqual(['prepare-timeout']);
    expect(sender.prepare(20, 3, 6000)).toBe(true);
  });

  it('gives up on ack timeout and cuts its lead by the receiver ack lead (CutAckLead)', () => {
    const { sender, ends } = harness(1000);
    sender.prepare(0, 2, 0);
    sender.confirm(0, 2, 0);
    expect(sender.deadline()).toBe(5000);
    sender.tick(5000);
    expect(ends).toEqual(['ack-timeout']);
    expect(sender.ackLead).toBe(21 - 4);
    // Repeated timeouts shrink it while more than twice the receiver lead remains.
    for (let i = 1; i < 10; i++) {
      sender.prepare(0, 2, i * 10_000);
      sender.confirm(0, 2, i * 10_000);
      sender.tick(i * 10_000 + 5000);
    }
    expect(sender.ackLead).toBe(5); // 21 → 17 → 13 → 9 → 5, then 5 − 4 is not above 4
  });

  it('ends "done" when it reaches the now instance id, and resets the lead', () => {
    const { sender, ends, sent } = harness(5);
    sender.ackLead = 9;
    sender.prepare(2, 2, 0);
    sender.confirm(2, 2, 0);
    expect(sent.map((s) => s.id)).toEqual([2, 3, 4]);
    expect(ends).toEqual(['done']);
    expect(sender.ackLead).toBe(21);
  });

  it('stops when the receiver is already past what it would send next', () => {
    const { sender, ends } = harness(1000);
    sender.prepare(0, 2, 0);
    sender.confirm(0, 2, 0);
    sender.ack(500, 2, 1);
    expect(ends).toEqual(['caught-up']);
  });

  it('ignores acks from other nodes and old acks', () => {
    const { sender, sent } = harness(1000);
    sender.prepare(0, 2, 0);
    sender.confirm(0, 2, 0);
    const before = sent.length;
    sender.ack(10, 3, 1);
    sender.ack(0, 2, 1);
    expect(sent.length).toBe(before);
  });

  it('ends "read-failed" when a record is gone, instead of sending a hole', () => {
    const { sender, ends, sent, log } = harness(100);
    log.missing.add(5);
    sender.prepare(0, 2, 0);
    sender.confirm(0, 2, 0);
    expect(sent.map((s) => s.id)).toEqual([0, 1, 2, 3, 4]);
    expect(ends).toEqual(['read-failed']);
  });

  it('keeps to its rate limit', () => {
    const { sender, sent } = harness(10_000, {
      sendRateInstancesPerSec: 1000,
      senderAckLead: 10_000,
    });
    sender.prepare(0, 2, 0);
    sender.confirm(0, 2, 0);
    expect(sent.length).toBe(10); // a 10 ms bucket at 1000/s
    sender.tick(5); // 5 ms later: 5 more
    expect(sent.length).toBe(15);
    expect(sender.counters.rateLimited).toBeGreaterThan(0);
  });
});
