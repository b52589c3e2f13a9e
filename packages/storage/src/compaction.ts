// Removing records: the cleaner's bounded deleteBelow steps, dropping a whole group (clearGroup,
// resetGroup), and the open's repair of a deleteBelow that a power cut undid. Rows go first, in
// a transaction with the rows of the segments they empty; the segment files are unlinked after
// that commit (deleteBelow) or once it is durable (dropping a group).
import type Database from 'better-sqlite3';
import { openMeta } from './codec';
import { decodeInstanceId, deleteCount, MIN_CHOSEN_KEY } from './log-store';
import type { StorageOptions } from './options';
import {
  FLOOR_SEGMENT,
  plain,
  type MetaStatements,
  type RecordTables,
  type SegmentStatements,
} from './schema';
import type { Segment, SegmentRow, Segments } from './segments';
import { wrap } from './sqlite-errors';

export interface CompactionParts {
  db: Database.Database;
  options: StorageOptions;
  tables: RecordTables;
  segments: Segments;
  segmentRows: SegmentStatements;
  /** Counts a commit's WAL pages (WalCheckpointer.wrote). */
  wrote: (bytes: number, pages: number) => void;
  /** Resolves once every commit so far is durable (GroupCommit.durable). */
  durable: () => Promise<void>;
  /** A group commit is under way (its fdatasyncs may use a dropped segment's descriptor). */
  syncing: () => boolean;
}

export class Compaction {
  constructor(private readonly parts: CompactionParts) {}

  /**
   * Deletes the lowest rows below `instanceId` (at most `limit`, and as the port's byte bound
   * says), then, in the same transaction, the segments that hold only instances below both
   * `instanceId` and the lowest row left; their files are unlinked after the commit. The bytes a
   * step frees are bounded by maxDeleteBytes plus at most one partly freed segment.
   */
  deleteBelow(group: number, instanceId: number, limit: number): number {
    const { db, options, tables, segments, segmentRows } = this.parts;
    try {
      const g = tables.statements(group, false);
      if (g === undefined) return 0;
      const lowest = g.lowest.all(instanceId, limit) as Array<[number, number]>;
      const count = deleteCount(
        lowest.map((row) => row[1]),
        options,
      );
      if (count === 0) return 0;
      let deleted = 0;
      let doomed: Segment[] = [];
      db.transaction(() => {
        // The `count` lowest records are exactly those up to the last one counted.
        deleted = g.deleteThrough.run(lowest[count - 1]![0]).changes;
        const left = g.min.get() as number | null;
        doomed = segments.below(group, Math.min(instanceId, left ?? instanceId));
        for (const s of doomed) segmentRows.delete.run(group, s.id);
      })();
      this.parts.wrote(0, 1 + Math.floor(deleted / 50));
      segments.forget(doomed);
      if (!this.parts.syncing()) segments.release();
      // Not durable, like the row deletes: after a power cut the rows may come back without
      // their file, below the min chosen id; the next open deletes them again (forgetCompacted).
      segments.unlink(doomed);
      return deleted;
    } catch (e) {
      throw wrap(e, 'E_IO', `delete below ${instanceId} in group ${group}`, { group });
    }
  }

  /**
   * Removes the group's rows and segment rows, and runs `alsoInTransaction`, in one
   * transaction; once it is durable, unlinks the segment files.
   */
  dropGroup(group: number, alsoInTransaction: () => void): Promise<void> {
    const { db, tables, segments, segmentRows } = this.parts;
    let doomed: Segment[];
    try {
      const g = tables.statements(group, false);
      doomed = segments.all(group);
      db.transaction(() => {
        g?.clear.run();
        segmentRows.clearGroup.run(group);
        // The floor: the open after a crash removes the dropped files rather than replay them.
        segmentRows.upsert.run(group, FLOOR_SEGMENT, segments.nextId(group), FLOOR_SEGMENT);
        alsoInTransaction();
      })();
      this.parts.wrote(0, 4);
      segments.forget(doomed);
    } catch (e) {
      return Promise.reject(wrap(e, 'E_IO', `clear of group ${group}`, { group }));
    }
    // Unlinked only once the commit that forgot them is durable: a power cut before it brings
    // the rows back, and they must find their bytes. A crash after it leaves files no row
    // names, which the next open removes.
    return this.parts.durable().then(() => {
      try {
        segments.unlink(doomed);
      } catch (e) {
        throw wrap(e, 'E_IO', `unlink of the segments of group ${group}`, { group });
      }
    });
  }
}

/**
 * At open: segments whose file is gone while their rows are below the group's min chosen
 * instance id. deleteBelow removed the file after a commit that a power cut then undid; their
 * rows were deleted once already, so they are deleted again. A missing segment with rows at or
 * above the min chosen id is left alone: those rows read as E_CORRUPT_RECORD.
 */
export function forgetCompacted(
  db: Database.Database,
  meta: MetaStatements,
  tables: RecordTables,
  segmentRows: SegmentStatements,
  missing: readonly SegmentRow[],
): void {
  if (missing.length === 0) return;
  db.transaction(() => {
    for (const row of missing) {
      const stored = meta.get.get(row.group, MIN_CHOSEN_KEY) as Uint8Array | undefined;
      const min = decodeInstanceId(
        stored === undefined ? undefined : openMeta(row.group, MIN_CHOSEN_KEY, plain(stored)),
        row.group,
      );
      if (row.maxInstanceId >= min) continue;
      tables.deleteSegment(row.group, row.id);
      segmentRows.delete.run(row.group, row.id);
    }
  })();
}
