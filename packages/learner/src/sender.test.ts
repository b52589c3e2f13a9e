// Every transition of the per-peer progress (progress.ts) through the LearnerSender, on a
// virtual clock: time is the nowMs each call passes.
import type { AcceptorRecord } from '@tspaxos/crc-wasm';
import { StorageError } from '@tspaxos/storage';
import { describe, expect, it } from 'vitest';
import { SenderBudget } from './budget';
import { DEFAULT_LEARNER_OPTIONS, type LearnerOptions } from './options';
import { LearnerSender, RECORD_OVERHEAD_BYTES, type SenderEndReason } from './sender';

const OVERHEAD = RECORD_OVERHEAD_BYTES;

interface Batch {
  to: number;
  first: number;
  count: number;
  bytes: number;
  lastChecksum: number;
}

/**
 * A sender over a log of `now` instances (value sizes from `sizeOf`), recording the batches it
 * sends and how streams end; checks every progress invariant after each step.
 */
function harness(
  now: number,
  options: Partial<LearnerOptions> = {},
  more: { sizeOf?: (id: number) => number; budget?: SenderBudget } = {},
) {
  const sent: Batch[] = [];
  const ends: Array<{ to: number; reason: SenderEndReason; error?: unknown }> = [];
  const log = {
    now,
    missing: new Set<number>(),
    corruptAt: -1,
    brokenAt: -1,
    /** readRange throws failWith at failAt. */
    failAt: -1,
    failWith: undefined as Error | undefined,
    ranges: 0,
    /** The clock the sender reads between batches; advanced by `msPerBatch` per batch sent. */
    clockMs: 0,
    msPerBatch: 0,
    msPerRecord: 0,
  };
  const sizeOf = more.sizeOf ?? (() => 1);
  const record = (id: number): AcceptorRecord => ({
    instanceId: id,
    promiseId: 1,
    promiseNodeId: 1,
    acceptedId: 1,
    acceptedNodeId: 1,
    value: new Uint8Array(sizeOf(id)),
    checksum: 1000 + id,
  });
  // No slow start unless a test asks for it: batch sizes are then read off the options.
  const opts = { ...DEFAULT_LEARNER_OPTIONS, firstBatchInstances: 1 << 20, ...options };
  const budget = more.budget ?? new SenderBudget(opts.senderBudgetBytes);
  let wakes = 0;
  const sender = new LearnerSender(
    opts,
    {
      nowInstanceId: () => log.now,
      now: () => log.clockMs,
      readRange: function* (from, to) {
        log.ranges++;
        for (let id = from; id < to; id++) {
          if (id === log.corruptAt) throw new StorageError('E_CORRUPT_RECORD', `record ${id}`);
          if (id === log.brokenAt) throw new TypeError('a bug in the store');
          if (id === log.failAt) throw log.failWith!;
          log.clockMs += log.msPerRecord;
          if (!log.missing.has(id)) yield record(id);
        }
      },
      readChecksum: (id) => 1000 + id,
      sendBatch: (to, lastChecksum, records) => {
        let bytes = 0;
        for (const r of records) bytes += r.value.length + OVERHEAD;
        records.forEach((r, i) => expect(r.instanceId).toBe(records[0]!.instanceId + i));
        sent.push({
          to,
          first: records[0]!.instanceId,
          count: records.length,
          bytes,
          lastChecksum,
        });
        log.clockMs += log.msPerBatch;
      },
      ended: (to, reason, _next, error) => ends.push({ to, reason, error }),
    },
    budget,
    () => wakes++,
  );
  const check = () => {
    for (const id of [1, 2, 3, 4, 5]) sender.progress(id)?.assertInvariants();
    expect(budget.usedBytes).toBeGreaterThanOrEqual(0);
  };
  /** Prepare + confirm (+ the pump a confirm is followed by). */
  const stream = (to: number, begin: number, nowMs = 0) => {
    expect(sender.prepare(begin, to, nowMs)).toBe(true);
    expect(sender.confirm(begin, to, nowMs)).toBe(true);
    sender.pump(nowMs);
    check();
  };
  const ids = (to?: number) =>
    sent
      .filter((b) => to === undefined || b.to === to)
      .flatMap((b) => Array.from({ length: b.count }, (_, i) => b.first + i));
  return { sender, sent, ends, log, budget, stream, ids, check, wakes: () => wakes };
}

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

