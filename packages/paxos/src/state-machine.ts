// The state machine interface (PhxPaxos include/phxpaxos/sm.h), and the system state machine
// that keeps the group's membership in its system variables.
import type { CheckpointStateMachine } from '@tspaxos/checkpoint';
import { PaxosError } from './errors';
import { IDENTIFIED_SM_ID, SYSTEM_SM_ID } from './value';

/** What execute() is told besides the value. */
export interface ExecuteContext {
  group: number;
  instanceId: number;
  /** True when this node proposed the value and a caller waits for the result. */
  isMine: boolean;
}

/**
 * A state machine: `execute` applies chosen values; the PhxPaxos checkpoint hooks
 * (getCheckpointInstanceId, lock/get/unlock/loadCheckpointState, executeForCheckpoint) are those
 * of @tspaxos/checkpoint's CheckpointStateMachine, which this extends.
 */
export interface StateMachine extends CheckpointStateMachine {
  /** Which values are mine: 4 … 2^32 − 2 (0 means "no state machine", 1–3 and 2^32 − 1 are reserved). */
  readonly smId: number;
  /**
   * Applies a chosen value. Must be deterministic; its return value is handed to the proposer's
   * caller. Throwing keeps the instance unapplied: it is retried, the group does not advance.
   * It may return a promise: the group awaits it before it applies anything else (values stay in
   * log order, replay included), the caller gets what it resolves to, and a rejection counts as
   * a throw. Each such value then costs the group at least one turn of the event loop.
   */
  execute(value: Uint8Array, ctx: ExecuteContext): unknown;
  /**
   * True when this machine keeps no view of a value past its execute() (its state, its result,
   * work it starts: each copies what it needs, as a write to SQLite or a decode does): the node
   * may then reuse the memory a value learned from a peer arrived in once it is executed (a
   * catch-up's receive buffers, issue 22: ~25 % more MB/s for 100 KiB values). Absent or false:
   * such buffers are left to the garbage collector. Every machine of a group must say true.
   */
  readonly copiesValues?: boolean;
  /**
   * An instance was executed that carried nothing for this machine (another machine's value, a
   * barrier, a master renewal): called after its items, in log order, during the replay at start
   * as during normal running. A machine that records the instance it reached advances over it,
   * so its checkpoint reflects the whole log even when none of the latest instances were its
   * own (a peer whose log starts above an older checkpoint refuses that one). Not called for the
   * instances the machine executes itself. Must not throw.
   */
  executeOther?(ctx: ExecuteContext): void;
  /**
   * The highest instance whose effect this machine holds now, in its own storage (durable or
   * not: after a crash, what survived); -1 when none. The replay at start begins at the lowest
   * of these instead of after the checkpoints, so a restart reads the log's unapplied tail, not
   * everything since the last checkpoint (PhxPaxos PlayLog starts at GetCheckpointInstanceID,
   * which a machine that persists every instance, as PhxKV, reports this way). That instance
   * itself is replayed again (the system and master machines re-check it: its writes may not
   * have been durable yet), so the machine must skip what it holds, as it already does for the
   * instances between its checkpoint and here. Without it: after the checkpoint.
   */
  getAppliedInstanceId?(group: number): number;
}

/** Membership of a group and its version (PhxPaxos SystemVariables). */
export interface SystemVariables {
  version: number;
  members: number[];
  /**
   * Opaque application data that changes only with the membership, through the same value (the
   * server keeps its members' addresses here). A change without it keeps the current one.
   */
  meta?: string;
}

/** Longest `meta` (ours: it rides in every SendNowInstanceID and checkpoint; well under a frame). */
export const MAX_SYSTEM_META_BYTES = 64 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A string of at most MAX_SYSTEM_META_BYTES bytes of UTF-8. */
export function isSystemMeta(meta: unknown): meta is string {
  return typeof meta === 'string' && encoder.encode(meta).length <= MAX_SYSTEM_META_BYTES;
}

