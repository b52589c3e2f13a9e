// Segment files: where SqliteLogStore keeps values above options.outOfLineValueBytes, and the
// durable copy of every record a sync write or a batch with a large value writes. PhxPaxos's
// layout: Database::Put (src/logstorage/db.cpp) appends the value to a data file
// (LogStore::Append, fdatasync when the write is sync) and then puts a small index entry (file,
// offset, checksum) into LevelDB; here SQLite is the index.
//
// `segments/<group>/<id>.seg`: self-describing entries back to back (segment-entry.ts: group,
// length, batch, CRCs, then the whole record), so the segments alone can rebuild the index
// (recovery.ts). The index row in SQLite holds each value's segment, offset, length and CRC-32.
// A segment is named by the first instance written into it (or, when an older instance is
// rewritten after a rollover, the next free number: names only ever grow, across restarts too:
// a dropped group's floor is kept in the segments table). It takes entries until the next one
// would pass options.segmentBytes, and grows in steps of options.segmentGrowBytes (ftruncate),
// so an append rarely changes the file size.
//
// Who calls what, and in which order, is SqliteLogStore's business (the file header there has
// the durability argument); this class only keeps the files: append, read, scan, truncate,
// drop, and which descriptors have bytes not yet fdatasynced.
import {
  closeSync,
  existsSync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  rmdirSync,
  unlinkSync,
  writevSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  type AcceptorRecord,
  ENCODED_RECORD_OVERHEAD_BYTES,
  RECORD_TRAILER_BYTES,
} from '@tspaxos/crc-wasm';
import type { StorageOptions } from './options';
import {
  type EncodedEntry,
  encodeEntry,
  ENTRY_HEADER_BYTES,
  type ScanResult,
  scanEntries,
  sealEntry,
} from './segment-entry';

/** Writes all of `buffers` at `position` (a pwritev): the file port of the segment appends. */
export type SegmentWriteFn = (fd: number, buffers: readonly Uint8Array[], position: number) => void;

/** The default SegmentWriteFn: writevSync until every byte is written. */
export function writeAll(fd: number, buffers: readonly Uint8Array[], position: number): void {
  let total = 0;
  for (const b of buffers) total += b.length;
  let done = writevSync(fd, buffers as Uint8Array[], position);
  if (done === total) return;
  // A short write (rare: a signal, a nearly full disk): finish it one buffer at a time.
  let at = 0;
  for (const b of buffers) {
    const end = at + b.length;
    while (done < end) {
      const from = done - at;
      done += writevSync(fd, [b.subarray(from)], position + done);
    }
    at = end;
  }
}

/** One segment file of one group. */
export interface Segment {
  readonly group: number;
  readonly id: number;
  fd: number;
  /** End of the bytes the committed index rows point into (what the segments table says). */
  committedBytes: number;
  /** End of the bytes written, committed or not (the next append goes here). */
  writtenBytes: number;
  /** Size of the file: grown in steps ahead of writtenBytes. */
  fileBytes: number;
  /** Highest instance id written into it: it can go once every instance below the log's min is gone. */
  maxInstanceId: number;
  /** End of the bytes an fdatasync has made durable (each entry written records it). */
  syncedBytes: number;
}

/** Where one record's entry went, and its value within it. */
export interface Placement {
  segment: Segment;
  /** Offset of the entry. */
  entryOffset: number;
  /** Offset of the value. */
  offset: number;
  length: number;
  crc: number;
  /** A small value's whole record as encoded in the entry (its index row reuses the bytes). */
  record: Uint8Array | undefined;
}

/** A segment whose bytes up to `upTo` an fdatasync is making durable (takeDirty). */
export interface DirtySegment {
  segment: Segment;
  upTo: number;
}

/** What the last open repaired (recovery.ts). */
export interface SegmentRecovery {
  /** Bytes cut from segment files past the entries kept (room grown ahead, torn tails). */
  truncatedBytes: number;
  /** Segment files removed: dropped before a crash, or holding nothing to keep. */
  orphanFiles: number;
  /** Segments the index names whose file is gone. */
  missingFiles: number;
  /** Records whose index rows were rebuilt from their segment entries. */
  replayedRecords: number;
  /** Segments cut at an invalid entry past every synced byte (a torn append). */
  tornTails: number;
  /** Valid entries dropped because the rest of their batch was torn. */
  droppedEntries: number;
}

