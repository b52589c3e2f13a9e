// Barrier reads checked against the writes clients were told about (issue 17): per key, a
// register written by acknowledged (or unsettled) writes and read by barrier reads
// (`batchPropose(empty, NO_SM_ID)`, then the node's own state, as apps/node serves
// `?consistent=true`). The check is a necessary condition of linearizability for a register, so
// every violation it reports is real (sound), though it does not find every non-linearizable
// history (no Wing–Gong search):
//
//   A read that began at b, ended at e and returned x must be explained by a write W of x that
//   began before e and that no write acknowledged before b is forced to follow: there is no W2
//   with ack(W2) < b and begin(W2) > ack(W) (W →rt W2 →rt read would hide W). A read of the
//   initial (absent) value is explained only if no write was acknowledged before b.
//
// A write whose outcome the client never learned (timeout, crash, stop) may or may not have taken
// effect: it counts as begun and never acknowledged, which allows it everywhere (sound).

export type RegisterEvent =
  | { kind: 'write-begin'; id: number; key: string; value: string; atMs: number }
  | { kind: 'write-ok'; id: number; atMs: number }
  /** via: the read's path (a barrier instance, a quorum read index, a lease read index). */
  | { kind: 'read-begin'; id: number; key: string; node: number; via: string; atMs: number }
  /** value undefined: the key was never written (as the node's state says). */
  | { kind: 'read-ok'; id: number; value: string | undefined; instanceId: number; atMs: number };

interface Write {
  value: string;
  beginMs: number;
  ackMs: number;
}

interface Read {
  key: string;
  node: number;
  via: string;
  beginMs: number;
  endMs: number;
  value: string | undefined;
  instanceId: number;
}

export interface RegisterCheckerCounts {
  writes: number;
  writesAcknowledged: number;
  readsChecked: number;
}

/** observe() each begin and acknowledgement as it happens; finish() checks every read. */
export class RegisterLinearizabilityChecker {
  readonly counts: RegisterCheckerCounts = { writes: 0, writesAcknowledged: 0, readsChecked: 0 };
  private readonly writes = new Map<number, Write>();
  private readonly writesByKey = new Map<string, Write[]>();
  private readonly reads: Read[] = [];
  private readonly readsBegun = new Map<
    number,
    { key: string; node: number; via: string; beginMs: number }
  >();

  constructor(private readonly fail: (message: string) => void) {}

  observe(event: RegisterEvent): void {
    switch (event.kind) {
      case 'write-begin': {
        const w: Write = { value: event.value, beginMs: event.atMs, ackMs: Infinity };
        this.writes.set(event.id, w);
        const list = this.writesByKey.get(event.key) ?? [];
        list.push(w);
        this.writesByKey.set(event.key, list);
        this.counts.writes++;
        return;
      }
      case 'write-ok':
        this.writes.get(event.id)!.ackMs = event.atMs;
        this.counts.writesAcknowledged++;
        return;
      case 'read-begin':
        this.readsBegun.set(event.id, {
          key: event.key,
          node: event.node,
          via: event.via,
          beginMs: event.atMs,
        });
        return;
      case 'read-ok': {
        const begun = this.readsBegun.get(event.id)!;
        this.readsBegun.delete(event.id);
        this.reads.push({
          ...begun,
          endMs: event.atMs,
          value: event.value,
          instanceId: event.instanceId,
        });
      }
    }
  }

  finish(): void {
    for (const r of this.reads) {
      this.counts.readsChecked++;
      const writes = this.writesByKey.get(r.key) ?? [];
      const before = writes.filter((w) => w.ackMs < r.beginMs);
      const explained =
        r.value === undefined
          ? before.length === 0
          : writes.some(
              (w) =>
                w.value === r.value &&
                w.beginMs < r.endMs &&
                !before.some((w2) => w2.beginMs > w.ackMs),
            );
      if (explained) continue;
      const latest = before.reduce<Write | undefined>(
        (a, w) => (a === undefined || w.ackMs > a.ackMs ? w : a),
        undefined,
      );
      const why =
        r.value === undefined
          ? 'a write was acknowledged before it began'
          : 'every write of that value was followed, before the read began, by an acknowledged write begun after it was acknowledged';
      this.fail(
        `a ${r.via} read of ${r.key} through n${r.node} (begun ${r.beginMs.toFixed(1)} ms, answered ${r.endMs.toFixed(1)} ms at instance ${r.instanceId}) returned ${r.value === undefined ? 'nothing' : `"${r.value}"`}, which no linearization allows: ${why} (the latest: "${latest?.value}", acknowledged at ${latest?.ackMs.toFixed(1)} ms)`,
      );
      return;
    }
  }
}
