// What an instance's value carries: the id of the state machine it is for, then its bytes
// (PhxPaxos SMFac::PackPaxosValue). A batch (PhxPaxos BatchPropose) is one value whose state
// machine is BATCH_SM_ID and whose bytes are several (smId, bytes) pairs.
//
//   single: u32 smId | bytes
//   batch:  u32 BATCH_SM_ID | u32 count | count × (u32 smId | u32 length | bytes)
import { PaxosError } from './errors';

/** Reserved state machine ids, as PhxPaxos: system variables, master, batch. */
export const SYSTEM_SM_ID = 1;
export const MASTER_SM_ID = 2;
export const BATCH_SM_ID = 3;
/** A value for no state machine: learned and logged, executed by none (PhxPaxos smid 0). */
export const NO_SM_ID = 0;

/** Bytes packValue adds to a value (the u32 smId). */
export const SINGLE_VALUE_OVERHEAD_BYTES = 4;
/** Bytes packBatch adds: a header (u32 BATCH_SM_ID, u32 count), and per item (u32 smId, u32 length). */
export const BATCH_HEADER_BYTES = 8;
export const BATCH_ITEM_OVERHEAD_BYTES = 8;

export interface SmValue {
  smId: number;
  value: Uint8Array;
}

export function packValue(smId: number, value: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + value.length);
  new DataView(out.buffer).setUint32(0, smId, true);
  out.set(value, 4);
  return out;
}

export function packBatch(items: readonly SmValue[]): Uint8Array {
  let size = 8;
  for (const item of items) size += 8 + item.value.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, BATCH_SM_ID, true);
  view.setUint32(4, items.length, true);
  let at = 8;
  for (const item of items) {
    view.setUint32(at, item.smId, true);
    view.setUint32(at + 4, item.value.length, true);
    out.set(item.value, at + 8);
    at += 8 + item.value.length;
  }
  return out;
}

/**
 * Splits a chosen value into what each state machine executes. A malformed value (it came from
 * the log or the network) throws PaxosError E_BAD_ARGUMENT; it never reads out of bounds.
 */
export function unpackValue(packed: Uint8Array): SmValue[] {
  if (packed.length < 4)
    throw new PaxosError(
      'E_BAD_ARGUMENT',
      `value of ${packed.length} bytes has no state machine id`,
    );
  // Read without a DataView: this runs once per learned instance (a streamed catch-up executes
  // thousands in a row, and a DataView per value showed as garbage in its profile).
  const smId = u32At(packed, 0);
  if (smId !== BATCH_SM_ID) return [{ smId, value: packed.subarray(4) }];
  if (packed.length < 8) throw new PaxosError('E_BAD_ARGUMENT', 'batch value has no count');
  const count = u32At(packed, 4);
  const items: SmValue[] = [];
  let at = 8;
  for (let i = 0; i < count; i++) {
    if (at + 8 > packed.length)
      throw new PaxosError('E_BAD_ARGUMENT', `batch item ${i} header is truncated`);
    const itemSmId = u32At(packed, at);
    const length = u32At(packed, at + 4);
    if (at + 8 + length > packed.length)
      throw new PaxosError('E_BAD_ARGUMENT', `batch item ${i} is truncated`);
    items.push({ smId: itemSmId, value: packed.subarray(at + 8, at + 8 + length) });
    at += 8 + length;
  }
  if (at !== packed.length)
    throw new PaxosError('E_BAD_ARGUMENT', 'batch value has trailing bytes');
  return items;
}

/** Little-endian u32 at `at` (the caller checked the bounds). */
function u32At(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

/**
 * Whether two byte arrays hold the same bytes. The same view (the proposer's own value handed
 * back by its acceptor) answers at once; otherwise the bytes are compared 32 bits at a time over
 * the stretch where both views can be read as aligned words: ~6× faster than a byte loop at
 * 100 KiB (where a byte loop cost ~8 % of a proposing node's CPU), and free of node:* (no Buffer).
 */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  const n = a.length;
  if (n !== b.length) return false;
  if (a.buffer === b.buffer && a.byteOffset === b.byteOffset) return true;
  let i = 0;
  // Words only when both views reach a 4-byte boundary after the same number of bytes.
  if (n >= 64 && (a.byteOffset & 3) === (b.byteOffset & 3)) {
    const head = (4 - (a.byteOffset & 3)) & 3;
    for (; i < head; i++) if (a[i] !== b[i]) return false;
    const words = (n - head) >>> 2;
    const wa = new Int32Array(a.buffer, a.byteOffset + head, words);
    const wb = new Int32Array(b.buffer, b.byteOffset + head, words);
    for (let w = 0; w < words; w++) if (wa[w] !== wb[w]) return false;
    i = head + words * 4;
  }
  for (; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}
