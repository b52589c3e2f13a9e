// Agreement and validity, checked at every execute: a node executes a value at most once per
// instance, only values someone proposed, and the k-th value of an instance's batch is the same on
// every node (the first node to execute it decides what the others are compared with).
import type { Invariant } from '../result';

export interface ExecutedEvent {
  kind: 'executed';
  node: number;
  group: number;
  instanceId: number;
  value: string;
  /** Values this incarnation of the node executed at this instance before this one. */
  before: readonly string[];
  /** The event being run, for the message. */
  during: string;
}

export class AgreementChecker {
  /** group → instanceId → values chosen there, in batch order (the first node to execute decides). */
  readonly chosen: Array<Map<number, string[]>> = [];

  /** `proposed`: every value the workload proposed (validity); `fail` records the violation. */
  constructor(
    groups: number,
    private readonly proposed: ReadonlySet<string>,
    private readonly fail: (invariant: Invariant, message: string) => void,
  ) {
    for (let g = 0; g < groups; g++) this.chosen.push(new Map());
  }

  observe(e: ExecutedEvent): void {
    const { node, group, instanceId, value } = e;
    if (e.before.includes(value))
      this.fail(
        'agreement',
        `n${node} executed "${value}" at group ${group} instance ${instanceId} twice (during event "${e.during}")`,
      );
    const k = e.before.length;
    if (!this.proposed.has(value)) {
      this.fail(
        'validity',
        `n${node} executed "${value}" at group ${group} instance ${instanceId}, which nobody proposed`,
      );
      return;
    }
    const global = this.chosen[group]!.get(instanceId) ?? [];
    if (k < global.length) {
      if (global[k] !== value) {
        this.fail(
          'agreement',
          `group ${group} instance ${instanceId} item ${k}: n${node} executed "${value}" but another node executed "${global[k]}"`,
        );
      }
    } else {
      global.push(value);
      this.chosen[group]!.set(instanceId, global);
    }
  }

  /** Instances chosen, over every group (coverage). */
  finish(): number {
    return this.chosen.reduce((a, m) => a + m.size, 0);
  }
}
