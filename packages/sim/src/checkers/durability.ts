// Durability of what clients were told: every acknowledged proposal is, at its instance, in every
// node's log at the end of the run (after healing and convergence).
export interface AcknowledgedEvent {
  kind: 'acknowledged';
  group: number;
  instanceId: number;
  value: string;
  node: number;
}

export class DurabilityChecker {
  readonly acknowledged: AcknowledgedEvent[] = [];

  /**
   * `nodes`: each node's id and the values its current incarnation executed at an instance;
   * `fail` records the violation and throws.
   */
  constructor(
    private readonly nodes: ReadonlyArray<{
      readonly id: number;
      executedAt(group: number, instanceId: number): readonly string[];
    }>,
    private readonly fail: (message: string) => never,
  ) {}

  observe(e: AcknowledgedEvent): void {
    this.acknowledged.push(e);
  }

  /** The highest acknowledged instance of a group (-1: none). */
  lastAcknowledged(group: number): number {
    let last = -1;
    for (const a of this.acknowledged) if (a.group === group) last = Math.max(last, a.instanceId);
    return last;
  }

  finish(): void {
    for (const ack of this.acknowledged) {
      for (const n of this.nodes) {
        const values = n.executedAt(ack.group, ack.instanceId);
        if (!values.includes(ack.value)) {
          this.fail(
            `"${ack.value}" was acknowledged at group ${ack.group} instance ${ack.instanceId} by n${ack.node} but n${n.id} has ${JSON.stringify(values)} there`,
          );
        }
      }
    }
  }
}
