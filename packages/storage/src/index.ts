export { type LogStore, type WriteOptions, type MetaKey } from './log-store';
export { StorageError, type StorageErrorCode } from './errors';
export { type StorageOptions, DEFAULT_STORAGE_OPTIONS } from './options';
export { MemoryLogStore } from './memory-log-store';
export {
  SqliteLogStore,
  type SqliteLogStoreOptions,
  SCHEMA_VERSION,
  DATABASE_FILE,
} from './sqlite-log-store';
