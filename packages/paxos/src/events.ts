// The node's events (issue 9: progress as data, without polling status()): a small typed
// emitter, not node:events, so the core loads anywhere. A listener that throws is a bug of the
// listener: the error goes up to the group's task, which reports it (never swallowed here).
import type { CatchUpSummary } from '@tspaxos/learner';

export interface NodeEvents {
  /** Instances were learned and executed: the group's now instance id is `instanceId`. */
  learned: { group: number; instanceId: number; count: number };
  /** This node found itself behind and confirmed a peer to stream from. */
  catchUpStarted: {
    group: number;
    fromNodeId: number;
    beginInstanceId: number;
    targetInstanceId: number;
  };
  /** A catch-up reached its target. */
  caughtUp: { group: number } & CatchUpSummary;
}

export type NodeEventName = keyof NodeEvents;
type Listener<K extends NodeEventName> = (event: NodeEvents[K]) => void;

export class NodeEventEmitter {
  private readonly listeners: { [K in NodeEventName]: Array<Listener<K>> } = {
    learned: [],
    catchUpStarted: [],
    caughtUp: [],
  };

  /** Adds a listener; returns the function that removes it. */
  on<K extends NodeEventName>(name: K, listener: Listener<K>): () => void {
    const list = this.listeners[name] as Array<Listener<K>>;
    list.push(listener);
    return () => {
      const i = list.indexOf(listener);
      if (i >= 0) list.splice(i, 1);
    };
  }

  hasListeners(name: NodeEventName): boolean {
    return this.listeners[name].length > 0;
  }

  emit<K extends NodeEventName>(name: K, event: NodeEvents[K]): void {
    const list = this.listeners[name] as Array<Listener<K>>;
    if (list.length === 0) return;
    for (const listener of [...list]) listener(event);
  }
}