describe('LearnerSender: one peer', () => {
  it('streams batches up to its window in instances, then only on acks', () => {
    const h = harness(100, { senderAckLead: 10, batchMaxInstances: 4 });
    h.stream(2, 10);
    expect(h.sent.map((b) => [b.first, b.count])).toEqual([
      [10, 4],
      [14, 4],
      [18, 2],
    ]);
    // The chain value before each batch: the first instance is checked too.
    expect(h.sent.map((b) => b.lastChecksum)).toEqual([1009, 1013, 1017]);
    h.sender.ack(14, 2, false, 5);
    h.sender.pump(5);
    h.check();
    expect(h.ids(2)).toEqual(range(10, 14));
    expect(h.sender.progress(2)).toMatchObject({ ackedInstanceId: 14, nextInstanceId: 24 });
  });

  it('starts a stream with a small batch and doubles it per batch (slow start)', () => {
    const h = harness(1000, { firstBatchInstances: 4, batchMaxInstances: 64 });
    h.stream(2, 0);
    expect(h.sent.map((b) => b.count).slice(0, 7)).toEqual([4, 8, 16, 32, 64, 64, 64]);
  });

  it('cuts a batch at batchMaxBytes and sends a value larger than that alone', () => {
    const h = harness(
      20,
      { batchMaxBytes: 3 * (100 + OVERHEAD) },
      { sizeOf: (id) => (id === 7 ? 10_000 : 100) },
    );
    h.stream(2, 0);
    expect(h.sent.map((b) => [b.first, b.count])).toEqual([
      [0, 3],
      [3, 3],
      [6, 1],
      [7, 1], // 10,000 B: over the batch limit, alone
      [8, 3],
      [11, 3],
      [14, 3],
      [17, 3],
    ]);
    expect(h.sent.every((b) => b.count === 1 || b.bytes <= 3 * (100 + OVERHEAD))).toBe(true);
  });

  it('keeps its window in bytes: a large value waits for the acks of what is in flight', () => {
    const lead = 4 * (1000 + OVERHEAD);
    const h = harness(
      10,
      // receiverAckLeadBytes 1000: the receiver acks each value, so an ack is always due.
      { senderAckLeadBytes: lead, batchMaxInstances: 1, receiverAckLeadBytes: 1000 },
      { sizeOf: (id) => (id === 4 ? 3 * lead : 1000) },
    );
    h.stream(2, 0);
    expect(h.ids(2)).toEqual([0, 1, 2, 3]); // four values fill the byte window
    expect(h.sender.progress(2)!.inflightBytes).toBe(lead);
    h.sender.ack(3, 2, false, 1);
    h.sender.pump(1);
    expect(h.ids(2)).toEqual([0, 1, 2, 3]); // value 4 is larger than the window: not yet
    h.sender.ack(4, 2, false, 2);
    h.sender.pump(2);
    h.check();
    expect(h.ids(2)).toEqual([0, 1, 2, 3, 4]); // alone, with nothing else in flight
    expect(h.ends).toEqual([]);
    expect(h.sender.progress(2)!.inflightBytes).toBe(3 * lead + OVERHEAD);
  });

  // Issue 17, finding 4: the receiver acks one-value frames every receiverAckLead instances or
  // receiverAckLeadBytes bytes. A value that did not fit the byte window behind fewer than that
  // waited for an ack that was not due: the stream stood still until the receiver's stall timer.
  it('a value that does not fit the byte window waits only while an ack is due', () => {
    const lead = 4 * (1000 + OVERHEAD);
    const h = harness(
      10,
      { senderAckLeadBytes: lead, batchMaxInstances: 1, receiverAckLead: 3 },
      { sizeOf: (id) => (id === 1 ? 3 * lead : 1000) },
    );
    h.stream(2, 0);
    // Value 1 does not fit behind value 0, but one value of 1 KB is no ack the receiver owes:
    // it goes, and so does value 2; with receiverAckLead (3) in flight the window holds again.
    expect(h.ids(2)).toEqual([0, 1, 2]);
    expect(h.sender.progress(2)!.inflightBytes).toBe(3 * lead + 2000 + 3 * OVERHEAD);
    h.sender.ack(3, 2, false, 1);
    h.sender.pump(1);
    h.check();
    expect(h.ids(2)).toEqual(range(0, 7)); // values 3…6 fill the window again: an ack is due
    expect(h.ends).toEqual([]);
  });

  it('ends "done" once the peer acked our now id, and follows new instances until then', () => {
    const h = harness(8);
    h.stream(2, 0);
    expect(h.ids(2)).toEqual(range(0, 8));
    h.log.now = 12; // we learned more meanwhile: the stream goes on
    h.sender.pump(1);
    expect(h.ids(2)).toEqual(range(0, 12));
    h.sender.ack(8, 2, false, 2);
    expect(h.ends).toEqual([]);
    h.sender.ack(12, 2, false, 3);
    expect(h.ends).toEqual([{ to: 2, reason: 'done', error: undefined }]);
    expect(h.sender.activeCount).toBe(0);
    expect(h.budget.usedBytes).toBe(0);
  });

  it('jumps forward when the peer is past what we sent (it learned the rest elsewhere)', () => {
    const h = harness(100, { senderAckLead: 10, batchMaxInstances: 10 });
    h.stream(2, 0);
    h.sender.ack(50, 2, false, 1);
    h.sender.pump(1);
    h.check();
    expect(h.sent.map((b) => [b.first, b.lastChecksum])).toEqual([
      [0, 0],
      [50, 1049],
    ]);
  });

  it('a gap ack (NACK) rewinds next to the peer id and frees what was in flight', () => {
    const h = harness(100, { senderAckLead: 20, batchMaxInstances: 5 });
    h.stream(2, 0);
    expect(h.ids(2)).toEqual(range(0, 20));
    h.sender.ack(5, 2, false, 1); // batch 0–4 arrived, 5–9 was lost
    h.sender.ack(5, 2, true, 2); // the receiver saw 10 while expecting 5
    h.check();
    expect(h.sender.counters.nacks).toBe(1);
    h.sender.pump(2);
    const resent = h.sent.slice(4);
    expect(resent.map((b) => [b.first, b.lastChecksum])).toEqual([
      [5, 1004],
      [10, 1009],
      [15, 1014],
      [20, 1019],
    ]);
    expect(h.sender.progress(2)!.inflightBytes).toBe(20 * (1 + OVERHEAD));
    // A gap ack for what is already acked or past next changes nothing more.
    h.sender.ack(5, 2, true, 3);
    expect(h.sender.counters.nacks).toBe(2);
  });

  it('a peer that asks again while streamed re-prepares from its new begin at once', () => {
    const h = harness(100, { senderAckLead: 20, batchMaxInstances: 10 });
    h.stream(2, 0);
    expect(h.budget.usedBytes).toBeGreaterThan(0);
    expect(h.sender.prepare(7, 2, 100)).toBe(true); // it restarted and lost our frames
    h.check();
    expect(h.sender.progress(2)).toMatchObject({
      phase: 'prepared',
      beginInstanceId: 7,
      inflightBytes: 0,
    });
    expect(h.budget.usedBytes).toBe(0);
    expect(h.sender.counters.reprepared).toBe(1);
    expect(h.sender.confirm(7, 2, 100)).toBe(true);
    h.sender.pump(100);
    expect(h.sent.slice(2).map((b) => b.first)).toEqual([7, 17]);
  });

  it('an unconfirmed prepare ends after 1 s, or at once when the asker declines it', () => {
    const h = harness(100);
    expect(h.sender.prepare(0, 2, 0)).toBe(true);
    expect(h.sender.deadline()).toBe(1000);
    h.sender.tick(999);
    expect(h.ends).toEqual([]);
    h.sender.tick(1000);
    expect(h.ends.map((e) => e.reason)).toEqual(['prepare-timeout']);
    expect(h.sender.confirm(0, 2, 1001)).toBe(false);

    expect(h.sender.prepare(5, 3, 2000)).toBe(true);
    expect(h.sender.decline(4, 3)).toBe(false); // another begin: not this stream
    expect(h.sender.decline(5, 3)).toBe(true);
    expect(h.ends.map((e) => e.reason)).toEqual(['prepare-timeout', 'declined']);
    expect(h.sender.activeCount).toBe(0);
  });

  it('only the prepared peer with the prepared begin can confirm; acks from others are ignored', () => {
    const h = harness(100);
    expect(h.sender.prepare(10, 2, 0)).toBe(true);
    expect(h.sender.confirm(10, 3, 0)).toBe(false);
    expect(h.sender.confirm(11, 2, 0)).toBe(false);
    expect(h.sender.confirm(10, 2, 0)).toBe(true);
    h.sender.pump(0);
    const before = { ...h.sender.progress(2)! };
    h.sender.ack(50, 3, false, 1);
    h.sender.ack(5, 2, false, 1); // older than the begin
    expect(h.sender.progress(2)).toMatchObject({
      ackedInstanceId: before.ackedInstanceId,
      nextInstanceId: before.nextInstanceId,
    });
  });

  it('gives up on an ack timeout and halves that peer window (CutAckLead), kept for its next stream', () => {
    const h = harness(100_000, { senderAckLead: 64, batchMaxInstances: 8 });
    h.stream(2, 0);
    expect(h.sender.deadline()).toBe(5000);
    h.sender.tick(4999);
    expect(h.ends).toEqual([]);
    h.sender.tick(5000);
    expect(h.ends.map((e) => e.reason)).toEqual(['ack-timeout']);
    expect(h.sender.progress(2)!.ackLeadInstances).toBe(32);
    expect(h.budget.usedBytes).toBe(0);
    h.stream(2, 64, 6000);
    expect(h.ids(2).length).toBe(64 + 32);
  });

  it('ends "read-failed" at a hole in the log after sending what precedes it', () => {
    const h = harness(100, { senderAckLead: 100, batchMaxInstances: 100 });
    h.log.missing.add(5);
    h.stream(2, 0);
    expect(h.ids(2)).toEqual(range(0, 5));
    h.sender.ack(5, 2, false, 1);
    h.sender.pump(1);
    expect(h.ends.map((e) => e.reason)).toEqual(['read-failed']);
  });

  it('ends "read-failed", counted, on a damaged record or a failed disk read; any other error goes up', () => {
    const h = harness(100, { batchMaxInstances: 100 });
    h.log.corruptAt = 0;
    h.stream(2, 0);
    expect(h.ends).toMatchObject([{ reason: 'read-failed', error: { code: 'E_CORRUPT_RECORD' } }]);
    expect(h.sender.counters.readFailures).toBe(1);
    const io = harness(100, { batchMaxInstances: 100 });
    io.log.failWith = new StorageError('E_IO', 'the disk failed a read');
    io.log.failAt = 0;
    io.stream(2, 0);
    expect(io.ends).toMatchObject([{ reason: 'read-failed', error: { code: 'E_IO' } }]);
    expect(io.sender.counters.readFailures).toBe(1);
    const g = harness(100, { batchMaxInstances: 100 });
    g.log.brokenAt = 0;
    expect(g.sender.prepare(0, 2, 0)).toBe(true);
    expect(g.sender.confirm(0, 2, 0)).toBe(true);
    expect(() => g.sender.pump(0)).toThrow(TypeError);
    // A StorageError that is not a condition of the disk (a closed store) is a bug too.
    const closed = harness(100, { batchMaxInstances: 100 });
    closed.log.failWith = new StorageError('E_CLOSED', 'the store is closed');
    closed.log.failAt = 0;
    expect(closed.sender.prepare(0, 2, 0)).toBe(true);
    expect(closed.sender.confirm(0, 2, 0)).toBe(true);
    expect(() => closed.sender.pump(0)).toThrow(/the store is closed/);
    expect(closed.sender.counters.readFailures).toBe(0);
  });

  it('reads the log with range() across batches, not once per instance', () => {
    const h = harness(10_000, {
      senderAckLead: 10_000,
      batchMaxInstances: 1000,
      senderTurnMaxInstances: 10_000,
    });
    h.stream(2, 0);
    expect(h.ids(2).length).toBe(10_000);
    expect(h.log.ranges).toBe(1);
  });
});

