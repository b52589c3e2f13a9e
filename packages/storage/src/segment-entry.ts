// The self-describing entries of a segment file: what makes the segments the truth of the log.
// Each record written to a segment is a frame header followed by the record in the layout of
// @tspaxos/crc-wasm (encodeRecord: its own CRC-32 trailer covers the record):
//
//   offset  size  field
//   0       4     magic 0x31475354 ("TSG1", little-endian)
//   4       4     group
//   8       4     record bytes n (56 + the value's length)
//   12      4     entries of the same batch after this one (a batch is replayed whole or not at all)
//   16      8     bytes of this segment fdatasynced when this entry was written (u64)
//   24      4     CRC-32 of bytes [0, 24)
//   28      n     the record
//
// So an open can rebuild the SQLite index from the segments alone (recovery.ts): a durable
// write is one append and one fdatasync, and the index row may reach the disk later. The
// "fdatasynced" field tells a torn tail (an entry past every synced byte: the power cut took
// it) from damage in the middle (an entry below a byte range a later entry says was synced).
import {
  type AcceptorRecord,
  crc32,
  crc32Combine,
  CodecError,
  decodeRecord,
  encodeRecord,
  ENCODED_RECORD_OVERHEAD_BYTES,
  knownCrc,
  RECORD_HEADER_BYTES,
  RECORD_TRAILER_BYTES,
} from '@tspaxos/crc-wasm';

export const ENTRY_MAGIC = 0x31475354;
export const ENTRY_HEADER_BYTES = 28;
/** Offset of the value length (u32, little-endian) in an encoded record (crc-wasm's layout). */
const RECORD_LENGTH_OFFSET = 4;
/** Values up to this size are copied into one buffer with their headers (one iovec per entry). */
const CONTIGUOUS_VALUE_BYTES = 512;
const EMPTY = new Uint8Array(0);
const MAGIC_BYTES = new Uint8Array([0x54, 0x53, 0x47, 0x31]);

/** One entry as buffers for a pwritev, and where its value lies within it. */
export interface EncodedEntry {
  buffers: Uint8Array[];
  bytes: number;
  /** Offset of the value from the start of the entry. */
  valueOffset: number;
  /** CRC-32 of the value alone (the index row's locator carries it). */
  valueCrc: number;
  /** A small value's whole record (encodeRecord bytes, within the entry): its index row. */
  record: Uint8Array | undefined;
}

function writeHeader(
  out: Uint8Array,
  group: number,
  recordBytes: number,
  more: number,
  syncedBytes: number,
): void {
  const v = new DataView(out.buffer, out.byteOffset, ENTRY_HEADER_BYTES);
  v.setUint32(0, ENTRY_MAGIC, true);
  v.setUint32(4, group, true);
  v.setUint32(8, recordBytes, true);
  v.setUint32(12, more, true);
  v.setUint32(16, syncedBytes % 2 ** 32, true);
  v.setUint32(20, Math.floor(syncedBytes / 2 ** 32), true);
  v.setUint32(24, crc32(out.subarray(0, 24)), true);
}

/**
 * Encodes a record as an entry. A small value is copied with its headers into one buffer; a
 * large one is not copied: [headers, value, trailer], its CRC taken once (or reused from
 * knownCrc) and combined into the record's. Throws CodecError for a record the codec refuses.
 */
export function encodeEntry(
  group: number,
  record: AcceptorRecord,
  more: number,
  syncedBytes: number,
): EncodedEntry {
  const value = record.value;
  const n = value.length;
  const recordBytes = ENCODED_RECORD_OVERHEAD_BYTES + n;
  const valueOffset = ENTRY_HEADER_BYTES + RECORD_HEADER_BYTES;
  if (n <= CONTIGUOUS_VALUE_BYTES) {
    const out = new Uint8Array(ENTRY_HEADER_BYTES + recordBytes);
    out.set(encodeRecord(record), ENTRY_HEADER_BYTES);
    writeHeader(out, group, recordBytes, more, syncedBytes);
    return {
      buffers: [out],
      bytes: out.length,
      valueOffset,
      valueCrc: n >= 4096 ? (knownCrc(value) ?? crc32(value)) : crc32(value),
      record: out.subarray(ENTRY_HEADER_BYTES),
    };
  }
  // The record's header and trailer from the codec (its checks included) with an empty value;
  // then the real length patched in and the CRC extended over the value.
  const shell = encodeRecord({ ...record, value: EMPTY });
  const head = new Uint8Array(ENTRY_HEADER_BYTES + RECORD_HEADER_BYTES);
  head.set(shell.subarray(0, RECORD_HEADER_BYTES), ENTRY_HEADER_BYTES);
  const headerView = new DataView(head.buffer, ENTRY_HEADER_BYTES, RECORD_HEADER_BYTES);
  headerView.setUint32(RECORD_LENGTH_OFFSET, n, true);
  writeHeader(head, group, recordBytes, more, syncedBytes);
  // A value just received or read comes with its CRC (rememberCrc): no second pass.
  const valueCrc = knownCrc(value) ?? crc32(value);
  const headerCrc = crc32(head.subarray(ENTRY_HEADER_BYTES));
  const trailer = new Uint8Array(RECORD_TRAILER_BYTES);
  new DataView(trailer.buffer).setUint32(0, crc32Combine(headerCrc, valueCrc, n), true);
  return {
    buffers: [head, value, trailer],
    bytes: head.length + n + 4,
    valueOffset,
    valueCrc,
    record: undefined,
  };
}

