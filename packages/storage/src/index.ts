export { type LogStore, type WriteOptions, type MetaKey, MIN_CHOSEN_KEY } from './log-store';
export { type ResetOptions } from './log-store';
export { StorageError, type StorageErrorCode } from './errors';
export { type StorageOptions, DEFAULT_STORAGE_OPTIONS } from './options';
export { MemoryLogStore, type DurabilityPort } from './memory-log-store';
