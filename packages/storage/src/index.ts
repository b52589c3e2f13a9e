export { type LogStore, type WriteOptions, type MetaKey, MIN_CHOSEN_KEY } from './log-store';
export { type ResetOptions } from './log-store';
export { StorageError, type StorageErrorCode } from './errors';
export { type StorageOptions, DEFAULT_STORAGE_OPTIONS } from './options';
export { MemoryLogStore } from './memory-log-store';
export {
  SqliteLogStore,
  type SqliteLogStoreOptions,
  SCHEMA_VERSION,
  DATABASE_FILE,
  INSERT_ROWS_PER_STATEMENT,
} from './sqlite-log-store';
