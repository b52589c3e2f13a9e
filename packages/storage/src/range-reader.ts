// Reading records back: a row decoded into its record (an out-of-line value read from its
// segment and checked against the CRC in the row), and range() in chunks.
//
// A range is read in chunks with .all(), never holding a statement open across a yield:
// better-sqlite3 refuses every other statement on the connection while one is being iterated,
// so a caller that writes while it walks the log would fail. A chunk of inline rows is read as
// one blob (one statement step and one buffer for the whole chunk, where .all() makes an array,
// a number and a buffer per row: that per-row work was the sender's largest cost).
import {
  type AcceptorRecord,
  crc32,
  RECORD_HEADER_BYTES,
  ENCODED_RECORD_OVERHEAD_BYTES,
  rememberCrc,
} from '@tspaxos/crc-wasm';
import { corruptRecord, decodeStored } from './codec';
import type { StorageOptions } from './options';
import { type GroupStatements, plain } from './schema';
import { decodeLocator, type Segments } from './segments';
import { wrap, wrapRead } from './sqlite-errors';

/** Bytes of a row's key in front of its record in a chunk read as one blob (rangeBlob). */
const KEY_BYTES = 8;
/** Offset of the value length (u32, little-endian) in a stored record (@tspaxos/crc-wasm layout). */
const RECORD_LENGTH_OFFSET = 4;

/** A chunk of inline rows read as one blob: their keys, and where each row ends in the blob. */
interface ChunkRows {
  blob: Uint8Array;
  ids: number[];
  ends: number[];
}

export class RangeReader {
  /**
   * How range() read its chunks: as one blob each (inline rows), or row by row (chunks with
   * out-of-line values, or whose blob did not split cleanly: see readChunk).
   */
  readonly stats = { blobChunks: 0, rowChunks: 0 };

  constructor(
    private readonly options: StorageOptions,
    private readonly segments: Segments,
    /** Throws once the store is closed; called before each chunk. */
    private readonly checkOpen: () => void,
    /** The group's statements, undefined for a group never written. */
    private readonly statements: (group: number) => GroupStatements | undefined,
  ) {}

  /**
   * A record from its stored row: an inline record decoded as it is; an out-of-line one's value
   * read from its segment (one pread) and checked against the CRC in the row.
   */
  decodeRow(
    group: number,
    instanceId: number,
    bytes: Uint8Array,
    seg: number | null,
  ): AcceptorRecord {
    const record = decodeStored(group, instanceId, plain(bytes));
    if (seg === null) return record;
    const locator = decodeLocator(record.value);
    if (locator === undefined || locator.segment !== seg)
      throw corruptRecord(group, instanceId, `its locator does not name segment ${seg}`);
    let value: Uint8Array | undefined;
    try {
      value = this.segments.read(group, seg, locator.offset, locator.length);
    } catch (e) {
      throw wrap(e, 'E_IO', `read of segment ${seg} for instance ${instanceId}`, {
        group,
        instanceId,
      });
    }
    if (value === undefined)
      throw corruptRecord(group, instanceId, `its value is missing from segment ${seg}`);
    if (crc32(value) !== locator.crc)
      throw corruptRecord(group, instanceId, `its value in segment ${seg} fails its CRC`);
    // The value is a fresh buffer of ours: its CRC serves the sender's frame and the chain.
    rememberCrc(value, locator.crc);
    return { ...record, value };
  }

