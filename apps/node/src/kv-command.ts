// The bytes of a KV write in the paxos log. Everything the state machine decides with travels in
// them, so every replica decides alike (the Raft dissertation §6.3: client sessions expire by a
// time the leader puts in the log, not by each server's clock): the precondition, the
// idempotency key, the proposer's clock, and the idempotency window in force at the proposer.
import { MAX_IDEMPOTENCY_KEY_BYTES, MAX_VERSION_BYTES } from './options';

/** Operation codes of the first byte. 1 and 2 are the writes of before versions (still decoded: old logs). */
export const OP_PUT = 1;
export const OP_DELETE = 2;
export const OP_WRITE = 3;

/** What a write wants to find before it applies (HTTP If-Match / If-None-Match). */
export type Precondition =
  | { kind: 'none' }
  /** If-Match: "<version>": the key exists at this version. */
  | { kind: 'version'; version: string }
  /** If-Match: *: the key exists. */
  | { kind: 'exists' }
  /** If-None-Match: *: the key does not exist (create only). */
  | { kind: 'absent' };

const PRECONDITION_CODES = ['none', 'version', 'exists', 'absent'] as const;

/** How long the state machine keeps an idempotency key: the first bound reached wins. */
export interface IdempotencyWindow {
  ms: number;
  keys: number;
}

export interface KvWrite {
  action: 'put' | 'delete';
  key: string;
  /** Empty for a delete. */
  value: Uint8Array;
  precondition: Precondition;
  /** The client's Idempotency-Key (1 … MAX_IDEMPOTENCY_KEY_BYTES bytes); undefined: none. */
  idempotencyKey?: Uint8Array;
  /**
   * The proposer's wall clock when it encoded the write; undefined for the writes of before
   * versions (OP_PUT / OP_DELETE), which carry neither a clock nor versions.
   */
  proposedAtMs?: number;
  window?: IdempotencyWindow;
}

/** A value in the log that is not a KV write: the state machine counts it and applies nothing. */
export class KvCommandError extends Error {
  override readonly name = 'KvCommandError';
  readonly code = 'E_BAD_COMMAND';
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });
/** op, action, precondition, version length, idempotency key length, f64 clock, u32 window ms, u32 window keys. */
const HEADER_BYTES = 5 + 8 + 4 + 4;

/**
 * `u8 OP_WRITE · u8 action (1 put, 2 delete) · u8 precondition (0 none, 1 version, 2 exists,
 * 3 absent) · u8 version length · u8 idempotency key length · f64 proposedAtMs · u32 window ms ·
 * u32 window keys · version (ASCII) · idempotency key · u32 key length · key (UTF-8) · value`.
 */
export function encodeWrite(w: KvWrite): Uint8Array {
  if (w.proposedAtMs === undefined || w.window === undefined)
    throw new Error('a new write carries the proposer clock and the idempotency window');
  const version = encoder.encode(w.precondition.kind === 'version' ? w.precondition.version : '');
  const idempotencyKey = w.idempotencyKey ?? new Uint8Array(0);
  const key = encoder.encode(w.key);
  if (version.length > MAX_VERSION_BYTES || idempotencyKey.length > MAX_IDEMPOTENCY_KEY_BYTES)
    throw new Error('version or idempotency key over its limit (the HTTP layer checks both)');
  const out = new Uint8Array(
    HEADER_BYTES + version.length + idempotencyKey.length + 4 + key.length + w.value.length,
  );
  const view = new DataView(out.buffer);
  out[0] = OP_WRITE;
  out[1] = w.action === 'put' ? 1 : 2;
  out[2] = PRECONDITION_CODES.indexOf(w.precondition.kind);
  out[3] = version.length;
  out[4] = idempotencyKey.length;
  view.setFloat64(5, w.proposedAtMs);
  view.setUint32(13, w.window.ms);
  view.setUint32(17, w.window.keys);
  let at = HEADER_BYTES;
  out.set(version, at);
  at += version.length;
  out.set(idempotencyKey, at);
  at += idempotencyKey.length;
  view.setUint32(at, key.length);
  out.set(key, at + 4);
  out.set(w.value, at + 4 + key.length);
  return out;
}

/** Throws KvCommandError, saying what is wrong, for bytes that are not a KV write. */
export function decodeWrite(bytes: Uint8Array): KvWrite {
  const bad = (why: string): never => {
    throw new KvCommandError(`not a KV write (${bytes.length} bytes): ${why}`);
  };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const op = bytes[0];
  if (op === OP_PUT || op === OP_DELETE) {
    const keyEnd = 5 + (bytes.length >= 5 ? view.getUint32(1) : 0);
    if (bytes.length < 5 || keyEnd > bytes.length) bad('the key runs past the end');
    return {
      action: op === OP_PUT ? 'put' : 'delete',
      key: utf8(bytes.subarray(5, keyEnd), bad),
      value: op === OP_PUT ? bytes.subarray(keyEnd) : new Uint8Array(0),
      precondition: { kind: 'none' },
    };
  }
  if (op !== OP_WRITE) bad(`unknown operation code ${op ?? 'none'}`);
  if (bytes.length < HEADER_BYTES) bad('shorter than the header');
  const action = bytes[1];
  if (action !== 1 && action !== 2) bad(`unknown action ${action}`);
  const kind = PRECONDITION_CODES[bytes[2]!] ?? bad(`unknown precondition ${bytes[2]}`);
  const versionBytes = bytes[3]!;
  const idempotencyBytes = bytes[4]!;
  if (versionBytes > 0 !== (kind === 'version')) bad('a version without If-Match, or none with');
  if (versionBytes > MAX_VERSION_BYTES) bad(`a version of ${versionBytes} bytes`);
  if (idempotencyBytes > MAX_IDEMPOTENCY_KEY_BYTES)
    bad(`an idempotency key of ${idempotencyBytes} bytes`);
  const proposedAtMs = view.getFloat64(5);
  if (!Number.isSafeInteger(proposedAtMs) || proposedAtMs < 0)
    bad(`proposer clock ${proposedAtMs}`);
  const window = { ms: view.getUint32(13), keys: view.getUint32(17) };
  let at = HEADER_BYTES;
  const versionEnd = at + versionBytes;
  const idempotencyEnd = versionEnd + idempotencyBytes;
  if (idempotencyEnd + 4 > bytes.length) bad('the version or idempotency key runs past the end');
  const version = utf8(bytes.subarray(at, versionEnd), bad);
  const idempotencyKey = bytes.subarray(versionEnd, idempotencyEnd);
  at = idempotencyEnd;
  const keyEnd = at + 4 + view.getUint32(at);
  if (keyEnd > bytes.length) bad('the key runs past the end');
  const key = utf8(bytes.subarray(at + 4, keyEnd), bad);
  if (key.length === 0) bad('an empty key');
  const value = bytes.subarray(keyEnd);
  if (action === 2 && value.length > 0) bad('a delete with a value');
  return {
    action: action === 1 ? 'put' : 'delete',
    key,
    value,
    precondition: kind === 'version' ? { kind, version } : { kind },
    ...(idempotencyBytes > 0 ? { idempotencyKey } : {}),
    proposedAtMs,
    window,
  };
}

function utf8(bytes: Uint8Array, bad: (why: string) => never): string {
  try {
    return decoder.decode(bytes);
  } catch {
    return bad('not UTF-8');
  }
}
