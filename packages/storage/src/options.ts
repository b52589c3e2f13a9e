// Every limit of the storage, with where its default comes from.

export interface StorageOptions {
  /** Largest value a record may carry: 10 MiB (PhxPaxos MaxBufferSize in normal mode). */
  maxValueBytes: number;
  /** Most records one deleteBelow() call may remove (ours: ~1-3 ms of SQLite work). */
  maxDeleteRecords: number;
  /** Highest group index accepted (ours; PhxPaxos runs up to a few hundred groups). */
  maxGroup: number;
}

export const DEFAULT_STORAGE_OPTIONS: Readonly<StorageOptions> = Object.freeze({
  maxValueBytes: 10 * 1024 * 1024,
  maxDeleteRecords: 10_000,
  maxGroup: 100_000,
});