/** A row of the `segments` table. */
export interface SegmentRow {
  group: number;
  id: number;
  endBytes: number;
  maxInstanceId: number;
}

export class Segments {
  /** Per group: its segments by id. */
  private readonly groups = new Map<number, Map<number, Segment>>();
  /** Per group: the segment appends go to. */
  private readonly active = new Map<number, Segment>();
  /** Per group: the highest segment id used in this process (names never repeat). */
  private readonly lastId = new Map<number, number>();
  /** Segments with bytes written since their last fdatasync began. */
  private readonly dirty = new Set<Segment>();
  /** Directories whose entries changed since their last fsync began. */
  private readonly dirtyDirs = new Set<string>();
  /** Descriptors of dropped segments, closed once no fdatasync can be using them. */
  private readonly closeLater: number[] = [];
  /** What open() repaired. */
  readonly recovery: SegmentRecovery = {
    truncatedBytes: 0,
    orphanFiles: 0,
    missingFiles: 0,
    replayedRecords: 0,
    tornTails: 0,
    droppedEntries: 0,
  };

  constructor(
    readonly root: string,
    private readonly options: StorageOptions,
    private readonly write: SegmentWriteFn,
    private readonly readonly: boolean,
  ) {}

  private dir(group: number): string {
    return join(this.root, String(group));
  }

  private file(group: number, id: number): string {
    return join(this.dir(group), `${id}.seg`);
  }

  /**
   * Opens the segments the table names, and the files it does not name: those below their
   * group's floor (dropped by clearGroup/resetGroup before a crash) are removed; the others (a
   * segment whose index rows never reached the disk) are opened with nothing committed, for
   * recovery.ts to replay or discard. Nothing is truncated here. Returns the rows whose file is
   * missing. `floors`: per group, the lowest segment id still in use.
   */
  open(rows: readonly SegmentRow[], floors: ReadonlyMap<number, number>): SegmentRow[] {
    const missing: SegmentRow[] = [];
    const known = new Map<number, Set<string>>();
    for (const [group, floor] of floors)
      this.lastId.set(group, Math.max(this.lastId.get(group) ?? -1, floor - 1));
    for (const row of rows) {
      const path = this.file(row.group, row.id);
      let names = known.get(row.group);
      if (names === undefined) known.set(row.group, (names = new Set()));
      names.add(`${row.id}.seg`);
      // Names never repeat, a missing file's included: its rows must not find another's bytes.
      this.lastId.set(row.group, Math.max(this.lastId.get(row.group) ?? -1, row.id));
      if (!existsSync(path)) {
        missing.push(row);
        this.recovery.missingFiles++;
        continue;
      }
      this.adopt(row.group, row.id, path, row.endBytes, row.maxInstanceId);
    }
    if (!this.readonly && existsSync(this.root)) {
      for (const name of readdirSync(this.root)) {
        const group = Number(name);
        const dir = join(this.root, name);
        const names = known.get(group);
        let kept = 0;
        for (const file of readdirSync(dir)) {
          if (names?.has(file)) {
            kept++;
            continue;
          }
          const id = Number(file.slice(0, -'.seg'.length));
          const floor = floors.get(group) ?? 0;
          if (
            !Number.isSafeInteger(group) ||
            !file.endsWith('.seg') ||
            !Number.isSafeInteger(id) ||
            id < floor
          ) {
            unlinkSync(join(dir, file));
            this.recovery.orphanFiles++;
            continue;
          }
          this.lastId.set(group, Math.max(this.lastId.get(group) ?? -1, id));
          this.adopt(group, id, join(dir, file), 0, -1);
          kept++;
        }
        if (kept === 0) rmdirSync(dir);
      }
    }
    return missing;
  }

