// The client-visible history of a fault run and what is checked on it: per key, the writes and
// the reads of the linearizable kinds go to the register checker; plain reads (local state, not
// linearizable by contract) only have to return a value some write could have produced.
import { checkRegister, type RegisterOp, type RegisterVerdict } from './linearizability';

export type ReadMode = 'consistent' | 'lease' | 'plain';
/**
 * ok: the answer says what happened. fail: a definite "not applied" / no answer to use (4xx,
 * 503, connection refused). unknown: it may or may not have happened (504, timeout, reset).
 */
export type Outcome = 'ok' | 'fail' | 'unknown';

export interface Op {
  id: number;
  client: number;
  /** The node the request went to. */
  node: number;
  key: string;
  kind: 'write' | 'read';
  mode?: ReadMode;
  /** A write: the value sent. A read that is ok: the value returned (null: 404). */
  value: string | null;
  invokeMs: number;
  /** When the client had its answer, or gave up. */
  completeMs?: number;
  outcome?: Outcome;
  /** The HTTP status and error code, or the socket error. */
  detail?: string;
  /** An ok answer's x-tspaxos-instance-id: the write's instance, the barrier's, the state read. */
  instanceId?: number;
  /** One of the reads after the heal (every node, every key). */
  final?: boolean;
}

export function describeOp(op: Op): string {
  const what =
    op.kind === 'write'
      ? `write ${op.key}=${op.value}`
      : `read(${op.mode}) ${op.key} -> ${op.outcome === 'ok' ? (op.value ?? 'nil') : '?'}`;
  const end = op.completeMs === undefined ? '…' : op.completeMs.toFixed(0);
  const at = op.instanceId === undefined ? '' : ` @${op.instanceId}`;
  return `#${op.id} c${op.client} n${op.node} ${what} [${op.invokeMs.toFixed(0)}, ${end}] ms ${op.outcome ?? 'pending'}${at}${op.detail ? ` (${op.detail})` : ''}${op.final ? ' final' : ''}`;
}

/** The register ops of one key: writes that may have happened, and ok reads of the given modes. */
export function registerOps(history: Op[], key: string, modes: ReadMode[]): RegisterOp[] {
  const out: RegisterOp[] = [];
  for (const op of history) {
    if (op.key !== key || op.completeMs === undefined) continue;
    if (op.kind === 'write') {
      if (op.outcome === 'fail') continue;
      const returnMs = op.outcome === 'ok' ? op.completeMs : Infinity;
      out.push({ id: op.id, kind: 'write', value: op.value, invokeMs: op.invokeMs, returnMs });
    } else if (op.outcome === 'ok' && modes.includes(op.mode!)) {
      out.push({
        id: op.id,
        kind: 'read',
        value: op.value,
        invokeMs: op.invokeMs,
        returnMs: op.completeMs,
      });
    }
  }
  return out;
}

export interface KeyVerdict {
  key: string;
  verdict: RegisterVerdict;
  /** What a reader can see at once when the verdict is negative (stale reads, unwritten values). */
  anomalies: string[];
}

/**
 * Sufficient signs of a non-linearizable history, each shown with the ops involved: a read of a
 * value no write that may have happened wrote (e.g. a write answered 503), and a read that
 * returned a value overwritten by a write acknowledged before the read began.
 */
export function obviousAnomalies(history: Op[], key: string, modes: ReadMode[]): string[] {
  const out: string[] = [];
  const writes = history.filter((o) => o.key === key && o.kind === 'write');
  const byValue = new Map(writes.map((w) => [w.value, w]));
  const reads = history.filter(
    (o) => o.key === key && o.kind === 'read' && o.outcome === 'ok' && modes.includes(o.mode!),
  );
  for (const r of reads) {
    const source = r.value === null ? undefined : byValue.get(r.value);
    if (r.value !== null && (source === undefined || source.outcome === 'fail')) {
      out.push(
        `read of a value never applied: ${describeOp(r)}; its write: ${source ? describeOp(source) : 'none'}`,
      );
      continue;
    }
    // A write acknowledged after the source was acknowledged (or after it was invoked, when the
    // source's outcome is unknown), whose ack came before the read began: the read is stale.
    const sourceDoneMs = source?.outcome === 'ok' ? source.completeMs! : (source?.invokeMs ?? -1);
    const newer = writes.find(
      (w) =>
        w !== source &&
        w.outcome === 'ok' &&
        w.invokeMs > sourceDoneMs &&
        w.completeMs! < r.invokeMs,
    );
    if (newer !== undefined)
      out.push(
        `stale read: ${describeOp(r)} after ${describeOp(newer)}, which superseded ${source ? describeOp(source) : 'the initial nil'}`,
      );
  }
  return out;
}

