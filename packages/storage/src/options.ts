// Every limit of the storage, with its unit and where its default comes from (style.md 9).
import { type OptionRange, optionsProblem, RECORD_MAX_VALUE_BYTES } from '@tspaxos/crc-wasm';
import { StorageError } from './errors';

export interface StorageOptions {
  /**
   * Largest value a record (or a meta value) may carry, in bytes: 10 MiB, PhxPaxos
   * InsideOptions::GetMaxBufferSize in its normal (not large-value) mode.
   */
  maxValueBytes: number;
  /**
   * Most records one deleteBelow() call removes, whatever the caller asks: the cleaner calls it
   * again and again, and each call must be short. Ours: 1,000 records of 100 B took ~1 ms here
   * (bench/run.mjs, "deleteBelow step"). PhxPaxos's Cleaner deletes one instance at a time with
   * a short sleep in between (Cleaner::run).
   */
  maxDeleteRecords: number;
  /**
   * Most stored bytes one deleteBelow() call removes (it always removes at least one record):
   * the work of a delete grows with the pages it frees, so a count alone does not bound it.
   * Ours: 4 MiB took ~1 ms here (40 records of 100 KiB; 1,000 of them took ~28 ms).
   */
  maxDeleteBytes: number;
  /** Highest group index accepted (ours; PhxPaxos deployments run at most a few hundred). */
  maxGroup: number;
  /**
   * Bytes one chunk of a range() read may hold before it is decoded and handed out (ours):
   * range() reads the log in chunks so no SQLite statement stays open between two yields, and
   * memory stays bounded whatever the value sizes. 256 KiB keeps a chunk in the CPU cache while
   * its CRCs are checked: 1.3× faster than 4 MiB at 100 KiB values here, the same at 100 B.
   */
  rangeChunkBytes: number;
  /** Most records in one chunk of a range() read (ours: more gains nothing measurable). */
  rangeChunkMaxRecords: number;
  /** Longest meta key, in UTF-16 code units (ours: keys are names, not data). */
  maxMetaKeyLength: number;
  /**
   * Values longer than this many bytes are kept out of line, appended to a segment file, with
   * only an index row in SQLite (SqliteLogStore; MemoryLogStore keeps every value the same way).
   * 4 KiB, by measurement (bench/run.mjs, "out of line" rows; BENCHMARKS.md): batches of values
   * out of line against inline wrote 1.7–2.3× faster from 2 KiB up, but read 0.7–1.15× at
   * 2–3 KiB, 1.0–1.3× at 4 KiB and 1.1–2.9× at 16–64 KiB (one pread per value against SQLite
   * reading a row from the page it already holds): above 4 KiB both are faster out of line.
   */
  outOfLineValueBytes: number;
  /**
   * Size at which a segment file stops taking values (a value larger than this gets a segment
   * of its own): 100 MiB, PhxPaxos InsideOptions::GetLogFileMaxSize in its normal (not
   * large-buffer) mode, the size of its data files (LogStore in src/logstorage/log_store.cpp).
   * Compaction frees space a whole segment at a time.
   */
  segmentBytes: number;
  /**
   * Step in which a segment file is grown ahead of its appends (ftruncate), so most appends do
   * not change the file size: 8 MiB, ours (PhxPaxos extends a new data file to its full size at
   * once, LogStore::OpenFile; steps keep a small log's files small).
   */
  segmentGrowBytes: number;
}

export const DEFAULT_STORAGE_OPTIONS: Readonly<StorageOptions> = Object.freeze({
  maxValueBytes: 10 * 1024 * 1024,
  maxDeleteRecords: 1_000,
  maxDeleteBytes: 4 * 1024 * 1024,
  maxGroup: 100_000,
  rangeChunkBytes: 256 * 1024,
  rangeChunkMaxRecords: 256,
  maxMetaKeyLength: 128,
  outOfLineValueBytes: 4 * 1024,
  segmentBytes: 100 * 1024 * 1024,
  segmentGrowBytes: 8 * 1024 * 1024,
});

/** The allowed range of each option (E_BAD_ARGUMENT names the field and its range). */
export const STORAGE_OPTION_RANGES: Readonly<Record<keyof StorageOptions, OptionRange>> = {
  maxValueBytes: { min: 1, max: RECORD_MAX_VALUE_BYTES },
  maxDeleteRecords: { min: 1 },
  maxDeleteBytes: { min: 1 },
  maxGroup: { min: 1 },
  rangeChunkBytes: { min: 1 },
  rangeChunkMaxRecords: { min: 1 },
  maxMetaKeyLength: { min: 1 },
  outOfLineValueBytes: { min: 0, max: RECORD_MAX_VALUE_BYTES },
  segmentBytes: { min: 1 },
  segmentGrowBytes: { min: 1 },
};

/**
 * Merges caller options over the defaults and checks each against its range. Fields that are not
 * storage options (a SqliteLogStore's own `readonly`, `fsync`, …) are left to their owner.
 */
export function resolveStorageOptions(options: Partial<StorageOptions> = {}): StorageOptions {
  const given: Partial<StorageOptions> = {};
  for (const key of Object.keys(DEFAULT_STORAGE_OPTIONS) as Array<keyof StorageOptions>) {
    if (options[key] !== undefined) given[key] = options[key];
  }
  const problem = optionsProblem('storage', given, STORAGE_OPTION_RANGES);
  if (problem !== undefined) throw new StorageError('E_BAD_ARGUMENT', problem);
  return { ...DEFAULT_STORAGE_OPTIONS, ...given };
}
