// The committer (PhxPaxos Committer + CommitCtx): propose() queues a value, the instance proposes
// the head of the queue when it can, and the caller learns the instance id and the state
// machine's result once the value is chosen and applied here. batchPropose() values that wait
// together are packed into one instance (PhxPaxos BatchPropose): the way to throughput, since an
// instance costs two fsync round trips whatever it carries.
import { crc32, KNOWN_CRC_MIN_BYTES, rememberCrc } from '@tspaxos/crc-wasm';
import { assert } from '@tspaxos/core';
import { PaxosError, type PaxosOutcome } from './errors';
import type { PaxosOptions } from './options';
import {
  BATCH_HEADER_BYTES,
  BATCH_ITEM_OVERHEAD_BYTES,
  packBatch,
  IDENTITY_HEADER_BYTES,
  packValue,
  type ProposalIdentity,
  SINGLE_VALUE_OVERHEAD_BYTES,
} from './value';

export interface ProposeResult<R = unknown> {
  instanceId: number;
  /** What the state machine's execute() returned for this value on this node. */
  result: R;
  /** Position in the instance's batch (batchPropose only). */
  batchIndex?: number;
  /** The identity the chosen value carries (value.ts): this proposal's, and no other's. */
  identity: ProposalIdentity;
}

interface Pending {
  smId: number;
  value: Uint8Array;
  batch: boolean;
  deadlineMs: number;
  resolve: (r: ProposeResult) => void;
  reject: (e: PaxosError) => void;
}

/** The value in flight: proposed for `instanceId`, carrying `entries` (one, or a batch). */
export interface CommitInFlight {
  instanceId: number;
  value: Uint8Array;
  /** Packed into `value`: the chosen value is this proposal's iff it carries this identity. */
  identity: ProposalIdentity;
  entries: Pending[];
  batch: boolean;
}

export interface CommitterCounters {
  proposed: number;
  committed: number;
  conflicts: number;
  timeouts: number;
  rejectedQueueFull: number;
}

export class Committer {
  readonly counters: CommitterCounters = {
    proposed: 0,
    committed: 0,
    conflicts: 0,
    timeouts: 0,
    rejectedQueueFull: 0,
  };
  inFlight: CommitInFlight | undefined;
  private queue: Pending[] = [];
  private queuedBytes = 0;
  /** Of the queued values, the batchPropose ones. */
  private queuedBatchValues = 0;
  /** The group's incarnation on this node (Group.start sets it before anything is proposed). */
  private incarnation: number | undefined;
  /** Values packed in this incarnation: each take() packs a new identity, a retry included. */
  private sequence = 0;

  constructor(
    private readonly options: PaxosOptions,
    private readonly nodeId: number,
    /**
     * How the callers of a chosen value are answered: at once by default; the group answers them
     * once the next instance's Accept has left (IOLoop.afterThisTurnIf, issue 22), since what a
     * caller runs next (an HTTP reply per value) would otherwise go before that send.
     */
    private readonly answer: (settle: () => void) => void = (settle) => settle(),
  ) {}

  /** Starts a new incarnation: identities from now on are (nodeId, incarnation, 0, 1, …). */
  setIncarnation(incarnation: number): void {
    this.incarnation = incarnation;
    this.sequence = 0;
  }

  get queueLength(): number {
    return this.queue.length;
  }

  get hasWork(): boolean {
    return this.queue.length > 0;
  }

  /** The next value to propose is a batchPropose value (packed with the ones after it). */
  get headIsBatch(): boolean {
    return this.queue[0]?.batch === true;
  }

  /** batchPropose values waiting (a propose() value, a master or membership one, is not). */
  get batchQueueLength(): number {
    return this.queuedBatchValues;
  }

  /** Counts `p` into (sign 1) or out of (-1) the queue's bytes and batch values. */
  private count(p: Pending, sign: 1 | -1): void {
    this.queuedBytes += sign * p.value.length;
    if (p.batch) this.queuedBatchValues += sign;
  }

  /** Queues a value; the promise settles when it is applied here, or on timeout/stop. */
  add(
    smId: number,
    value: Uint8Array,
    batch: boolean,
    nowMs: number,
    timeoutMs: number,
  ): Promise<ProposeResult> {
    if (
      this.queue.length >= this.options.committerQueueMaxProposals ||
      this.queuedBytes + value.length > this.options.committerQueueMaxBytes
    ) {
      this.counters.rejectedQueueFull++;
      return Promise.reject(
        new PaxosError('E_QUEUE_FULL', `the group has ${this.queue.length} proposals waiting`),
      );
    }
    this.counters.proposed++;
    return new Promise((resolve, reject) => {
      const p = { smId, value, batch, deadlineMs: nowMs + timeoutMs, resolve, reject };
      this.queue.push(p);
      this.count(p, 1);
    });
  }

