// A linearizability checker for one register (a key of the KV store): the Wing–Gong search with
// Lowe's memoization of (linearized set, register value) states, as porcupine and Knossos do it
// (Lowe, "Testing for linearizability", 2017). Histories of different keys are independent
// (P-compositionality, Horn & Kroening 2015): checkKeys runs one search per key.
//
// What an op means here: a write took effect at one instant between its invocation and its
// return; a write whose outcome is unknown (a timeout, a reset) returns at +Infinity, so it may
// take effect at any time after its invocation or never; a failed write (a definite "not
// applied") is not in the history at all, so a read that sees its value cannot be linearized.

/** One completed (or outcome-unknown) operation on a register. */
export interface RegisterOp {
  /** Unique within the history; reported back on failure. */
  id: number;
  kind: 'write' | 'read';
  /** A write: the value written. A read: the value it returned (null: the key did not exist). */
  value: string | null;
  invokeMs: number;
  /** Infinity for a write whose outcome is unknown. */
  returnMs: number;
}

export type RegisterVerdict =
  | { result: 'linearizable'; ops: number; steps: number }
  | {
      result: 'not-linearizable';
      ops: number;
      steps: number;
      /**
       * The op whose return the deepest attempt could not get past: no order of the ops
       * linearized so far lets it take effect before it returned.
       */
      stuckAt: RegisterOp;
      /** The register's value in that deepest attempt, and how many ops it had linearized. */
      valueThen: string | null;
      linearizedThen: number;
    }
  /** The search gave up after maxSteps (a history too concurrent to decide in the budget). */
  | { result: 'undecided'; ops: number; steps: number };

export interface CheckOptions {
  /** The register's value before the history (default null: the key does not exist). */
  initial?: string | null;
  /** Search steps before the verdict is 'undecided' (ours: a few seconds of CPU). */
  maxSteps?: number;
}

/** Search steps before giving up (ours: ~1-3 s of CPU per key on this machine). */
export const DEFAULT_MAX_STEPS = 5_000_000;

interface Entry {
  op: RegisterOp;
  index: number;
  isCall: boolean;
  /** A call's return entry. */
  match: Entry | undefined;
  prev: Entry | undefined;
  next: Entry | undefined;
}

/** 32-bit mix (murmur3's finalizer): per-op words of the memo's Zobrist hash. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * Writes whose outcome is unknown and whose value no read returned are dropped: if a history is
 * linearizable with such a write taking effect somewhere, no read sat between it and the next
 * write (none returned its value), so it is also linearizable with the write never taking
 * effect, which an unknown outcome allows. It keeps the search small after many timeouts.
 */
export function pruneUnobservedUnknownWrites(ops: RegisterOp[]): RegisterOp[] {
  const seen = new Set<string | null>();
  for (const op of ops) if (op.kind === 'read') seen.add(op.value);
  return ops.filter(
    (op) => !(op.kind === 'write' && op.returnMs === Infinity && !seen.has(op.value)),
  );
}

