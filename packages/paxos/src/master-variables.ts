// The master variables (the log's record of who is master, PhxPaxos MasterVariables), the
// operation a node proposes to become or stay master (PhxPaxos MasterOperator), and their
// encodings: in a log value, in the meta `masterVariables`, on the wire, and in what a checkpoint
// carries besides its files. Decoding validates every field and returns undefined on bad input.
import {
  decodeSystemVariables,
  encodeSystemVariables,
  type SystemVariables,
} from './state-machine';

/** The master variables (PhxPaxos MasterVariables): the log's state, the same on every node. */
export interface MasterVariables {
  masterNodeId: number;
  /** Instance id of the operation that made this master (PhxPaxos m_llMasterVersion). */
  version: number;
  leaseMs: number;
}

/** The value a node proposes (PhxPaxos MasterOperator). */
export interface MasterOperation {
  nodeId: number;
  /** The master version the proposer saw; NO_MASTER_VERSION when there was none. */
  version: number;
  leaseMs: number;
  /** True when the proposer was the recorded master (a renewal); informational only. */
  renewal: boolean;
  /** Makes each proposal's bytes unique and lets the proposer recognise its own (PhxPaxos sid). */
  nonce: number;
}

/** Version before any master operation was applied (PhxPaxos uses (uint64)-1). */
export const NO_MASTER_VERSION = -1;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function isId(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) > 0;
}

function isVersion(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= NO_MASTER_VERSION;
}

function isLease(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) > 0;
}

function parse(bytes: Uint8Array): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(decoder.decode(bytes)) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined; // not JSON: the caller counts it as malformed
  }
}

export function encodeMasterVariables(v: MasterVariables): Uint8Array {
  return encoder.encode(
    JSON.stringify({ masterNodeId: v.masterNodeId, version: v.version, leaseMs: v.leaseMs }),
  );
}

/** Parses master variables from a peer or the disk; undefined when malformed. */
export function decodeMasterVariables(bytes: Uint8Array): MasterVariables | undefined {
  const v = parse(bytes);
  if (v === undefined) return undefined;
  const { masterNodeId, version, leaseMs } = v;
  if (!isId(masterNodeId) || !isVersion(version) || version < 0 || !isLease(leaseMs))
    return undefined;
  return { masterNodeId, version, leaseMs };
}

/**
 * What meta `masterVariables` holds: the variables, or NO_MASTER_YET, written when a group starts
 * with an empty log, so that a missing record later means "lost" (e.g. a checkpoint install that
 * did not keep it), not "no master operation yet".
 */
export const NO_MASTER_YET = 'none';

/**
 * `asOf`: the first instance the variables do not reflect, when they came from a peer ahead of
 * this node's log (a checkpoint's sender); 0 (left out) when they reflect this node's own log.
 */
export function encodeStoredMaster(
  v: MasterVariables | typeof NO_MASTER_YET,
  asOf = 0,
): Uint8Array {
  const fields = v === NO_MASTER_YET ? { none: true } : { ...v };
  return encoder.encode(JSON.stringify(asOf > 0 ? { ...fields, asOf } : fields));
}

/** The `asOf` of meta `masterVariables` (0 when absent or malformed: nothing skipped). */
export function decodeStoredMasterAsOf(bytes: Uint8Array): number {
  const asOf = parse(bytes)?.asOf;
  return Number.isSafeInteger(asOf) && (asOf as number) > 0 ? (asOf as number) : 0;
}

/**
 * What meta `masterVariables` holds after a checkpoint install (or a skip to a checkpoint) passed
 * master operations this node never applied: read back as "unknown" (decodeStoredMaster gives
 * undefined), so a restart does not trust stale variables either.
 */
export function encodeUnknownMaster(): Uint8Array {
  return encoder.encode('{"unknown":true}');
}

/** Parses meta `masterVariables`; undefined when malformed. */
export function decodeStoredMaster(
  bytes: Uint8Array,
): MasterVariables | typeof NO_MASTER_YET | undefined {
  if (parse(bytes)?.none === true) return NO_MASTER_YET;
  return decodeMasterVariables(bytes);
}

/**
 * The group state a checkpoint carries to its receiver (BEGIN's buffer, then the manifest; see
 * MasterStateMachine.restore): the sender's master variables (undefined: unknown there too) and
 * membership, both as of its log up to `asOf`, its now instance id when BEGIN left.
 */
export interface CarriedGroupState {
  asOf: number;
  master: MasterVariables | typeof NO_MASTER_YET | undefined;
  system: SystemVariables;
}

export function encodeCarriedGroupState(s: CarriedGroupState): string {
  return JSON.stringify({
    asOf: s.asOf,
    master: s.master === undefined ? null : decoder.decode(encodeStoredMaster(s.master)),
    system: decoder.decode(encodeSystemVariables(s.system)),
  });
}

/** Parses a checkpoint's carried state; undefined when none ('') or malformed. */
export function decodeCarriedGroupState(text: string): CarriedGroupState | undefined {
  const v = parse(encoder.encode(text));
  if (v === undefined || !isId(v.asOf) || typeof v.system !== 'string') return undefined;
  const system = decodeSystemVariables(encoder.encode(v.system));
  if (system === undefined) return undefined;
  if (v.master === null) return { asOf: v.asOf, master: undefined, system };
  if (typeof v.master !== 'string') return undefined;
  const master = decodeStoredMaster(encoder.encode(v.master));
  return master === undefined ? undefined : { asOf: v.asOf, master, system };
}

export function encodeMasterOperation(op: MasterOperation): Uint8Array {
  return encoder.encode(
    JSON.stringify({
      nodeId: op.nodeId,
      version: op.version,
      leaseMs: op.leaseMs,
      renewal: op.renewal,
      nonce: op.nonce,
    }),
  );
}

/** Parses an operation from the log; undefined when malformed. */
export function decodeMasterOperation(bytes: Uint8Array): MasterOperation | undefined {
  const v = parse(bytes);
  if (v === undefined) return undefined;
  const { nodeId, version, leaseMs, renewal, nonce } = v;
  if (!isId(nodeId) || !isVersion(version) || !isLease(leaseMs)) return undefined;
  if (typeof renewal !== 'boolean' || !Number.isSafeInteger(nonce)) return undefined;
  return { nodeId, version, leaseMs, renewal, nonce: nonce as number };
}
