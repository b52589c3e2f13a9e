// The frame codec. A frame is
//
//   u32 length of what follows │ u8 version (1) │ u8 command │ u16 reserved (0) │ u32 group
//   │ u32 header length h │ h bytes: msgpackr array of the scalar fields
//   │ u32 count k │ k × u32 byte-field lengths │ the byte fields, raw │ u32 CRC-32 of all after `length`
//
// Scalars go through msgpackr; big byte fields (values, checkpoint chunks) stay out of it: they
// are passed by reference on encode (the frame is a list of chunks) and returned as views of the
// received frame on decode (BASELINES.md: 1.3 M msgs/s that way vs 19 k/s copying 100 KiB values
// through msgpackr). Decoding validates every field and returns a result; it never throws.
// One idea, kept in one file though it passes 600 lines (issue 21): the frame format, its
// encoder and its validating decoder together, so a field added to one is seen in the other.
import {
  allocBytes,
  crc32,
  crc32Combine,
  KNOWN_CRC_MIN_BYTES,
  knownCrc,
  rememberCrc,
} from '@tspaxos/crc-wasm';
import { Packr, Unpackr } from 'msgpackr';
import { TransportError, type TransportErrorCode } from './errors';
import {
  type CheckpointMsg,
  CheckpointMsgType,
  type ForwardMsg,
  ForwardMsgType,
  FrameCommand,
  type LearnedValue,
  type Message,
  type PaxosMsg,
  PaxosMsgType,
} from './messages';
import { LEARN_BATCH_ENTRY_BYTES, MAX_FRAME_BYTES, MAX_LEARN_BATCH_INSTANCES } from './options';

export const FRAME_VERSION = 1;
/** Bytes before the msgpackr header: length, version, command, reserved, group, header length. */
export const FIXED_BYTES = 16;
/** Frames up to this size are assembled into one buffer; larger ones stay a list of chunks. */
const COALESCE_BYTES = 16 * 1024;
const MAX_PATH_CHARS = 4096;
/** Longest error code and message a forwarding reply carries (longer is a malformed frame). */
const MAX_ERROR_CODE_CHARS = 64;
const MAX_ERROR_MESSAGE_CHARS = 4096;
/** Byte fields of a paxos frame: value, system variables, master variables. */
const PAXOS_FIELDS = 3;
/** Most byte fields a frame may have: a full SendLearnValue batch (table + one per value). */
const MAX_FIELDS = PAXOS_FIELDS + 1 + MAX_LEARN_BATCH_INSTANCES;
/** Byte fields below this size are copied into shared chunks when a frame is not coalesced. */
const SMALL_FIELD_BYTES = 4 * 1024;

// Integers: msgpackr writes safe integers above 2^32 as float64 (exact); 64-bit integers from a
// foreign peer decode as BigInt and are rejected by validation, never rounded.
const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false });

const EMPTY = new Uint8Array(0);

export type DecodeResult<T> = { ok: true; value: T } | { ok: false; error: TransportError };

export interface Frame {
  group: number;
  message: Message;
}

/** The connection handshake (command Hello): who is calling and where it listens. */
export interface Hello {
  clusterId: string;
  nodeId: number;
  listenHost: string;
  listenPort: number;
}

/** Scalar fields in a paxos frame's header (scalarsOf), and byte fields after it (bytesOf). */
const PAXOS_SCALARS = 12;
const PAXOS_BYTE_FIELDS = 3;
/** Most bytes msgpackr takes for one scalar: a float64 (safe integers above 2^32) with its tag. */
const MSGPACK_NUMBER_MAX_BYTES = 9;

/**
 * Most bytes a paxos frame adds to its byte fields (value, system and master variables), whatever
 * its scalars hold: fixed header, msgpack array (1 B tag + 12 numbers), field table, CRC. A value
 * of `maxFrameBytes - PAXOS_FRAME_OVERHEAD_MAX_BYTES` bytes, with no variables, always fits.
 */
export const PAXOS_FRAME_OVERHEAD_MAX_BYTES =
  FIXED_BYTES + 1 + PAXOS_SCALARS * MSGPACK_NUMBER_MAX_BYTES + 4 + 4 * PAXOS_BYTE_FIELDS + 4;