  private adopt(group: number, id: number, path: string, endBytes: number, maxInstanceId: number) {
    const fd = openSync(path, this.readonly ? 'r' : 'r+');
    const segment: Segment = {
      group,
      id,
      fd,
      committedBytes: endBytes,
      writtenBytes: endBytes,
      fileBytes: fstatSync(fd).size,
      maxInstanceId,
      syncedBytes: 0,
    };
    this.segmentsOf(group).set(id, segment);
    const active = this.active.get(group);
    if (active === undefined || active.id < id) this.active.set(group, segment);
  }

  /** The entries of `segment` from `from` on, up to the first invalid one (recovery.ts). */
  scan(segment: Segment, from: number): ScanResult {
    return scanEntries(segment.group, from, segment.fileBytes, (offset, length) => {
      const buffer = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const n = readSync(segment.fd, buffer, done, length - done, offset + done);
        if (n === 0) break;
        done += n;
      }
      return new Uint8Array(buffer.buffer, buffer.byteOffset, done);
    });
  }

  /**
   * Recovery decided that `segment` ends at `end` (its entries up to there are indexed): the
   * rest of the file goes. Returns the bytes cut.
   */
  truncateAt(segment: Segment, end: number): number {
    const cut = Math.max(0, segment.fileBytes - end);
    if (cut > 0) ftruncateSync(segment.fd, end);
    segment.fileBytes = Math.min(segment.fileBytes, end);
    segment.committedBytes = Math.max(segment.committedBytes, end);
    segment.writtenBytes = segment.committedBytes;
    // syncedBytes stays 0: what the open read may be only in the page cache (after a kill), so
    // no entry may claim it synced before an fdatasync has run.
    this.recovery.truncatedBytes += cut;
    return cut;
  }

  /** The lowest id a new segment of `group` may take. */
  nextId(group: number): number {
    return (this.lastId.get(group) ?? -1) + 1;
  }

  /** Removes a segment recovery found nothing to keep in (no row names it). */
  discard(segment: Segment): void {
    this.groups.get(segment.group)?.delete(segment.id);
    if (this.active.get(segment.group) === segment) {
      this.active.delete(segment.group);
      let top: Segment | undefined;
      for (const s of this.groups.get(segment.group)?.values() ?? [])
        if (top === undefined || s.id > top.id) top = s;
      if (top !== undefined) this.active.set(segment.group, top);
    }
    closeSync(segment.fd);
    unlinkSync(this.file(segment.group, segment.id));
    this.recovery.orphanFiles++;
    if (readdirSync(this.dir(segment.group)).length === 0) rmdirSync(this.dir(segment.group));
  }

  private segmentsOf(group: number): Map<number, Segment> {
    let m = this.groups.get(group);
    if (m === undefined) this.groups.set(group, (m = new Map()));
    return m;
  }

  /** A new segment for `group`, named by `firstInstanceId` unless that name was used. */
  private create(group: number, firstInstanceId: number): Segment {
    const id = Math.max(firstInstanceId, (this.lastId.get(group) ?? -1) + 1);
    const dir = this.dir(group);
    if (!existsSync(dir)) {
      if (!existsSync(this.root)) this.dirtyDirs.add(join(this.root, '..'));
      mkdirSync(dir, { recursive: true });
      this.dirtyDirs.add(this.root);
    }
    // 'w+': a leftover file of that name (only possible after an open that could not remove
    // it) is emptied rather than appended to.
    const fd = openSync(this.file(group, id), 'w+');
    this.dirtyDirs.add(dir);
    const segment: Segment = {
      group,
      id,
      fd,
      committedBytes: 0,
      writtenBytes: 0,
      fileBytes: 0,
      maxInstanceId: firstInstanceId,
      syncedBytes: 0,
    };
    this.segmentsOf(group).set(id, segment);
    this.active.set(group, segment);
    this.lastId.set(group, id);
    return segment;
  }

  /**
   * Appends the records as entries (segment-entry.ts) to the group's active segment, rolling
   * over to a new one when the next entry would pass segmentBytes: one pwritev per segment
   * touched. `batchSizes` splits the records into consecutive batches (default: all one batch),
   * each replayed whole or not at all; `entries`: the records already encoded (encodeEntry, their
   * headers sealed here). The bytes are in the OS when this returns, not durable; the caller
   * commits the index rows, then calls committed(), or rolledBack() if the commit failed.
   */
  append(
    group: number,
    records: readonly AcceptorRecord[],
    batchSizes: readonly number[] = [records.length],
    entries?: readonly EncodedEntry[],
  ): Placement[] {
    const placements: Placement[] = [];
    const { segmentBytes, segmentGrowBytes } = this.options;
    let segment = this.active.get(group);
    let run: Uint8Array[] = [];
    let runStart = 0;
    const flush = () => {
      if (segment === undefined || run.length === 0) return;
      const end = segment.writtenBytes;
      if (end > segment.fileBytes) {
        // Grow in large steps: most appends then leave the file size alone.
        const size = Math.min(
          Math.max(segmentBytes, end),
          Math.ceil(end / segmentGrowBytes) * segmentGrowBytes,
        );
        ftruncateSync(segment.fd, size);
        segment.fileBytes = size;
      }
      this.write(segment.fd, run, runStart);
      this.dirty.add(segment);
      run = [];
    };
    try {
      let batch = 0;
      let batchEnd = batchSizes[0] ?? records.length;
      for (let i = 0; i < records.length; i++) {
        while (i >= batchEnd) batchEnd += batchSizes[++batch] ?? records.length;
        const r = records[i]!;
        const entryBytes = ENTRY_HEADER_BYTES + ENCODED_RECORD_OVERHEAD_BYTES + r.value.length;
        if (
          segment === undefined ||
          (segment.writtenBytes > 0 && segment.writtenBytes + entryBytes > segmentBytes)
        ) {
          flush();
          segment = this.create(group, r.instanceId);
        }
        if (run.length === 0) runStart = segment.writtenBytes;
        const more = batchEnd - 1 - i;
        let entry = entries?.[i];
        if (entry === undefined) entry = encodeEntry(group, r, more, segment.syncedBytes);
        else sealEntry(entry, group, more, segment.syncedBytes);
        const entryOffset = segment.writtenBytes;
        placements.push({
          segment,
          entryOffset,
          offset: entryOffset + entry.valueOffset,
          length: r.value.length,
          crc: entry.valueCrc,
          record: entry.record,
        });
        for (const b of entry.buffers) run.push(b);
        segment.writtenBytes += entry.bytes;
        if (r.instanceId > segment.maxInstanceId) segment.maxInstanceId = r.instanceId;
      }
      flush();
    } catch (e) {
      // A failed write (a full disk): nothing of this append counts; the next one writes over it.
      this.rolledBack(placements);
      throw e;
    }
    return placements;
  }

  /** The index rows of the last append committed: their bytes are now the committed end. */
  committed(placements: readonly Placement[]): void {
    for (const p of placements) {
      const end = p.offset + p.length + RECORD_TRAILER_BYTES;
      if (end > p.segment.committedBytes) p.segment.committedBytes = end;
    }
  }

  /**
   * The commit of the last append failed: its bytes are garbage, and the next append writes over
   * them. A segment it created stays (empty: the open after a crash removes it if never used).
   */
  rolledBack(placements: readonly Placement[]): void {
    for (const p of placements) {
      p.segment.writtenBytes = p.segment.committedBytes;
      // maxInstanceId may stay raised: it only decides when a segment can go, conservatively.
    }
  }

  /** One value's bytes (a fresh buffer), or undefined if the file is gone or too short. */
  read(group: number, id: number, offset: number, length: number): Uint8Array | undefined {
    const segment = this.groups.get(group)?.get(id);
    if (segment === undefined) return undefined;
    const buffer = Buffer.allocUnsafeSlow(length);
    let done = 0;
    while (done < length) {
      const n = readSync(segment.fd, buffer, done, length - done, offset + done);
      if (n === 0) return undefined; // past the end of the file: the bytes never reached it
      done += n;
    }
    return new Uint8Array(buffer.buffer, buffer.byteOffset, length);
  }

  /** The segments of `group` whose instances are all below `bound` (the active one included). */
  below(group: number, bound: number): Segment[] {
    const out: Segment[] = [];
    for (const s of this.groups.get(group)?.values() ?? [])
      if (s.maxInstanceId < bound) out.push(s);
    return out;
  }

  /** The groups that have segments. */
  groupsWithSegments(): number[] {
    return [...this.groups.keys()];
  }

  /** Every segment of `group`. */
  all(group: number): Segment[] {
    return [...(this.groups.get(group)?.values() ?? [])];
  }

  /**
   * Forgets the segments (their rows are gone from the table, or going in the transaction under
   * way); their descriptors close at the next release(), when no fdatasync can still be using
   * them. Their files stay until unlink().
   */
  forget(segments: readonly Segment[]): void {
    for (const s of segments) {
      this.groups.get(s.group)?.delete(s.id);
      if (this.active.get(s.group) === s) this.active.delete(s.group);
      this.dirty.delete(s);
      this.closeLater.push(s.fd);
    }
  }

  /** Removes the files of forgotten segments (names are never reused, so no new file is hit). */
  unlink(segments: readonly Segment[]): void {
    for (const s of segments) unlinkSync(this.file(s.group, s.id));
  }

  /** Bytes of every segment file (status pages). */
  totalBytes(): number {
    let n = 0;
    for (const m of this.groups.values()) for (const s of m.values()) n += s.fileBytes;
    return n;
  }

  /**
   * Takes the segments with bytes not yet fdatasynced (with how far they are written now), and
   * the directories to fsync. After their fdatasync, synced() records how far each is durable.
   */
  takeDirty(): { segments: DirtySegment[]; dirs: string[] } {
    const segments = [...this.dirty].map((segment) => ({ segment, upTo: segment.writtenBytes }));
    this.dirty.clear();
    const dirs = [...this.dirtyDirs];
    this.dirtyDirs.clear();
    return { segments, dirs };
  }

  /** The fdatasync of takeDirty()'s segments is done. */
  synced(dirty: readonly DirtySegment[]): void {
    for (const { segment, upTo } of dirty)
      if (upTo > segment.syncedBytes) segment.syncedBytes = upTo;
  }

  /** Segments with bytes not yet fdatasynced, or directories not yet fsynced. */
  get hasDirty(): boolean {
    return this.dirty.size > 0 || this.dirtyDirs.size > 0;
  }

  /** Closes the descriptors of dropped segments (call when no fdatasync is under way). */
  release(): void {
    for (const fd of this.closeLater.splice(0)) closeSync(fd);
  }

  /** Closes every descriptor, first giving back the room grown ahead of the appends. */
  close(): void {
    this.release();
    for (const m of this.groups.values())
      for (const s of m.values()) {
        if (!this.readonly && s.fileBytes > s.committedBytes) ftruncateSync(s.fd, s.committedBytes);
        closeSync(s.fd);
      }
    this.groups.clear();
    this.active.clear();
  }
}

