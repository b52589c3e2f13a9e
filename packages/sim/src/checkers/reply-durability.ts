// Paxos's only durability rule: an acceptor persists before it replies. After a crash, every
// promise and accept the dead incarnation sent must be in its durable log: the record of that
// instance promises at least the ballot replied to, and holds an accepted value if it accepted
// one (a learned value written over it later keeps the promise, and is a value).
import type { LogStore } from '@tspaxos/storage';
import { type AcceptorReply, compareBallot } from '../sim-node';

export interface CrashedEvent {
  kind: 'crashed';
  node: number;
  /** What the dead incarnation's acceptors replied (SimNode.replies before the crash). */
  replies: ReadonlyMap<string, AcceptorReply>;
  /** The node's durable log after the crash. */
  store: Pick<LogStore, 'get' | 'getMinChosenInstanceId'>;
  during: string;
}

export class ReplyDurabilityChecker {
  readonly counts = { checked: 0 };

  /** `fail` records the violation and throws. */
  constructor(private readonly fail: (message: string) => never) {}

  observe(e: CrashedEvent): void {
    for (const r of e.replies.values()) {
      // Compacted away (below the min chosen id, or the log reset by a checkpoint install): the
      // instance is chosen and in a checkpoint, its acceptor state is no longer needed.
      if (r.instanceId < e.store.getMinChosenInstanceId(r.group)) continue;
      this.counts.checked++;
      const record = e.store.get(r.group, r.instanceId);
      const promise: [number, number] = [record?.promiseId ?? 0, record?.promiseNodeId ?? 0];
      const lost =
        record === undefined ||
        compareBallot(promise, r.ballot) < 0 ||
        (r.accepted && record.acceptedId === 0);
      if (lost)
        this.fail(
          `n${e.node} group ${r.group} instance ${r.instanceId}: it replied ${r.accepted ? 'accepting' : 'promising'} ballot (${r.ballot.join(',')}), but after its crash its log holds ${record === undefined ? 'nothing' : `promise (${promise.join(',')}) accepted ${record.acceptedId}`} (during event "${e.during}")`,
        );
    }
  }

  finish(): void {}
}