/** The largest paxos value (a message's `value` bytes) a frame of maxFrameBytes can carry. */
export function maxPaxosValueBytes(maxFrameBytes = MAX_FRAME_BYTES): number {
  return maxFrameBytes - PAXOS_FRAME_OVERHEAD_MAX_BYTES;
}

function fail<T>(code: TransportErrorCode, message: string): DecodeResult<T> {
  return { ok: false, error: new TransportError(code, message) };
}

// Little-endian u32 by hand: making a DataView per frame costs more than the reads and writes.
export function u32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16)) + b[at + 3]! * 0x1000000;
}

function putU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v;
  b[at + 1] = v >>> 8;
  b[at + 2] = v >>> 16;
  b[at + 3] = v >>> 24;
}

function scalarsOf(message: Message): unknown[] {
  if (message.kind === 'forward') {
    const m = message.msg;
    return [
      m.msgType,
      m.requestId,
      m.nodeId,
      m.smId,
      m.timeoutMs,
      m.flag,
      m.instanceId,
      m.batchIndex,
      m.identityNodeId,
      m.identityIncarnation,
      m.identitySequence,
      m.errorCode,
      m.errorMessage,
    ];
  }
  if (message.kind === 'paxos') {
    const m = message.msg;
    return [
      m.msgType,
      m.instanceId,
      m.nodeId,
      m.proposalId,
      m.proposalNodeId,
      m.preAcceptId,
      m.preAcceptNodeId,
      m.rejectByPromiseId,
      m.nowInstanceId,
      m.minChosenInstanceId,
      m.lastChecksum,
      m.flag,
    ];
  }
  const m = message.msg;
  return [
    m.msgType,
    m.nodeId,
    m.flag,
    m.uuid,
    m.sequence,
    m.checkpointInstanceId,
    m.checksum,
    m.filePath,
    m.smId,
    m.offset,
  ];
}

function bytesOf(message: Message): Uint8Array[] {
  if (message.kind === 'forward') return [message.msg.value, message.msg.result];
  if (message.kind !== 'paxos') return [message.msg.buffer];
  const m = message.msg;
  const fields = [m.value, m.systemVariables, m.masterVariables];
  if (m.batch.length === 0) return fields;
  if (m.msgType !== PaxosMsgType.SendLearnValue || m.batch.length > MAX_LEARN_BATCH_INSTANCES) {
    throw new TransportError(
      'E_BAD_FIELD',
      `a batch of ${m.batch.length} values in msgType ${m.msgType} cannot be encoded`,
    );
  }
  fields.push(encodeBatchTable(m.batch));
  for (const v of m.batch) fields.push(v.value);
  return fields;
}

/** The batch's fixed-layout table: per value proposalId u64, proposalNodeId u64, checksum u32. */
function encodeBatchTable(batch: readonly LearnedValue[]): Uint8Array {
  const table = allocUnfilled(batch.length * LEARN_BATCH_ENTRY_BYTES);
  let at = 0;
  for (const v of batch) {
    putU64(table, at, v.proposalId);
    putU64(table, at + 8, v.proposalNodeId);
    putU32(table, at + 16, v.checksum);
    at += LEARN_BATCH_ENTRY_BYTES;
  }
  return table;
}

function putU64(b: Uint8Array, at: number, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0)
    throw new TransportError('E_UNSAFE_INTEGER', `${v} is not a safe non-negative integer`);
  putU32(b, at, v >>> 0);
  putU32(b, at + 4, Math.floor(v / 0x100000000));
}

