// The open's recovery: the segments are the truth, the SQLite index is brought up to them.
//
// A sync write whose records are segment entries is acknowledged after the segments'
// fdatasync alone; its index rows sit in the WAL, which is fsynced later (by a write that needs
// it, a checkpoint, close()). So after a power cut the index may lack rows whose entries are
// durable. What it holds is a prefix of its commits (SQLite's WAL), and each commit that wrote
// entries' rows also moved its segment's committed end (the segments table) in the same
// transaction: every entry below a segment's committed end has its row (or a later row
// replaced it), and no durable row is newer than an entry past it. So the open replays, per
// group in segment order, every valid entry from the committed end on (a segment no row names:
// from its start), batch by batch, over whatever rows are there.
//
// Where the entries stop: at the end of the file, at zeros (room grown ahead of the appends),
// or at an invalid entry. An invalid entry is a torn tail (the power cut or the kill took the
// rest of an append that was never acknowledged): the file is cut there, with any entries of an
// unfinished batch before it, counted (`recovery.tornTails`, `droppedEntries`) and logged. But
// if a valid entry header further on says the segment was fdatasynced past the invalid one, the
// damage is in bytes that were durable: the open fails with E_CORRUPT_RECORD rather than cut
// acknowledged writes. Bytes below the committed end are not scanned: a damaged value there
// reads as E_CORRUPT_RECORD (its CRC is in its row).
import type { Logger } from '@tspaxos/core';
import { crc32, RECORD_HEADER_BYTES } from '@tspaxos/crc-wasm';
import type Database from 'better-sqlite3';
import { openMeta } from './codec';
import { StorageError } from './errors';
import { decodeInstanceId, MIN_CHOSEN_KEY } from './log-store';
import { type MetaStatements, plain, type RecordTables } from './schema';
import { ENTRY_HEADER_BYTES, type ScannedEntry } from './segment-entry';
import type { Placement, Segment, Segments } from './segments';

export interface RecoveryParts {
  db: Database.Database;
  meta: MetaStatements;
  tables: RecordTables;
  segments: Segments;
  logger: Logger | undefined;
}

/** The min chosen instance id of `group` as stored (0 when never set). */
export function storedMinChosen(meta: MetaStatements, group: number): number {
  const stored = meta.get.get(group, MIN_CHOSEN_KEY) as Uint8Array | undefined;
  return decodeInstanceId(
    stored === undefined ? undefined : openMeta(group, MIN_CHOSEN_KEY, plain(stored)),
    group,
  );
}

interface Found {
  segment: Segment;
  entry: ScannedEntry;
}

/** Replays every group's entries past the index, in one transaction (see the file header). */
export function replaySegments(parts: RecoveryParts): void {
  const { db, segments } = parts;
  db.transaction(() => {
    for (const group of segments.groupsWithSegments()) replayGroup(parts, group);
  })();
}

function replayGroup(parts: RecoveryParts, group: number): void {
  const { segments, logger } = parts;
  const list = segments.all(group).sort((a, b) => a.id - b.id);
  const minChosen = storedMinChosen(parts.meta, group);
  const recovery = segments.recovery;
  /** Segments no row names (Segments.open marks them with maxInstanceId -1), and those indexed now. */
  const orphans = new Set(list.filter((s) => s.maxInstanceId < 0));
  const indexed = new Set<Segment>();
  /** Where each segment's kept bytes end (its committed end, or past the entries replayed). */
  const keep = new Map<Segment, number>();
  let batch: Found[] = [];
  let torn = false;
  for (const segment of list) {
    const from = segment.committedBytes;
    keep.set(segment, from);
    if (torn || from >= segment.fileBytes) continue;
    const scan = segments.scan(segment, from);
    if (scan.tornBytes > 0 && scan.syncedMarkAfterEnd > scan.end) {
      throw new StorageError(
        'E_CORRUPT_RECORD',
        `segment ${segment.id} of group ${group} is damaged at byte ${scan.end}: a later entry ` +
          `says the segment was fdatasynced through byte ${scan.syncedMarkAfterEnd}`,
        { group },
      );
    }
    for (const entry of scan.entries) {
      batch.push({ segment, entry });
      if (entry.more === 0) {
        for (const s of apply(parts, group, batch, minChosen)) indexed.add(s);
        for (const f of batch) keep.set(f.segment, f.entry.offset + f.entry.bytes);
        batch = [];
      }
    }
    if (scan.tornBytes > 0) {
      torn = true;
      recovery.tornTails++;
      logger?.('warn', 'storage-torn-tail', {
        group,
        segment: segment.id,
        offset: scan.end,
        bytes: scan.tornBytes,
      });
    }
  }
  if (batch.length > 0) {
    // A batch the kill or the power cut left unfinished: none of it is kept.
    recovery.droppedEntries += batch.length;
    logger?.('warn', 'storage-unfinished-batch', {
      group,
      segment: batch[0]!.segment.id,
      offset: batch[0]!.entry.offset,
      entries: batch.length,
    });
  }
  for (const segment of list) {
    const end = keep.get(segment)!;
    if (orphans.has(segment) && !indexed.has(segment)) {
      segments.discard(segment); // no row names it and nothing in it was indexed
      continue;
    }
    if (end < segment.fileBytes) segments.truncateAt(segment, end);
    else segment.writtenBytes = segment.committedBytes = Math.max(segment.committedBytes, end);
  }
}

/**
 * Writes the rows of one complete batch of entries (those below the min chosen id are not);
 * returns the segments that got rows.
 */
function apply(
  parts: RecoveryParts,
  group: number,
  batch: Found[],
  minChosen: number,
): Set<Segment> {
  const records = [];
  const placements: Placement[] = [];
  for (const { segment, entry } of batch) {
    const end = entry.offset + entry.bytes;
    if (end > segment.writtenBytes) segment.writtenBytes = end;
    if (entry.record.instanceId < minChosen) continue;
    if (entry.record.instanceId > segment.maxInstanceId)
      segment.maxInstanceId = entry.record.instanceId;
    const value = entry.record.value;
    records.push(entry.record);
    placements.push({
      segment,
      entryOffset: entry.offset,
      offset: entry.offset + ENTRY_HEADER_BYTES + RECORD_HEADER_BYTES,
      length: value.length,
      crc: crc32(value),
      record: undefined,
    });
  }
  if (records.length > 0) {
    parts.tables.statements(group, true)!.putMixed(records, placements);
    parts.segments.recovery.replayedRecords += records.length;
  }
  return new Set(placements.map((p) => p.segment));
}