/** Is this register history linearizable? */
export function checkRegister(input: RegisterOp[], options: CheckOptions = {}): RegisterVerdict {
  const ops = pruneUnobservedUnknownWrites(input);
  const maxSteps = options.maxSteps ?? DEFAULT_MAX_STEPS;
  const n = ops.length;
  for (const op of ops) {
    if (!(op.returnMs >= op.invokeMs))
      throw new Error(
        `op ${op.id}: returns (${op.returnMs}) before it is invoked (${op.invokeMs})`,
      );
  }

  // The events in time order; at equal times calls go first (the ops count as concurrent).
  const entries: Entry[] = [];
  ops.forEach((op, index) => {
    const call: Entry = {
      op,
      index,
      isCall: true,
      match: undefined,
      prev: undefined,
      next: undefined,
    };
    const ret: Entry = {
      op,
      index,
      isCall: false,
      match: undefined,
      prev: undefined,
      next: undefined,
    };
    call.match = ret;
    entries.push(call, ret);
  });
  const timeOf = (e: Entry) => (e.isCall ? e.op.invokeMs : e.op.returnMs);
  entries.sort((a, b) => timeOf(a) - timeOf(b) || (a.isCall === b.isCall ? 0 : a.isCall ? -1 : 1));
  const head: Entry = {
    op: undefined as never,
    index: -1,
    isCall: false,
    match: undefined,
    prev: undefined,
    next: undefined,
  };
  let last = head;
  for (const e of entries) {
    last.next = e;
    e.prev = last;
    last = e;
  }

  // Lift an op out of the list (both its events) once it is linearized; put it back on undo.
  const lift = (call: Entry): void => {
    call.prev!.next = call.next;
    if (call.next) call.next.prev = call.prev;
    const ret = call.match!;
    ret.prev!.next = ret.next;
    if (ret.next) ret.next.prev = ret.prev;
  };
  const unlift = (call: Entry): void => {
    const ret = call.match!;
    ret.prev!.next = ret;
    if (ret.next) ret.next.prev = ret;
    call.prev!.next = call;
    if (call.next) call.next.prev = call;
  };

  const words = Math.max(1, Math.ceil(n / 32));
  const linearized = new Uint32Array(words);
  const zobrist = (i: number, salt: number) => mix32(Math.imul(i + 1, 0x9e3779b1) ^ salt);
  let hashLow = 0;
  let hashHigh = 0;
  // The memo: states already explored, bucketed by hash and compared exactly.
  const memo = new Map<string, { bits: Uint32Array; value: string | null }[]>();
  const remember = (value: string | null): boolean => {
    const key = `${hashLow}:${hashHigh}:${value === null ? '\u0000' : value}`;
    const bucket = memo.get(key);
    if (bucket === undefined) {
      memo.set(key, [{ bits: linearized.slice(), value }]);
      return true;
    }
    for (const seen of bucket) {
      if (seen.value === value && seen.bits.every((w, i) => w === linearized[i])) return false;
    }
    bucket.push({ bits: linearized.slice(), value });
    return true;
  };
  const flip = (i: number): void => {
    linearized[i >>> 5]! ^= 1 << (i & 31);
    hashLow ^= zobrist(i, 0x1234567);
    hashHigh ^= zobrist(i, 0x7654321);
  };

  let value: string | null = options.initial ?? null;
  const stack: { call: Entry; valueBefore: string | null }[] = [];
  let steps = 0;
  let deepest = { depth: -1, stuckAt: undefined as RegisterOp | undefined, value };
  let entry = head.next;
  while (head.next !== undefined) {
    if (++steps > maxSteps) return { result: 'undecided', ops: n, steps };
    if (entry === undefined) throw new Error('linearizability search ran off the history');
    if (entry.isCall) {
      const op = entry.op;
      const applies = op.kind === 'write' || op.value === value;
      let moved = false;
      if (applies) {
        const after = op.kind === 'write' ? op.value : value;
        flip(entry.index);
        if (remember(after)) {
          stack.push({ call: entry, valueBefore: value });
          value = after;
          lift(entry);
          entry = head.next;
          moved = true;
        } else flip(entry.index);
      }
      if (!moved) entry = entry.next;
    } else {
      // A return whose op is not linearized yet: undo the last choice and try the next one.
      if (stack.length > deepest.depth) deepest = { depth: stack.length, stuckAt: entry.op, value };
      const top = stack.pop();
      if (top === undefined) {
        return {
          result: 'not-linearizable',
          ops: n,
          steps,
          stuckAt: deepest.stuckAt!,
          valueThen: deepest.value,
          linearizedThen: deepest.depth,
        };
      }
      value = top.valueBefore;
      flip(top.call.index);
      unlift(top.call);
      entry = top.call.next;
    }
  }
  return { result: 'linearizable', ops: n, steps };
}