function buildFrame(
  command: number,
  group: number,
  scalars: unknown,
  fields: Uint8Array[],
  maxFrameBytes: number,
): Uint8Array[] {
  const header: Uint8Array = packr.pack(scalars);
  const tableBytes = 4 + 4 * fields.length;
  let payload = 0;
  for (const f of fields) payload += f.length;
  const frameLength = FIXED_BYTES - 4 + header.length + tableBytes + payload + 4;
  if (frameLength + 4 > maxFrameBytes) {
    throw new TransportError(
      'E_FRAME_TOO_LARGE',
      `frame of ${frameLength + 4} bytes exceeds ${maxFrameBytes}`,
    );
  }
  const headBytes = FIXED_BYTES + header.length + tableBytes;
  const coalesce = frameLength + 4 <= COALESCE_BYTES;
  // Pooled: a fresh small Uint8Array costs ~600 ns on Node 20, more than the rest of the encode.
  const head = allocBytes(coalesce ? frameLength + 4 : headBytes);
  putU32(head, 0, frameLength);
  head[4] = FRAME_VERSION;
  head[5] = command;
  putU32(head, 8, group);
  putU32(head, 12, header.length);
  head.set(header, FIXED_BYTES);
  let at = FIXED_BYTES + header.length;
  putU32(head, at, fields.length);
  at += 4;
  for (const f of fields) {
    putU32(head, at, f.length);
    at += 4;
  }
  if (coalesce) {
    for (const f of fields) {
      head.set(f, at);
      at += f.length;
    }
    putU32(head, at, crc32(head.subarray(4, at)));
    return [head];
  }
  let crc = crc32(head.subarray(4));
  const chunks: Uint8Array[] = [head];
  // Runs of small fields (a batch of small values) are copied into one chunk: a socket write
  // per 100 B value would cost more than the copy. Large fields stay by reference.
  let run: Uint8Array[] = [];
  let runBytes = 0;
  const flushRun = (): void => {
    if (run.length === 0) return;
    const joined = concatChunks(run);
    crc = crc32(joined, crc);
    chunks.push(joined);
    run = [];
    runBytes = 0;
  };
  for (const f of fields) {
    if (f.length === 0) continue;
    if (f.length < SMALL_FIELD_BYTES) {
      run.push(f);
      runBytes += f.length;
      if (runBytes >= COALESCE_BYTES) flushRun();
      continue;
    }
    flushRun();
    // A value read from the log comes with its CRC (checked by the read): no second pass.
    const k = knownCrc(f);
    crc = k === undefined ? crc32(f, crc) : crc32Combine(crc, k, f.length);
    chunks.push(f);
  }
  flushRun();
  const trailer = allocBytes(4);
  putU32(trailer, 0, crc);
  chunks.push(trailer);
  return chunks;
}

/**
 * Encodes a message for a group as a list of chunks (one for small frames; big byte fields by
 * reference otherwise). Throws TransportError E_FRAME_TOO_LARGE: the caller's bug or limit.
 */
export function encodeFrame(
  group: number,
  message: Message,
  maxFrameBytes = MAX_FRAME_BYTES,
): Uint8Array[] {
  const command =
    message.kind === 'paxos'
      ? FrameCommand.Paxos
      : message.kind === 'forward'
        ? FrameCommand.Forward
        : FrameCommand.Checkpoint;
  return buildFrame(command, group, scalarsOf(message), bytesOf(message), maxFrameBytes);
}

export function encodeHello(hello: Hello): Uint8Array {
  return buildFrame(
    FrameCommand.Hello,
    0,
    [hello.clusterId, hello.nodeId, hello.listenHost, hello.listenPort],
    [],
    MAX_FRAME_BYTES,
  )[0]!;
}

/**
 * `n` bytes that the caller overwrites entirely: Node's pooled, unzeroed allocation, as a plain
 * Uint8Array (~3 µs less than `new Uint8Array` per 64 KiB, and views of it are cheaper to cut
 * than Buffer views).
 */
export function allocUnfilled(n: number): Uint8Array {
  const b = Buffer.allocUnsafe(n);
  return new Uint8Array(b.buffer, b.byteOffset, n);
}

/** Smallest allocation allocOwnUnfilled leaves unzeroed (Node pools smaller ones: Buffer.poolSize / 2). */
export const OWN_UNFILLED_MIN_BYTES = 4 * 1024;

/**
 * `n` bytes that the caller overwrites entirely and may keep for long (a packed value: logs,
 * learners and state machines hold views of it): from `OWN_UNFILLED_MIN_BYTES` on, an ArrayBuffer
 * of its own left unzeroed (issue 22: zero-filling a fresh 100 KiB value cost ~2.5× its copy, and
 * packValue was a fifth of a proposing node's busy samples); below that, a zeroed one of its own,
 * never a view of a shared pool that a small value kept would hold whole.
 */
export function allocOwnUnfilled(n: number): Uint8Array {
  if (n < OWN_UNFILLED_MIN_BYTES) return new Uint8Array(n);
  const b = Buffer.allocUnsafeSlow(n);
  return new Uint8Array(b.buffer, b.byteOffset, n);
}

