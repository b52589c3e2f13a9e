// SQLite's and the file system's errors as coded StorageErrors: the adapter's side of "bad input
// from outside is a typed error" (style.md 10). A StorageError passes through unchanged.
import { corruptRecord } from './codec';
import { StorageError, type StorageErrorCode } from './errors';

function classify(e: unknown, fallback: StorageErrorCode): StorageErrorCode {
  const code = String((e as { code?: unknown })?.code ?? '');
  if (code.startsWith('SQLITE_FULL') || code === 'ENOSPC' || code === 'EFBIG') return 'E_DISK_FULL';
  if (code.startsWith('SQLITE_READONLY') || code === 'EROFS' || code === 'EACCES')
    return 'E_READ_ONLY';
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return 'E_LOCKED';
  if (code.startsWith('SQLITE_NOTADB') || code.startsWith('SQLITE_CANTOPEN'))
    return 'E_OPEN_FAILED';
  if (code.startsWith('SQLITE_IOERR') || code === 'EIO') return 'E_IO';
  return fallback;
}

export function wrap(
  e: unknown,
  fallback: StorageErrorCode,
  what: string,
  where: { group?: number; instanceId?: number } = {},
): StorageError {
  if (e instanceof StorageError) return e;
  const code = classify(e, fallback);
  const message = e instanceof Error ? e.message : String(e);
  return new StorageError(code, `${what}: ${message}`, { ...where, cause: e });
}

/** A failed read: damage SQLite itself notices (a broken page) is a corrupt record too. */
export function wrapRead(
  e: unknown,
  group: number,
  instanceId: number,
  what: string,
): StorageError {
  if (e instanceof StorageError) return e;
  const code = String((e as { code?: unknown })?.code ?? '');
  if (code.startsWith('SQLITE_CORRUPT') || code.startsWith('SQLITE_NOTADB'))
    return corruptRecord(group, instanceId, `SQLite: ${(e as Error).message}`, e);
  return wrap(e, 'E_IO', what, { group, instanceId });
}