/** Checks each key's writes and reads of `modes` (P-compositionality: keys are independent). */
export function checkKeys(history: Op[], keys: string[], modes: ReadMode[]): KeyVerdict[] {
  return keys.map((key) => {
    const verdict = checkRegister(registerOps(history, key, modes));
    return {
      key,
      verdict,
      anomalies: verdict.result === 'linearizable' ? [] : obviousAnomalies(history, key, modes),
    };
  });
}

/**
 * Plain and lease reads (judged below on their own contract): each must return nil or a value some write
 * that may have happened wrote, invoked before the read returned.
 */
export function plainReadAnomalies(history: Op[]): string[] {
  const writes = new Map(history.filter((o) => o.kind === 'write').map((w) => [w.value, w]));
  const out: string[] = [];
  for (const r of history) {
    if (r.kind !== 'read' || r.mode === 'consistent' || r.outcome !== 'ok' || r.value === null)
      continue;
    const w = writes.get(r.value);
    if (w === undefined || w.key !== r.key || w.outcome === 'fail' || w.invokeMs > r.completeMs!)
      out.push(
        `${r.mode} read of a value never applied: ${describeOp(r)}; its write: ${w ? describeOp(w) : 'none'}`,
      );
  }
  return out;
}

/** The ops of `key` overlapping [fromMs, toMs], in invocation order: the excerpt of a report. */
export function excerpt(history: Op[], key: string, fromMs: number, toMs: number): string[] {
  return history
    .filter(
      (o) =>
        o.key === key &&
        o.invokeMs <= toMs &&
        (o.completeMs ?? Infinity) >= fromMs &&
        !(o.kind === 'read' && o.outcome !== 'ok'),
    )
    .sort((a, b) => a.invokeMs - b.invokeMs)
    .map(describeOp);
}

/**
 * Writes answered with an instance at or below the instance of an op (write or consistent read)
 * acknowledged before they were invoked: their proposal cannot have been chosen there (it did not
 * exist yet), so the node claimed another proposal's instance (issue 17 finding 1). Consistent
 * reads answered below such an op: a quorum read reflects every instance below its read index,
 * at least up to that op's (issue 22; it may equal it: a read proposes nothing). Keys do not
 * matter: one group, one log.
 */
export function instanceOrderAnomalies(history: Op[]): string[] {
  const logged = history.filter(
    (o) =>
      o.outcome === 'ok' &&
      o.instanceId !== undefined &&
      (o.kind === 'write' || o.mode === 'consistent'),
  );
  const byCompletion = [...logged].sort((a, b) => a.completeMs! - b.completeMs!);
  const byInvocation = [...logged].sort((a, b) => a.invokeMs - b.invokeMs);
  const out: string[] = [];
  let highest: Op | undefined;
  let next = 0;
  for (const op of byInvocation) {
    for (; next < byCompletion.length && byCompletion[next]!.completeMs! < op.invokeMs; next++) {
      const done = byCompletion[next]!;
      if (highest === undefined || done.instanceId! > highest.instanceId!) highest = done;
    }
    if (highest === undefined) continue;
    const top = highest.instanceId!;
    if (op.kind === 'write' ? op.instanceId! <= top : op.instanceId! < top)
      out.push(
        `answered at an instance chosen before it began: ${describeOp(op)}; acknowledged before it: ${describeOp(highest)}`,
      );
  }
  return out;
}

/**
 * What apps/node/README.md promises of `?consistent=lease` today: the master has applied every
 * write it acknowledged itself. A lease read answered at an instance below a write the same node
 * acknowledged before the read began missed it. (Linearizability against every node's writes is
 * issue 18's promise, checked with leaseReads 'linearizable'.) Lease reads' values are checked as
 * plain reads' are (a value some write that may have happened wrote).
 */
export function leaseOwnWriteAnomalies(history: Op[]): string[] {
  const out: string[] = [];
  const acked = history.filter(
    (o) => o.kind === 'write' && o.outcome === 'ok' && o.instanceId !== undefined,
  );
  for (const r of history) {
    if (r.kind !== 'read' || r.mode !== 'lease' || r.outcome !== 'ok') continue;
    if (r.instanceId === undefined) {
      out.push(`lease read without an instance id: ${describeOp(r)}`);
      continue;
    }
    const missed = acked.find(
      (w) => w.node === r.node && w.completeMs! < r.invokeMs && w.instanceId! > r.instanceId!,
    );
    if (missed !== undefined)
      out.push(`lease read missed its own node's write: ${describeOp(r)}; ${describeOp(missed)}`);
  }
  return out;
}
