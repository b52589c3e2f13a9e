// What clients were told, checked against what was chosen (issue 17): every acknowledged proposal
// (a write, a barrier) said "chosen at instance i", so the value chosen at i must carry that
// proposal's identity (@tspaxos/paxos value.ts). Equal bytes are not enough: a node that took
// another node's equal value (or another barrier) for its own answered for a proposal that was
// never chosen, and the log-only checks (agreement, durability by value) cannot see it.
import type { ProposalIdentity } from '@tspaxos/paxos/internal';

export type IdentityEvent =
  /** A proposal was answered "chosen at instanceId" (`what` names it in a violation). */
  | {
      kind: 'acknowledged';
      group: number;
      instanceId: number;
      identity: ProposalIdentity;
      node: number;
      what: string;
    }
  /** A node holds instanceId as chosen, with this value identity (undefined: none in the value). */
  | {
      kind: 'chosen';
      group: number;
      instanceId: number;
      identity: ProposalIdentity | undefined;
      node: number;
    };

export interface IdentityCheckerCounts {
  /** Acknowledgements compared with the chosen value's identity. */
  checked: number;
  /** Acknowledgements whose instance no node's log still held when it was read (compacted). */
  unverified: number;
}

function same(a: ProposalIdentity | undefined, b: ProposalIdentity): boolean {
  return (
    a !== undefined &&
    a.nodeId === b.nodeId &&
    a.incarnation === b.incarnation &&
    a.sequence === b.sequence
  );
}

function show(id: ProposalIdentity | undefined): string {
  return id === undefined ? 'no identity' : `(n${id.nodeId}, ${id.incarnation}, ${id.sequence})`;
}

/** observe() every acknowledgement and every chosen value seen; finish() once at the end. */
export class AcknowledgedIdentityChecker {
  readonly counts: IdentityCheckerCounts = { checked: 0, unverified: 0 };
  /** `group:instance` → the identity of the value chosen there (the first node seen decides). */
  private readonly chosen = new Map<string, ProposalIdentity | undefined>();
  /** `group:instance` → acknowledgements not yet compared (their instance not seen chosen yet). */
  private readonly waiting = new Map<string, Array<IdentityEvent & { kind: 'acknowledged' }>>();

  constructor(private readonly fail: (message: string) => void) {}

  observe(event: IdentityEvent): void {
    const key = `${event.group}:${event.instanceId}`;
    if (event.kind === 'chosen') {
      if (this.chosen.has(key)) return; // agreement between nodes is the agreement check's
      this.chosen.set(key, event.identity);
      const acks = this.waiting.get(key);
      if (acks === undefined) return;
      this.waiting.delete(key);
      for (const ack of acks) this.compare(ack, event.identity);
      return;
    }
    if (this.chosen.has(key)) this.compare(event, this.chosen.get(key));
    else {
      const acks = this.waiting.get(key) ?? [];
      acks.push(event);
      this.waiting.set(key, acks);
    }
  }

  /** Acknowledgements whose instance was never seen chosen are counted, not failed (compacted). */
  finish(): void {
    for (const acks of this.waiting.values()) this.counts.unverified += acks.length;
    this.waiting.clear();
  }

  private compare(
    ack: IdentityEvent & { kind: 'acknowledged' },
    chosen: ProposalIdentity | undefined,
  ): void {
    this.counts.checked++;
    if (same(chosen, ack.identity)) return;
    this.fail(
      `${ack.what} was acknowledged by n${ack.node} as chosen at group ${ack.group} instance ${ack.instanceId} with identity ${show(ack.identity)}, but the value chosen there has ${show(chosen)}`,
    );
  }
}
