// Prepare and Accept messages for an instance this node has not reached yet, kept to be handled
// once it gets there (PhxPaxos IOLoop::AddRetryPaxosMsg / DealWithRetry): a node a few instances
// behind takes part in the round as soon as it has learned its way there, rather than leaving the
// proposer to time out.
import type { PaxosMsg } from '@tspaxos/transport';

export class RetryQueue {
  private queue: PaxosMsg[] = [];

  /** `maxMessages`: options.retryQueueMaxMessages (also how far ahead a message may be). */
  constructor(private readonly maxMessages: number) {}

  get length(): number {
    return this.queue.length;
  }

  /** A message ahead of the acceptor's instance; one too far ahead clears the queue. */
  add(msg: PaxosMsg, acceptorInstanceId: number): void {
    if (msg.instanceId < acceptorInstanceId + this.maxMessages) {
      if (this.queue.length >= this.maxMessages) this.queue.shift();
      this.queue.push(msg);
    } else {
      this.queue = [];
    }
  }

  /** The messages for `instanceId`, taken out; those for earlier instances are dropped. */
  takeDue(instanceId: number): PaxosMsg[] {
    const due = this.queue.filter((m) => m.instanceId === instanceId);
    this.queue = this.queue.filter((m) => m.instanceId > instanceId);
    return due;
  }

  clear(): void {
    this.queue = [];
  }
}