  /**
   * Takes the next value to propose for `instanceId`: the head alone, or, for batch values, as
   * many waiting batch values as fit the batch limits.
   */
  take(instanceId: number): CommitInFlight | undefined {
    if (this.inFlight !== undefined || this.queue.length === 0) return undefined;
    const head = this.queue[0]!;
    let entries: Pending[];
    if (!head.batch) {
      entries = [head];
    } else {
      entries = [];
      let bytes = 0;
      // The packed batch must fit what one value may be once packed (options.ts).
      const maxPackedBytes = this.options.maxValueBytes + SINGLE_VALUE_OVERHEAD_BYTES;
      let packedBytes = IDENTITY_HEADER_BYTES + BATCH_HEADER_BYTES;
      for (const p of this.queue) {
        if (!p.batch) break;
        const itemBytes = BATCH_ITEM_OVERHEAD_BYTES + p.value.length;
        if (
          entries.length > 0 &&
          (entries.length >= this.options.batchMaxValues ||
            bytes + p.value.length > this.options.batchMaxBytes ||
            packedBytes + itemBytes > maxPackedBytes)
        )
          break;
        entries.push(p);
        bytes += p.value.length;
        packedBytes += itemBytes;
      }
    }
    assert(this.incarnation !== undefined, 'committer: a value packed before setIncarnation()');
    const identity: ProposalIdentity = {
      nodeId: this.nodeId,
      incarnation: this.incarnation,
      sequence: this.sequence++,
    };
    const value = head.batch
      ? packBatch(
          entries.map((e) => ({ smId: e.smId, value: e.value })),
          identity,
        )
      : packValue(head.smId, head.value, identity);
    // propose() refuses what would not fit one Accept once packed (Group.propose).
    assert(
      value.length <= this.options.maxValueBytes + SINGLE_VALUE_OVERHEAD_BYTES,
      'a packed value fits maxValueBytes and its header',
    );
    // One pass over a large value serves its every CRC: the acceptor's checksum chain, the log's
    // value CRC and the Accept frame's CRC all combine this one (issue 10 profile: three passes
    // over each 100 KiB value on the proposing node). The packed value is ours and never
    // written again, as rememberCrc requires.
    if (value.length >= KNOWN_CRC_MIN_BYTES) rememberCrc(value, crc32(value));
    this.queue.splice(0, entries.length);
    for (const e of entries) this.count(e, -1);
    this.inFlight = { instanceId, value, identity, entries, batch: head.batch };
    return this.inFlight;
  }

  /** The in-flight value was chosen and applied: hand each caller its result. */
  committed(results: unknown[]): void {
    const flight = this.inFlight;
    if (flight === undefined) return;
    assert(results.length === flight.entries.length, 'every entry of a chosen value has a result');
    this.inFlight = undefined;
    this.counters.committed += flight.entries.length;
    this.answer(() =>
      flight.entries.forEach((e, i) =>
        e.resolve({
          instanceId: flight.instanceId,
          result: results[i],
          identity: flight.identity,
          ...(flight.batch ? { batchIndex: i } : {}),
        }),
      ),
    );
  }

  /** Another value won the instance: the entries go back to the head of the queue to retry. */
  conflicted(): void {
    const flight = this.inFlight;
    if (flight === undefined) return;
    this.inFlight = undefined;
    this.counters.conflicts++;
    this.queue.unshift(...flight.entries);
    for (const e of flight.entries) this.count(e, 1);
  }

  /** The in-flight value could not be applied here. */
  failed(error: PaxosError): void {
    const flight = this.inFlight;
    if (flight === undefined) return;
    this.inFlight = undefined;
    for (const e of flight.entries) e.reject(error);
  }

  /**
   * Rejects every waiting or in-flight entry past its deadline. Returns true when the in-flight
   * value was abandoned (the proposer should stop working on it).
   */
  expire(nowMs: number): boolean {
    const expired = (p: Pending): boolean => p.deadlineMs <= nowMs;
    const timeout = (p: Pending, outcome: PaxosOutcome): void => {
      this.counters.timeouts++;
      p.reject(
        new PaxosError(
          'E_TIMEOUT',
          outcome === 'rejected'
            ? 'the proposal timed out before it was proposed; it will not be chosen'
            : 'the proposal timed out; it may or may not be chosen later',
          { outcome },
        ),
      );
    };
    const keep: Pending[] = [];
    for (const p of this.queue) {
      // Still queued: never proposed, or proposed in an instance another value won (conflicted).
      if (expired(p)) {
        this.count(p, -1);
        timeout(p, 'rejected');
      } else keep.push(p);
    }
    this.queue = keep;
    const flight = this.inFlight;
    if (flight !== undefined && flight.entries.every(expired)) {
      this.inFlight = undefined;
      flight.entries.forEach((p) => timeout(p, 'unknown'));
      return true;
    }
    return false;
  }

  /**
   * When expire() next has something to do: the earliest deadline of a waiting entry, or the
   * moment every entry of the in-flight value has expired (it is abandoned only as a whole).
   */
  nextDeadline(): number | undefined {
    let min = Number.POSITIVE_INFINITY;
    for (const p of this.queue) min = Math.min(min, p.deadlineMs);
    const flight = this.inFlight;
    if (flight !== undefined)
      min = Math.min(min, Math.max(...flight.entries.map((p) => p.deadlineMs)));
    return Number.isFinite(min) ? min : undefined;
  }

  /**
   * Rejects the waiting (not in-flight) entries `which` picks: none of them was proposed since it
   * last lost an instance, so none is chosen. Returns how many.
   */
  rejectWaiting(which: (smId: number) => boolean, error: PaxosError): number {
    const keep: Pending[] = [];
    const rejected: Pending[] = [];
    for (const p of this.queue) (which(p.smId) ? rejected : keep).push(p);
    if (rejected.length === 0) return 0;
    this.queue = keep;
    for (const p of rejected) {
      this.count(p, -1);
      p.reject(error);
    }
    return rejected.length;
  }

  /**
   * Rejects everything (the group or node is stopping). The value in flight may be chosen yet
   * (the error's own outcome); the queued ones never will be (outcome `rejected`).
   */
  rejectAll(error: PaxosError): void {
    const flight = this.inFlight?.entries ?? [];
    const queued = this.queue;
    this.inFlight = undefined;
    this.queue = [];
    this.queuedBytes = 0;
    this.queuedBatchValues = 0;
    for (const p of flight) p.reject(error);
    if (queued.length > 0) {
      const rejected = error.asRejected();
      for (const p of queued) p.reject(rejected);
    }
  }
}
