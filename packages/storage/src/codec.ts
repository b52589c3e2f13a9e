import { type AcceptorRecord, CodecError, decodeRecord, encodeRecord } from '@tspaxos/crc-wasm';
import { StorageError } from './errors';

/** Encodes a record for storage, turning a CodecError into a StorageError with context. */
export function encodeStored(group: number, record: AcceptorRecord): Uint8Array {
  try {
    return encodeRecord(record);
  } catch (e) {
    if (e instanceof CodecError) {
      const code = e.code === 'E_UNSAFE_INTEGER' ? 'E_UNSAFE_INTEGER' : 'E_BAD_ARGUMENT';
      throw new StorageError(code, `record ${record.instanceId} of group ${group}: ${e.message}`, {
        group,
        instanceId: record.instanceId,
        cause: e,
      });
    }
    throw e;
  }
}

/**
 * Decodes stored bytes: damaged bytes, or a record filed under the wrong instance, read as
 * E_CORRUPT_RECORD with the group and instance id, never as a wrong value.
 */
export function decodeStored(group: number, instanceId: number, bytes: Uint8Array): AcceptorRecord {
  let record: AcceptorRecord;
  try {
    record = decodeRecord(bytes);
  } catch (e) {
    const why = e instanceof CodecError ? e.code : String(e);
    throw new StorageError(
      'E_CORRUPT_RECORD',
      `group ${group} instance ${instanceId}: stored record is damaged (${why})`,
      {
        group,
        instanceId,
        cause: e,
      },
    );
  }
  if (record.instanceId !== instanceId) {
    throw new StorageError(
      'E_CORRUPT_RECORD',
      `group ${group} instance ${instanceId}: stored record says instance ${record.instanceId}`,
      {
        group,
        instanceId,
      },
    );
  }
  return record;
}