  /**
   * The records of [from, to), lazily. The first chunk assumes values of the maximum size;
   * later ones are sized by the row bytes seen so far, so a chunk holds about rangeChunkBytes.
   * An out-of-line value is read from its segment as its record is handed out, so a chunk of
   * index rows holds no value bytes.
   */
  *read(group: number, from: number, to: number): IterableIterator<AcceptorRecord> {
    const { rangeChunkBytes, rangeChunkMaxRecords, maxValueBytes } = this.options;
    let limit = Math.max(
      1,
      Math.min(rangeChunkMaxRecords, Math.floor(rangeChunkBytes / maxValueBytes)),
    );
    let next = from;
    let seenRecords = 0;
    let seenBytes = 0;
    // After a chunk with out-of-line values, the next is read row by row at once (large values
    // come in runs): no blob query that would only decline.
    let byRows = false;
    while (next < to) {
      this.checkOpen();
      let rows: Array<[number, Uint8Array, number | null]> | undefined;
      let chunk: ChunkRows | undefined;
      try {
        const g = this.statements(group);
        if (g === undefined) return;
        if (!byRows) chunk = readChunk(g, next, to, limit);
        if (chunk === undefined) {
          this.stats.rowChunks++;
          rows = g.rangeChunk.all(next, to, limit) as typeof rows;
          byRows = rows!.some((row) => row[2] !== null);
        } else {
          this.stats.blobChunks++;
        }
      } catch (e) {
        throw wrapRead(e, group, next, `range read of group ${group} from ${next}`);
      }
      let count: number;
      let last: number;
      if (chunk !== undefined) {
        const { blob, ids, ends } = chunk;
        count = ids.length;
        let at = 0;
        for (let i = 0; i < count; i++) {
          const end = ends[i]!;
          const start = at + KEY_BYTES;
          seenBytes += end - start;
          yield decodeStored(
            group,
            ids[i]!,
            new Uint8Array(blob.buffer, blob.byteOffset + start, end - start),
          );
          at = end;
        }
        last = count > 0 ? ids[count - 1]! : next;
      } else {
        for (const [id, bytes, seg] of rows!) {
          seenBytes += bytes.length;
          yield this.decodeRow(group, id, bytes, seg);
        }
        count = rows!.length;
        last = count > 0 ? rows![count - 1]![0] : next;
      }
      if (count < limit) return;
      next = last + 1;
      seenRecords += count;
      const average = Math.max(1, seenBytes / seenRecords);
      limit = Math.max(1, Math.min(rangeChunkMaxRecords, Math.floor(rangeChunkBytes / average)));
    }
  }
}

/**
 * Reads a chunk of rows as one blob. Undefined when the chunk must be read row by row instead:
 * it holds out-of-line values (their segment reads need the row), or the blob does not split
 * exactly into ascending keys in [from, to) each followed by a record of the length its header
 * says. The split checks only the framing; each record is then decoded and checked (CRC,
 * layout, filed under its key) as a row's is, and a damaged record that breaks the framing is
 * reported by the row-by-row read, which names it.
 */
function readChunk(
  g: GroupStatements,
  from: number,
  to: number,
  limit: number,
): ChunkRows | undefined {
  const [count, outOfLine, raw] = g.rangeBlob.get(from, to, limit) as [
    number,
    number,
    Uint8Array | null,
  ];
  if (count === 0) return { blob: new Uint8Array(0), ids: [], ends: [] };
  if (outOfLine !== 0 || !(raw instanceof Uint8Array)) return undefined;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const ids: number[] = new Array<number>(count);
  const ends: number[] = new Array<number>(count);
  let at = 0;
  let previous = from - 1;
  for (let i = 0; i < count; i++) {
    const headerEnd = at + KEY_BYTES + RECORD_HEADER_BYTES;
    if (headerEnd > raw.length) return undefined;
    const hi = view.getUint32(at, false);
    if (hi > 0x1fffff) return undefined;
    const id = hi * 0x1_0000_0000 + view.getUint32(at + 4, false);
    if (id <= previous || id >= to) return undefined;
    const end =
      at +
      KEY_BYTES +
      ENCODED_RECORD_OVERHEAD_BYTES +
      view.getUint32(at + KEY_BYTES + RECORD_LENGTH_OFFSET, true);
    if (end > raw.length) return undefined;
    ids[i] = id;
    ends[i] = end;
    previous = id;
    at = end;
  }
  return at === raw.length ? { blob: raw, ids, ends } : undefined;
}
