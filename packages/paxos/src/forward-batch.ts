// Many forwarding requests (or replies) in one ForwardPropose (ForwardReply) frame (issue 22,
// spread writes): a node that forwards many writes in one event-loop turn sends them to the master
// in one frame, and the master answers the values of one instance to one node in one frame, instead
// of a frame (a msgpack header, a CRC, a decode and its validation) per write each way. etcd's
// followers forward proposals the same way, many entries in one MsgProp.
//
// The frame is an ordinary ForwardMsg with ForwardManyFlag set and its `value` (requests) or
// `result` (replies) holding the entries, each the fields of one ForwardMsg but msgType and nodeId
// (the frame's):
//
//   u32 count │ count × ( requestId u64 │ smId u32 │ flag u32 │ timeoutMs u64 │ instanceId u64
//                         │ batchIndex u64 │ identityNodeId u64 │ identityIncarnation u32
//                         │ identitySequence u64 │ errorCode str │ errorMessage str
//                         │ value bytes │ result bytes )        str, bytes: u32 length │ raw
//
// little-endian; u64 is two u32 (low, high) holding a safe integer. A batched request frame says
// timeoutMs 0: a node that does not know the flag refuses it as "never chosen" instead of
// proposing the entries as one value. Decoding validates every length and returns undefined on
// anything malformed (the caller counts a drop); values are views of the frame.
import { forwardMsg, type ForwardMsg } from '@tspaxos/transport';

/** ForwardMsg.flag bit (beside ForwardFlag's 1, 2, 4): the frame carries many entries. */
export const ForwardManyFlag = 8;
/** Most entries in one batched frame (FORWARD_MAX_IN_FLIGHT bounds them anyway). */
export const FORWARD_BATCH_MAX_ENTRIES = 1024;
/** Most bytes of entries in one batched frame; a request past it goes in the next frame. */
export const FORWARD_BATCH_MAX_BYTES = 1024 * 1024;
/** Values above this size are forwarded in a frame of their own (no copy into a batch). */
export const FORWARD_BATCH_VALUE_MAX_BYTES = 16 * 1024;
/** Longest error code and message an entry may carry (the transport's own limits). */
const MAX_ERROR_CODE_CHARS = 64;
const MAX_ERROR_MESSAGE_CHARS = 4096;

/** Fixed bytes of one entry: 3 u32 fields, 6 u64 fields, 4 length prefixes. */
const ENTRY_FIXED_BYTES = 3 * 4 + 6 * 8 + 4 * 4;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Bytes `msg` takes as an entry, its strings encoded. */
function entryBytes(code: Uint8Array, message: Uint8Array, msg: ForwardMsg): number {
  return ENTRY_FIXED_BYTES + code.length + message.length + msg.value.length + msg.result.length;
}

/** The entries of a batched frame: `msgs`' fields but msgType and nodeId. */
export function encodeForwardBatch(msgs: readonly ForwardMsg[]): Uint8Array {
  const strings = msgs.map((m) => [encoder.encode(m.errorCode), encoder.encode(m.errorMessage)]);
  let total = 4;
  msgs.forEach((m, i) => (total += entryBytes(strings[i]![0]!, strings[i]![1]!, m)));
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let at = 0;
  const u32 = (v: number) => {
    view.setUint32(at, v, true);
    at += 4;
  };
  const u64 = (v: number) => {
    view.setUint32(at, v >>> 0, true);
    view.setUint32(at + 4, Math.floor(v / 0x100000000), true);
    at += 8;
  };
  const bytes = (b: Uint8Array) => {
    u32(b.length);
    out.set(b, at);
    at += b.length;
  };
  u32(msgs.length);
  msgs.forEach((m, i) => {
    u64(m.requestId);
    u32(m.smId);
    u32(m.flag);
    u64(m.timeoutMs);
    u64(m.instanceId);
    u64(m.batchIndex);
    u64(m.identityNodeId);
    u32(m.identityIncarnation);
    u64(m.identitySequence);
    bytes(strings[i]![0]!);
    bytes(strings[i]![1]!);
    bytes(m.value);
    bytes(m.result);
  });
  return out;
}

/**
 * The messages of a batched frame from `nodeId`, each of type `msgType`; undefined when the bytes
 * are not a whole, valid batch (a counted drop for the caller).
 */
export function decodeForwardBatch(
  bytes: Uint8Array,
  msgType: number,
  nodeId: number,
): ForwardMsg[] | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const has = (n: number) => at + n <= bytes.length;
  const u32 = (): number | undefined => {
    if (!has(4)) return undefined;
    const v = view.getUint32(at, true);
    at += 4;
    return v;
  };
  const u64 = (): number | undefined => {
    if (!has(8)) return undefined;
    const low = view.getUint32(at, true);
    const high = view.getUint32(at + 4, true);
    at += 8;
    const v = high * 0x100000000 + low;
    return Number.isSafeInteger(v) ? v : undefined;
  };
  const raw = (): Uint8Array | undefined => {
    const n = u32();
    if (n === undefined || !has(n)) return undefined;
    const b = bytes.subarray(at, at + n);
    at += n;
    return b;
  };
  const text = (maxChars: number): string | undefined => {
    const b = raw();
    if (b === undefined || b.length > maxChars * 4) return undefined;
    try {
      const s = decoder.decode(b);
      return s.length <= maxChars ? s : undefined;
    } catch {
      return undefined; // not UTF-8: malformed, as any other bad field
    }
  };
  const count = u32();
  if (count === undefined || count === 0 || count > FORWARD_BATCH_MAX_ENTRIES) return undefined;
  const out: ForwardMsg[] = [];
  for (let i = 0; i < count; i++) {
    const requestId = u64();
    const smId = u32();
    const flag = u32();
    const timeoutMs = u64();
    const instanceId = u64();
    const batchIndex = u64();
    const identityNodeId = u64();
    const identityIncarnation = u32();
    const identitySequence = u64();
    const errorCode = text(MAX_ERROR_CODE_CHARS);
    const errorMessage = text(MAX_ERROR_MESSAGE_CHARS);
    const value = raw();
    const result = raw();
    if (
      requestId === undefined ||
      smId === undefined ||
      flag === undefined ||
      timeoutMs === undefined ||
      instanceId === undefined ||
      batchIndex === undefined ||
      identityNodeId === undefined ||
      identityIncarnation === undefined ||
      identitySequence === undefined ||
      errorCode === undefined ||
      errorMessage === undefined ||
      value === undefined ||
      result === undefined ||
      (flag & ForwardManyFlag) !== 0
    )
      return undefined;
    out.push(
      forwardMsg({
        msgType,
        nodeId,
        requestId,
        smId,
        flag,
        timeoutMs,
        instanceId,
        batchIndex,
        identityNodeId,
        identityIncarnation,
        identitySequence,
        errorCode,
        errorMessage,
        value,
        result,
      }),
    );
  }
  return at === bytes.length ? out : undefined;
}

/** Bytes `msg` adds to a batch (for the size limit; strings counted at most 4 bytes a char). */
export function batchEntryBytes(msg: ForwardMsg): number {
  return (
    ENTRY_FIXED_BYTES +
    4 * (msg.errorCode.length + msg.errorMessage.length) +
    msg.value.length +
    msg.result.length
  );
}