/** Chunks (of one frame, or a run of whole frames) as one buffer. */
export function concatChunks(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = allocUnfilled(n);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

export function encodeFrameBytes(
  group: number,
  message: Message,
  maxFrameBytes = MAX_FRAME_BYTES,
): Uint8Array {
  return concatChunks(encodeFrame(group, message, maxFrameBytes));
}

interface RawFrame {
  command: number;
  group: number;
  scalars: unknown[];
  fields: Uint8Array[];
}

/** Where the large byte fields of a frame lie (offset, length), and their CRCs. */
interface LargeFields {
  offsets: number[];
  crcs: number[];
}

/**
 * The CRC of frame[4, end). Byte fields of at least KNOWN_CRC_MIN_BYTES get a pass of their own,
 * combined into the frame's CRC, so their CRCs come out too (the learner's checksum chain and
 * the log use them instead of reading the value again). The field table is read here before it
 * is validated: where it does not add up, the rest of the frame is one plain pass, and
 * decodeRaw's checks report the problem after the CRC, as for any frame.
 */
function frameCrc(frame: Uint8Array, end: number): { crc: number; large: LargeFields } {
  const large: LargeFields = { offsets: [], crcs: [] };
  if (end - 4 < KNOWN_CRC_MIN_BYTES) return { crc: crc32(frame.subarray(4, end)), large };
  let at = FIXED_BYTES + u32(frame, 12);
  let pos = 4;
  let crc = 0;
  if (at + 4 <= end) {
    const count = u32(frame, at);
    at += 4;
    if (count <= MAX_FIELDS && at + 4 * count <= end) {
      let data = at + 4 * count;
      for (let i = 0; i < count; i++, at += 4) {
        const n = u32(frame, at);
        if (data + n > end) break;
        if (n >= KNOWN_CRC_MIN_BYTES) {
          crc = crc32(frame.subarray(pos, data), crc);
          const fieldCrc = crc32(frame.subarray(data, data + n));
          crc = crc32Combine(crc, fieldCrc, n);
          large.offsets.push(data);
          large.crcs.push(fieldCrc);
          pos = data + n;
        }
        data += n;
      }
    }
  }
  return { crc: crc32(frame.subarray(pos, end), crc), large };
}

/** Splits and checks one whole frame (length prefix included). */
function decodeRaw(frame: Uint8Array, maxFrameBytes: number): DecodeResult<RawFrame> {
  const end = frame.length - 4; // where the CRC starts
  if (frame.length < FIXED_BYTES + 8)
    return fail('E_TRUNCATED', `frame of ${frame.length} bytes is shorter than a frame header`);
  const length = u32(frame, 0);
  if (length + 4 > maxFrameBytes)
    return fail('E_FRAME_TOO_LARGE', `frame of ${length + 4} bytes exceeds ${maxFrameBytes}`);
  if (length + 4 !== frame.length)
    return fail('E_TRUNCATED', `frame says ${length + 4} bytes, has ${frame.length}`);
  const version = frame[4]!;
  if (version !== FRAME_VERSION)
    return fail('E_BAD_VERSION', `frame version ${version} is not ${FRAME_VERSION}`);
  const { crc, large } = frameCrc(frame, end);
  if (crc !== u32(frame, end)) return fail('E_BAD_CRC', 'frame CRC does not match its bytes');
  const command = frame[5]!;
  if (frame[6] !== 0 || frame[7] !== 0)
    return fail('E_BAD_FIELD', 'frame reserved bytes are not zero');
  const group = u32(frame, 8);
  const headerLength = u32(frame, 12);
  let at = FIXED_BYTES + headerLength;
  if (at + 4 > end) return fail('E_TRUNCATED', 'frame header overruns the frame');
  let scalars: unknown;
  try {
    // start/end instead of a subarray: 110 ns vs 270 ns for a Buffer frame (measured).
    scalars = unpackr.unpack(frame, { start: FIXED_BYTES, end: at });
  } catch (e) {
    return fail('E_BAD_FIELD', `frame header is not msgpack: ${String(e)}`);
  }
  if (!Array.isArray(scalars)) return fail('E_BAD_FIELD', 'frame header is not an array');
  const count = u32(frame, at);
  at += 4;
  if (count > MAX_FIELDS || at + 4 * count > end)
    return fail('E_BAD_FIELD', `frame has ${count} byte fields`);
  const fields: Uint8Array[] = [];
  let data = at + 4 * count;
  let nextLarge = 0;
  for (let i = 0; i < count; i++, at += 4) {
    const n = u32(frame, at);
    if (data + n > end) return fail('E_TRUNCATED', 'frame byte field overruns the frame');
    // Empty fields (most system and master variables) share one array: no view to make.
    const field = n === 0 ? EMPTY : frame.subarray(data, data + n);
    if (n >= KNOWN_CRC_MIN_BYTES && large.offsets[nextLarge] === data)
      rememberCrc(field, large.crcs[nextLarge++]!);
    fields.push(field);
    data += n;
  }
  if (data !== end) return fail('E_BAD_FIELD', 'frame has bytes after its fields');
  return { ok: true, value: { command, group, scalars, fields } };
}

class FieldError extends Error {
  constructor(
    readonly code: TransportErrorCode,
    message: string,
  ) {
    super(message);
  }
}

function int(scalars: unknown[], i: number, name: string, max = Number.MAX_SAFE_INTEGER): number {
  const v = scalars[i];
  if (typeof v !== 'number')
    throw new FieldError(
      typeof v === 'bigint' ? 'E_UNSAFE_INTEGER' : 'E_BAD_FIELD',
      `${name} is ${typeof v}, not a number`,
    );
  if (!Number.isSafeInteger(v) || v < 0)
    throw new FieldError('E_UNSAFE_INTEGER', `${name} = ${v} is not a safe non-negative integer`);
  if (v > max) throw new FieldError('E_BAD_FIELD', `${name} = ${v} is above ${max}`);
  return v;
}

const U32 = 0xffffffff;

function toPaxos(raw: RawFrame): PaxosMsg {
  const s = raw.scalars;
  if (s.length < 12)
    throw new FieldError('E_BAD_FIELD', `paxos header has ${s.length} fields, needs 12`);
  const msgType = int(s, 0, 'msgType', 255);
  if (msgType < PaxosMsgType.Prepare || msgType > PaxosMsgType.OnAskforCheckpoint) {
    throw new FieldError('E_UNKNOWN_MSG_TYPE', `paxos msgType ${msgType} is unknown`);
  }
  if (raw.fields.length < PAXOS_FIELDS)
    throw new FieldError('E_BAD_FIELD', 'paxos frame lacks its byte fields');
  const batch = raw.fields.length > PAXOS_FIELDS ? decodeBatch(msgType, raw.fields) : NO_BATCH;
  const instanceId = int(s, 1, 'instanceId');
  if (!Number.isSafeInteger(instanceId + batch.length))
    throw new FieldError('E_UNSAFE_INTEGER', `a batch from instance ${instanceId} overflows`);
  return {
    msgType,
    instanceId,
    nodeId: int(s, 2, 'nodeId'),
    proposalId: int(s, 3, 'proposalId'),
    proposalNodeId: int(s, 4, 'proposalNodeId'),
    preAcceptId: int(s, 5, 'preAcceptId'),
    preAcceptNodeId: int(s, 6, 'preAcceptNodeId'),
    rejectByPromiseId: int(s, 7, 'rejectByPromiseId'),
    nowInstanceId: int(s, 8, 'nowInstanceId'),
    minChosenInstanceId: int(s, 9, 'minChosenInstanceId'),
    lastChecksum: int(s, 10, 'lastChecksum', U32),
    flag: int(s, 11, 'flag', U32),
    value: raw.fields[0] ?? EMPTY,
    systemVariables: raw.fields[1] ?? EMPTY,
    masterVariables: raw.fields[2] ?? EMPTY,
    batch,
  };
}

const NO_BATCH: readonly LearnedValue[] = Object.freeze([]);

function u64(b: Uint8Array, at: number, name: string): number {
  const high = u32(b, at + 4);
  if (high > 0x1fffff)
    throw new FieldError('E_UNSAFE_INTEGER', `${name} does not fit a safe integer`);
  return high * 0x100000000 + u32(b, at);
}

/** The batch of a SendLearnValue: fields 3 (the table) and 4 … (one value per entry). */
function decodeBatch(msgType: number, fields: Uint8Array[]): LearnedValue[] {
  if (msgType !== PaxosMsgType.SendLearnValue)
    throw new FieldError('E_BAD_FIELD', `msgType ${msgType} cannot carry a batch`);
  const table = fields[PAXOS_FIELDS]!;
  const count = fields.length - PAXOS_FIELDS - 1;
  if (count < 1 || count > MAX_LEARN_BATCH_INSTANCES)
    throw new FieldError('E_BAD_FIELD', `a batch of ${count} values is out of range`);
  if (table.length !== count * LEARN_BATCH_ENTRY_BYTES)
    throw new FieldError(
      'E_BAD_FIELD',
      `batch table of ${table.length} bytes does not describe ${count} values`,
    );
  const batch: LearnedValue[] = new Array<LearnedValue>(count);
  for (let i = 0, at = 0; i < count; i++, at += LEARN_BATCH_ENTRY_BYTES) {
    batch[i] = {
      proposalId: u64(table, at, 'batch proposalId'),
      proposalNodeId: u64(table, at + 8, 'batch proposalNodeId'),
      checksum: u32(table, at + 16),
      value: fields[PAXOS_FIELDS + 1 + i]!,
    };
  }
  return batch;
}

function toCheckpoint(raw: RawFrame): CheckpointMsg {
  const s = raw.scalars;
  if (s.length < 10)
    throw new FieldError('E_BAD_FIELD', `checkpoint header has ${s.length} fields, needs 10`);
  const msgType = int(s, 0, 'msgType', 255);
  if (msgType !== CheckpointMsgType.SendFile && msgType !== CheckpointMsgType.SendFileAck) {
    throw new FieldError('E_UNKNOWN_MSG_TYPE', `checkpoint msgType ${msgType} is unknown`);
  }
  const filePath = s[7];
  if (typeof filePath !== 'string' || filePath.length > MAX_PATH_CHARS)
    throw new FieldError('E_BAD_FIELD', 'filePath is not a string of at most 4096 characters');
  if (raw.fields.length < 1)
    throw new FieldError('E_BAD_FIELD', 'checkpoint frame lacks its buffer');
  return {
    msgType,
    nodeId: int(s, 1, 'nodeId'),
    flag: int(s, 2, 'flag', 255),
    uuid: int(s, 3, 'uuid'),
    sequence: int(s, 4, 'sequence'),
    checkpointInstanceId: int(s, 5, 'checkpointInstanceId'),
    checksum: int(s, 6, 'checksum', U32),
    filePath,
    smId: int(s, 8, 'smId', U32),
    offset: int(s, 9, 'offset'),
    buffer: raw.fields[0]!,
  };
}

function str(scalars: unknown[], i: number, name: string, maxChars: number): string {
  const v = scalars[i];
  if (typeof v !== 'string' || v.length > maxChars)
    throw new FieldError(
      'E_BAD_FIELD',
      `${name} is not a string of at most ${maxChars} characters`,
    );
  return v;
}

function toForward(raw: RawFrame): ForwardMsg {
  const s = raw.scalars;
  if (s.length < 13)
    throw new FieldError('E_BAD_FIELD', `forward header has ${s.length} fields, needs 13`);
  const msgType = int(s, 0, 'msgType', 255);
  if (msgType < ForwardMsgType.ForwardPropose || msgType > ForwardMsgType.QuorumReadIndexReply)
    throw new FieldError('E_UNKNOWN_MSG_TYPE', `forward msgType ${msgType} is unknown`);
  if (raw.fields.length !== 2)
    throw new FieldError('E_BAD_FIELD', 'forward frame needs its value and result fields');
  return {
    msgType,
    requestId: int(s, 1, 'requestId'),
    nodeId: int(s, 2, 'nodeId'),
    smId: int(s, 3, 'smId', U32),
    timeoutMs: int(s, 4, 'timeoutMs'),
    flag: int(s, 5, 'flag', U32),
    instanceId: int(s, 6, 'instanceId'),
    batchIndex: int(s, 7, 'batchIndex'),
    identityNodeId: int(s, 8, 'identityNodeId'),
    identityIncarnation: int(s, 9, 'identityIncarnation', U32),
    identitySequence: int(s, 10, 'identitySequence'),
    errorCode: str(s, 11, 'errorCode', MAX_ERROR_CODE_CHARS),
    errorMessage: str(s, 12, 'errorMessage', MAX_ERROR_MESSAGE_CHARS),
    value: raw.fields[0]!,
    result: raw.fields[1]!,
  };
}

/**
 * Decodes one whole frame into a group and a message, validating every field. Byte fields are
 * views of `frame`. Never throws.
 */
export function decodeFrame(
  frame: Uint8Array,
  maxFrameBytes = MAX_FRAME_BYTES,
): DecodeResult<Frame> {
  const raw = decodeRaw(frame, maxFrameBytes);
  if (!raw.ok) return raw;
  try {
    const { command, group } = raw.value;
    if (command === FrameCommand.Paxos)
      return { ok: true, value: { group, message: { kind: 'paxos', msg: toPaxos(raw.value) } } };
    if (command === FrameCommand.Forward)
      return {
        ok: true,
        value: { group, message: { kind: 'forward', msg: toForward(raw.value) } },
      };
    if (command === FrameCommand.Checkpoint) {
      return {
        ok: true,
        value: { group, message: { kind: 'checkpoint', msg: toCheckpoint(raw.value) } },
      };
    }
    return fail('E_UNKNOWN_COMMAND', `frame command ${command} is unknown`);
  } catch (e) {
    if (e instanceof FieldError) return fail(e.code, e.message);
    return fail('E_BAD_FIELD', String(e));
  }
}

export function decodeHello(frame: Uint8Array): DecodeResult<Hello> {
  const raw = decodeRaw(frame, MAX_FRAME_BYTES);
  if (!raw.ok) return raw;
  if (raw.value.command !== FrameCommand.Hello)
    return fail('E_NO_HANDSHAKE', `expected a hello frame, got command ${raw.value.command}`);
  const [clusterId, , listenHost] = raw.value.scalars;
  try {
    if (typeof clusterId !== 'string' || clusterId.length > 256)
      throw new FieldError('E_BAD_FIELD', 'hello clusterId is not a string');
    if (typeof listenHost !== 'string' || listenHost.length > 256)
      throw new FieldError('E_BAD_FIELD', 'hello listenHost is not a string');
    const nodeId = int(raw.value.scalars, 1, 'nodeId');
    const listenPort = int(raw.value.scalars, 3, 'listenPort', 65535);
    return { ok: true, value: { clusterId, nodeId, listenHost, listenPort } };
  } catch (e) {
    if (e instanceof FieldError) return fail(e.code, e.message);
    return fail('E_BAD_FIELD', String(e));
  }
}

/** Deepest nesting of a forwarded result (deeper is not sent: the reply says "no result"). */
const RESULT_MAX_DEPTH = 32;

function isPlainData(v: unknown, depth: number): boolean {
  if (depth > RESULT_MAX_DEPTH) return false;
  if (v === null || v === undefined) return true;
  switch (typeof v) {
    case 'boolean':
    case 'string':
      return true;
    case 'number':
      return true;
    case 'object': {
      if (v instanceof Uint8Array) return true;
      if (Array.isArray(v)) return v.every((x) => isPlainData(x, depth + 1));
      const proto = Object.getPrototypeOf(v) as unknown;
      if (proto !== Object.prototype && proto !== null) return false;
      return Object.values(v as Record<string, unknown>).every((x) => isPlainData(x, depth + 1));
    }
    default:
      return false; // functions, symbols, bigints: not carried
  }
}

/**
 * A state machine's result as a forwarding reply carries it: msgpack of plain data (null,
 * booleans, numbers, strings, bytes, arrays, plain objects); undefined when it is none of those
 * (a class instance, a function …): the reply then carries no result. `undefined` encodes empty.
 */
export function encodeForwardResult(result: unknown): Uint8Array | undefined {
  if (result === undefined) return EMPTY;
  if (!isPlainData(result, 0)) return undefined;
  return packr.pack(result);
}

/** The result a forwarding reply carries (empty: undefined); an error when it is not msgpack. */
export function decodeForwardResult(bytes: Uint8Array): DecodeResult<unknown> {
  if (bytes.length === 0) return { ok: true, value: undefined };
  try {
    return { ok: true, value: unpackr.unpack(bytes) };
  } catch (e) {
    return fail('E_BAD_FIELD', `forwarded result is not msgpack: ${String(e)}`);
  }
}