describe('LearnerSender: several peers', () => {
  it('streams to two peers at once, in turn, each with its own window', () => {
    const h = harness(1000, { senderAckLead: 8, batchMaxInstances: 4 });
    expect(h.sender.prepare(0, 2, 0)).toBe(true);
    expect(h.sender.prepare(100, 3, 0)).toBe(true);
    expect(h.sender.confirm(0, 2, 0)).toBe(true);
    expect(h.sender.confirm(100, 3, 0)).toBe(true);
    h.sender.pump(0);
    h.check();
    expect(h.sent.map((b) => `${b.to}:${b.first}`)).toEqual(['2:0', '3:100', '2:4', '3:104']);
    expect(h.sender.counters.maxConcurrentStreams).toBe(2);
    // The second confirm found the first stream running: one concurrent stream started.
    expect(h.sender.counters.concurrentStreamsStarted).toBe(1);
    expect(h.sender.peerStatus(0).map((p) => [p.nodeId, p.inflightInstances])).toEqual([
      [2, 8],
      [3, 8],
    ]);
  });

  it("one peer's ack timeout does not shrink the other peer's window", () => {
    const h = harness(100_000, { senderAckLead: 64, batchMaxInstances: 16 });
    h.stream(2, 0);
    h.stream(3, 0);
    h.sender.ack(32, 2, false, 3000); // peer 2 acks, peer 3 is silent
    h.sender.pump(3000);
    h.sender.tick(5000);
    expect(h.ends).toEqual([{ to: 3, reason: 'ack-timeout', error: undefined }]);
    expect(h.sender.progress(3)!.ackLeadInstances).toBe(32);
    expect(h.sender.progress(2)).toMatchObject({ phase: 'sending', ackLeadInstances: 64 });
    h.sender.ack(96, 2, false, 5001);
    h.sender.pump(5001);
    expect(h.sender.progress(2)!.inflightInstances).toBe(64);
  });

  it('refuses a peer beyond maxConcurrentLearners, and takes it once a stream ends', () => {
    const h = harness(100, { maxConcurrentLearners: 2 });
    expect(h.sender.prepare(0, 2, 0)).toBe(true);
    expect(h.sender.prepare(0, 3, 0)).toBe(true);
    expect(h.sender.prepare(0, 4, 0)).toBe(false);
    expect(h.sender.counters.busy).toBe(1);
    h.sender.tick(1000); // both prepares expire
    expect(h.sender.prepare(0, 4, 1000)).toBe(true);
  });

  it('with maxConcurrentLearners 1 it serves one peer at a time, as PhxPaxos', () => {
    const h = harness(100, { maxConcurrentLearners: 1 });
    h.stream(2, 0);
    expect(h.sender.prepare(0, 3, 1)).toBe(false);
  });

  it('a node-wide budget bounds the bytes in flight across groups, with large and small values mixed', () => {
    const budget = new SenderBudget(64 * 1024);
    const size = (id: number) => (id % 5 === 0 ? 20_000 : 100);
    const opts = { senderAckLeadBytes: 1024 * 1024, batchMaxBytes: 16 * 1024 };
    const g0 = harness(400, opts, { sizeOf: size, budget });
    const g1 = harness(400, opts, { sizeOf: size, budget });
    g0.stream(2, 0);
    g1.stream(2, 0);
    g1.stream(3, 0);
    const inflight = () =>
      [g0.sender.progress(2), g1.sender.progress(2), g1.sender.progress(3)].reduce(
        (n, p) => n + p!.inflightBytes,
        0,
      );
    expect(budget.usedBytes).toBe(inflight());
    expect(budget.usedBytes).toBeLessThanOrEqual(64 * 1024);
    expect(g0.sender.counters.budgetWaits + g1.sender.counters.budgetWaits).toBeGreaterThan(0);
    // Acks in one group free budget that the other group's waiting stream then uses: it is woken.
    const wokenBefore = g1.wakes();
    const p = g0.sender.progress(2)!;
    g0.sender.ack(p.nextInstanceId, 2, false, 1);
    expect(g1.wakes()).toBeGreaterThan(wokenBefore);
    let steps = 0;
    while ([g0, g1].some((g) => g.ends.length < (g === g0 ? 1 : 2)) && steps++ < 10_000) {
      for (const [g, to] of [
        [g0, 2],
        [g1, 2],
        [g1, 3],
      ] as const) {
        const q = g.sender.progress(to)!;
        if (q.phase === 'sending') g.sender.ack(q.nextInstanceId, to, false, 2);
        g.sender.pump(2);
        g.check();
        expect(budget.usedBytes).toBeLessThanOrEqual(64 * 1024);
        expect(budget.usedBytes).toBe(inflight());
      }
    }
    expect(g0.ids(2)).toEqual(range(0, 400));
    expect(g1.ids(3)).toEqual(range(0, 400));
    expect(budget.usedBytes).toBe(0);
  });

  it('a value larger than the whole budget still goes, alone, when nothing else is in flight', () => {
    const budget = new SenderBudget(1000);
    const h = harness(3, {}, { sizeOf: () => 5000, budget });
    h.stream(2, 0);
    expect(h.ids(2)).toEqual([0]);
    h.sender.ack(1, 2, false, 1);
    h.sender.pump(1);
    expect(h.ids(2)).toEqual([0, 1]);
  });
});