/**
 * Writes the header of an entry encoded ahead of its append (a sync put queued while a group
 * commit runs): its batch count and synced mark are known only when it is appended.
 */
export function sealEntry(
  entry: EncodedEntry,
  group: number,
  more: number,
  syncedBytes: number,
): void {
  writeHeader(entry.buffers[0]!, group, entry.bytes - ENTRY_HEADER_BYTES, more, syncedBytes);
}

/** A valid entry read back from a segment. */
export interface ScannedEntry {
  offset: number;
  bytes: number;
  more: number;
  record: AcceptorRecord;
}

/** What a scan of a segment from some offset found. */
export interface ScanResult {
  entries: ScannedEntry[];
  /** End of the last valid entry (where the next append goes). */
  end: number;
  /** Bytes after `end` that are not all zero (a torn or damaged entry). */
  tornBytes: number;
  /** The highest "fdatasynced" mark of a valid-looking entry header after `end`. */
  syncedMarkAfterEnd: number;
}

/**
 * Reads entries of group `group` from `from` until the first invalid one. `read(offset,
 * length)` returns the file's bytes there (shorter at the end of the file).
 */
export function scanEntries(
  group: number,
  from: number,
  fileBytes: number,
  read: (offset: number, length: number) => Uint8Array,
): ScanResult {
  const entries: ScannedEntry[] = [];
  let at = from;
  for (;;) {
    if (at + ENTRY_HEADER_BYTES > fileBytes) break;
    const head = read(at, ENTRY_HEADER_BYTES);
    const parsed = parseHeader(head);
    if (parsed === undefined || parsed.group !== group) break;
    const end = at + ENTRY_HEADER_BYTES + parsed.recordBytes;
    if (end > fileBytes) break;
    let record: AcceptorRecord;
    try {
      record = decodeRecord(read(at + ENTRY_HEADER_BYTES, parsed.recordBytes));
    } catch (e) {
      if (e instanceof CodecError) break;
      throw e;
    }
    entries.push({ offset: at, bytes: end - at, more: parsed.more, record });
    at = end;
  }
  // Past the valid entries: zeros (room grown ahead of the appends) or a torn tail.
  let tornBytes = 0;
  let syncedMarkAfterEnd = 0;
  if (at < fileBytes) {
    const rest = read(at, fileBytes - at);
    let last = rest.length;
    while (last > 0 && rest[last - 1] === 0) last--;
    tornBytes = last;
    // Any valid entry header later in the file, and what it says was synced.
    const buffer = Buffer.from(rest.buffer, rest.byteOffset, last);
    for (let i = buffer.indexOf(MAGIC_BYTES, 1); i >= 0; i = buffer.indexOf(MAGIC_BYTES, i + 1)) {
      const later = parseHeader(rest.subarray(i, i + ENTRY_HEADER_BYTES));
      if (later !== undefined && later.group === group)
        syncedMarkAfterEnd = Math.max(syncedMarkAfterEnd, later.syncedBytes);
    }
  }
  return { entries, end: at, tornBytes, syncedMarkAfterEnd };
}

function parseHeader(
  head: Uint8Array,
): { group: number; recordBytes: number; more: number; syncedBytes: number } | undefined {
  if (head.length < ENTRY_HEADER_BYTES) return undefined;
  const v = new DataView(head.buffer, head.byteOffset, ENTRY_HEADER_BYTES);
  if (v.getUint32(0, true) !== ENTRY_MAGIC) return undefined;
  if (v.getUint32(24, true) !== crc32(head.subarray(0, 24))) return undefined;
  const recordBytes = v.getUint32(8, true);
  if (recordBytes < ENCODED_RECORD_OVERHEAD_BYTES) return undefined;
  return {
    group: v.getUint32(4, true),
    recordBytes,
    more: v.getUint32(12, true),
    syncedBytes: v.getUint32(16, true) + v.getUint32(20, true) * 2 ** 32,
  };
}
