// A state machine that records what it executes, so the simulator can compare nodes.
import type { ExecuteContext, StateMachine } from '@tspaxos/paxos';

export const RECORDER_SM_ID = 10;

export class RecordingStateMachine implements StateMachine {
  readonly smId = RECORDER_SM_ID;

  constructor(private readonly onExecute: (instanceId: number, value: string) => void) {}

  execute(value: Uint8Array, ctx: ExecuteContext): string {
    const text = new TextDecoder().decode(value);
    this.onExecute(ctx.instanceId, text);
    return `applied ${text}`;
  }
}