describe('LearnerSender: bounded work', () => {
  it('stops a turn at senderTurnMaxInstances and says so', () => {
    const h = harness(100, {
      senderAckLead: 100,
      batchMaxInstances: 4,
      senderTurnMaxInstances: 8,
    });
    expect(h.sender.prepare(0, 2, 0)).toBe(true);
    expect(h.sender.confirm(0, 2, 0)).toBe(true);
    expect(h.sender.pump(0)).toBe(true);
    expect(h.ids(2)).toEqual(range(0, 8));
    expect(h.sender.pump(0)).toBe(true);
    expect(h.ids(2)).toEqual(range(0, 16));
    expect(h.sender.counters.turnsYielded).toBe(2);
  });

  it('stops a turn after senderTurnMaxMs of work, however few instances that was', () => {
    const h = harness(100, { senderAckLead: 100, batchMaxInstances: 1, senderTurnMaxMs: 4 });
    h.log.msPerBatch = 1.5; // a slow machine: each batch takes 1.5 ms
    expect(h.sender.prepare(0, 2, 0)).toBe(true);
    expect(h.sender.confirm(0, 2, 0)).toBe(true);
    expect(h.sender.pump(0)).toBe(true);
    expect(h.ids(2)).toEqual(range(0, 3));
    expect(h.sender.lastTurnMs).toBe(4.5); // the Learner pauses in proportion before the next
  });

  it('cuts a batch being read when the turn runs out of time', () => {
    const h = harness(10_000, {
      senderAckLead: 10_000,
      batchMaxInstances: 2048,
      senderTurnMaxMs: 4,
    });
    // Each record read takes 0.01 ms: 2,048 records would take 20 ms.
    h.sender.prepare(0, 2, 0);
    h.sender.confirm(0, 2, 0);
    h.log.msPerRecord = 0.01;
    expect(h.sender.pump(0)).toBe(true);
    expect(h.sent.length).toBe(1);
    expect(h.sent[0]!.count).toBeLessThan(2048);
    expect(h.sent[0]!.count % 64).toBe(0);
  });

  it('stops a turn at senderTurnMaxBytes', () => {
    const h = harness(
      100,
      { senderAckLead: 100, batchMaxInstances: 1, senderTurnMaxBytes: 3000 },
      { sizeOf: () => 1000 },
    );
    h.stream(2, 0);
    expect(h.ids(2)).toEqual(range(0, 3));
  });

  it('keeps to its rate limit and reports when the next token is due', () => {
    const h = harness(100_000, {
      sendRateInstancesPerSec: 1000,
      senderAckLead: 100_000,
      batchMaxInstances: 10,
    });
    h.stream(2, 0);
    expect(h.ids(2).length).toBe(10); // the bucket: one batch
    expect(h.sender.counters.rateLimited).toBeGreaterThan(0);
    expect(h.sender.deadline()).toBe(1);
    h.sender.pump(100); // 100 ms: 100 more tokens, capped at the bucket (10)
    expect(h.ids(2).length).toBe(20);
    h.sender.ack(20, 2, false, 100);
    h.sender.pump(1100);
    expect(h.ids(2).length).toBe(30);
  });
});