export function encodeSystemVariables(v: SystemVariables): Uint8Array {
  return encoder.encode(
    JSON.stringify({
      version: v.version,
      members: v.members,
      ...(v.meta !== undefined ? { meta: v.meta } : {}),
    }),
  );
}

/** Parses system variables from a peer or the disk; undefined when malformed. */
export function decodeSystemVariables(bytes: Uint8Array): SystemVariables | undefined {
  try {
    const v = JSON.parse(decoder.decode(bytes)) as unknown;
    if (typeof v !== 'object' || v === null) return undefined;
    const { version, members, meta } = v as { version: unknown; members: unknown; meta: unknown };
    if (!Number.isSafeInteger(version) || (version as number) < 0) return undefined;
    if (!Array.isArray(members) || members.length === 0) return undefined;
    if (!members.every((m) => Number.isSafeInteger(m) && m > 0)) return undefined;
    if (meta !== undefined && !isSystemMeta(meta)) return undefined;
    return {
      version: version as number,
      members: [...new Set(members as number[])].sort((a, b) => a - b),
      ...(meta !== undefined ? { meta } : {}),
    };
  } catch {
    return undefined;
  }
}

/** The value that changes membership: applied only if the version is still `fromVersion`. */
export interface MembershipChange {
  fromVersion: number;
  members: number[];
  meta?: string;
}

/**
 * The system state machine (PhxPaxos SystemVSM). A change applies only when proposed against the
 * current version, so two concurrent changes cannot both apply; every node applies the same
 * changes in log order and so agrees on the members.
 */
export class SystemStateMachine implements StateMachine {
  readonly smId = SYSTEM_SM_ID;
  /** A change is parsed from JSON: nothing keeps the value's bytes. */
  readonly copiesValues = true;
  private variables: SystemVariables;

  constructor(
    initial: SystemVariables,
    private readonly persist: (v: SystemVariables) => void,
  ) {
    this.variables = copy(initial);
  }

  get current(): Readonly<SystemVariables> {
    return this.variables;
  }

  execute(value: Uint8Array): { applied: boolean; version: number } {
    const change = decodeSystemVariables(value);
    if (change === undefined) return { applied: false, version: this.variables.version };
    // The encoded "version" of a change is the version it was proposed against.
    if (change.version !== this.variables.version)
      return { applied: false, version: this.variables.version };
    const meta = change.meta ?? this.variables.meta;
    this.variables = {
      version: change.version + 1,
      members: change.members,
      ...(meta !== undefined ? { meta } : {}),
    };
    this.persist(this.variables);
    return { applied: true, version: this.variables.version };
  }

  /** Adopts a peer's newer variables (from SendNowInstanceID); true when they changed. */
  adopt(v: SystemVariables): boolean {
    if (v.version <= this.variables.version) return false;
    this.variables = copy(v);
    this.persist(this.variables);
    return true;
  }
}

function copy(v: SystemVariables): SystemVariables {
  return {
    version: v.version,
    members: [...v.members],
    ...(v.meta !== undefined ? { meta: v.meta } : {}),
  };
}

export function checkStateMachines(machines: readonly StateMachine[]): void {
  const seen = new Set<number>();
  for (const sm of machines) {
    if (!Number.isSafeInteger(sm.smId) || sm.smId < 0 || sm.smId > 0xffffffff) {
      throw new PaxosError('E_BAD_ARGUMENT', `state machine id ${String(sm.smId)} is not a u32`);
    }
    if (sm.smId <= 3 || sm.smId === IDENTIFIED_SM_ID) {
      throw new PaxosError(
        'E_BAD_ARGUMENT',
        `state machine id ${sm.smId} is reserved (0 none, 1 system, 2 master, 3 batch, ${IDENTIFIED_SM_ID} identity header)`,
      );
    }
    if (seen.has(sm.smId))
      throw new PaxosError('E_BAD_ARGUMENT', `two state machines with id ${sm.smId}`);
    seen.add(sm.smId);
  }
}
