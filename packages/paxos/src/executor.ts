// The group's state machines and how a chosen value is executed on them (PhxPaxos SMFac):
// a value is unpacked into items, each executed on the machine its smId names, in order.
import { PaxosError } from './errors';
import { isPromiseLike } from './scheduler';
import type { ExecuteContext, StateMachine } from './state-machine';
import { NO_SM_ID, type SmValue, unpackValue } from './value';

export class Executor {
  private readonly machines = new Map<number, StateMachine>();
  /** Kept in the log's meta (system and master machines): no checkpoint, no hold on compaction. */
  private readonly inMeta = new Set<StateMachine>();

  constructor(
    private readonly group: number,
    machines: readonly StateMachine[],
    metaMachines: readonly StateMachine[],
  ) {
    for (const sm of machines) this.machines.set(sm.smId, sm);
    for (const sm of metaMachines) {
      this.machines.set(sm.smId, sm);
      this.inMeta.add(sm);
    }
  }

  has(smId: number): boolean {
    return this.machines.has(smId);
  }

  get(smId: number): StateMachine | undefined {
    return this.machines.get(smId);
  }

  all(): Iterable<StateMachine> {
    return this.machines.values();
  }

  /**
   * The state machines whose state lives outside the log's meta: the system (membership) and
   * master state machines keep theirs in meta (kept by a log reset, as PhxPaxos's
   * Database::ClearAllLog keeps both), so they neither hold back compaction nor need a checkpoint.
   */
  userMachines(): StateMachine[] {
    return [...this.machines.values()].filter((sm) => !this.inMeta.has(sm));
  }

  /**
   * Executes every state machine a value is for; returns their results in value order. An
   * execute() that returns a promise is awaited before the next item (and the group waits for it
   * before the next instance): its rejection is an execute failure, as a throw is. Synchronous
   * otherwise: a streamed batch executes thousands of instances in a row.
   */
  execute(
    instanceId: number,
    packed: Uint8Array,
    isMine: boolean | undefined,
  ): unknown[] | Promise<unknown[]> {
    const items = unpackValue(packed);
    const results: unknown[] = [];
    for (let i = 0; i < items.length; i++) {
      const result = this.executeItem(instanceId, items[i]!, isMine);
      if (isPromiseLike(result))
        return this.executeRest(instanceId, items, i, result, results, isMine);
      results.push(result);
    }
    this.executeOthers(instanceId, items, isMine);
    return results;
  }

  /**
   * Tells every user machine the value had nothing for that it was executed (executeOther).
   * PhxPaxos SMFac::Execute skips such values ("Value no need to do sm, just skip") and
   * DoExecute reaches only the machine the smId names; its checkpoint sender sends whatever
   * instance the machine reports. Here a receiver refuses a checkpoint below its own log start,
   * so a machine must be able to reflect the log's end without a value of its own in it.
   */
  private executeOthers(
    instanceId: number,
    items: readonly SmValue[],
    isMine: boolean | undefined,
  ): void {
    for (const sm of this.machines.values()) {
      if (sm.executeOther === undefined || this.inMeta.has(sm)) continue;
      if (items.some((item) => item.smId === sm.smId)) continue;
      sm.executeOther({ group: this.group, instanceId, isMine: isMine === true });
    }
  }

  /** Applies a value to the machines while a checkpoint is made (false: one refused). */
  executeForCheckpoint(instanceId: number, packed: Uint8Array): boolean {
    for (const item of unpackValue(packed)) {
      const sm = this.machines.get(item.smId);
      if (sm?.executeForCheckpoint?.(this.group, instanceId, item.value) === false) return false;
    }
    return true;
  }

  /** The rest of execute() once an execute() returned a promise: one item at a time. */
  private async executeRest(
    instanceId: number,
    items: readonly SmValue[],
    at: number,
    pending: PromiseLike<unknown>,
    results: unknown[],
    isMine: boolean | undefined,
  ): Promise<unknown[]> {
    results.push(await pending);
    for (let i = at + 1; i < items.length; i++) {
      results.push(await this.executeItem(instanceId, items[i]!, isMine));
    }
    this.executeOthers(instanceId, items, isMine);
    return results;
  }

  private executeItem(instanceId: number, item: SmValue, isMine: boolean | undefined): unknown {
    if (item.smId === NO_SM_ID) return undefined;
    const sm = this.machines.get(item.smId);
    if (sm === undefined) {
      throw new PaxosError(
        'E_UNKNOWN_STATE_MACHINE',
        `instance ${instanceId} is for state machine ${item.smId}, which this node does not have`,
      );
    }
    const ctx: ExecuteContext = { group: this.group, instanceId, isMine: isMine === true };
    return sm.execute(item.value, ctx);
  }
}