/** Bytes of the locator an index row carries in place of an out-of-line value. */
export const LOCATOR_BYTES = 24;

/** The locator of a value: segment id, offset, length, CRC-32 (little-endian, in the CRC-sealed record). */
export function encodeLocator(
  segment: number,
  offset: number,
  length: number,
  crc: number,
): Uint8Array {
  const out = new Uint8Array(LOCATOR_BYTES);
  const v = new DataView(out.buffer);
  v.setUint32(0, segment % 2 ** 32, true);
  v.setUint32(4, Math.floor(segment / 2 ** 32), true);
  v.setUint32(8, offset % 2 ** 32, true);
  v.setUint32(12, Math.floor(offset / 2 ** 32), true);
  v.setUint32(16, length, true);
  v.setUint32(20, crc, true);
  return out;
}

export function decodeLocator(
  bytes: Uint8Array,
): { segment: number; offset: number; length: number; crc: number } | undefined {
  if (bytes.length !== LOCATOR_BYTES) return undefined;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const segment = v.getUint32(0, true) + v.getUint32(4, true) * 2 ** 32;
  const offset = v.getUint32(8, true) + v.getUint32(12, true) * 2 ** 32;
  if (!Number.isSafeInteger(segment) || !Number.isSafeInteger(offset)) return undefined;
  return { segment, offset, length: v.getUint32(16, true), crc: v.getUint32(20, true) };
}
