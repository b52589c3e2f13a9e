// How records and meta values are stored, and how damage is told apart from data.
//
// Records: encodeRecord bytes of @tspaxos/crc-wasm (fixed layout, CRC-32 trailer). Reading
// checks the CRC, the layout, and that the record names the instance it is filed under, so a
// flipped bit anywhere in the record, or a record moved to another key, reads as
// E_CORRUPT_RECORD, never as a wrong value.
//
// Meta values: the bytes followed by the CRC-32 of (key, bytes), little-endian. Including the
// key means a value filed under the wrong key is caught too.
import {
  type AcceptorRecord,
  CodecError,
  crc32,
  decodeRecord,
  encodeRecord,
} from '@tspaxos/crc-wasm';
import { StorageError } from './errors';

/** Bytes a stored meta value takes beyond the value (its CRC-32). */
export const META_TRAILER_BYTES = 4;

/** Encodes a record for storage, turning a CodecError into a StorageError with context. */
export function encodeStored(group: number, record: AcceptorRecord): Uint8Array {
  return withCodecErrors(group, record.instanceId, () => encodeRecord(record));
}

/** Runs an encode, turning a CodecError (refused input) into a StorageError with context. */
export function withCodecErrors<T>(
  group: number,
  instanceId: number | undefined,
  encode: () => T,
): T {
  try {
    return encode();
  } catch (e) {
    if (e instanceof CodecError) {
      const code = e.code === 'E_UNSAFE_INTEGER' ? 'E_UNSAFE_INTEGER' : 'E_BAD_ARGUMENT';
      const what = instanceId === undefined ? 'a record' : `record ${instanceId}`;
      throw new StorageError(code, `${what} of group ${group}: ${e.message}`, {
        group,
        instanceId,
        cause: e,
      });
    }
    throw e;
  }
}

export function corruptRecord(
  group: number,
  instanceId: number,
  why: string,
  cause?: unknown,
): StorageError {
  return new StorageError(
    'E_CORRUPT_RECORD',
    `group ${group} instance ${instanceId}: stored record is damaged (${why})`,
    { group, instanceId, cause },
  );
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
    throw corruptRecord(group, instanceId, e instanceof CodecError ? e.code : String(e), e);
  }
  if (record.instanceId !== instanceId) {
    throw corruptRecord(group, instanceId, `it names instance ${record.instanceId}`);
  }
  return record;
}

const utf8 = new TextEncoder();

function metaCrc(key: string, value: Uint8Array): number {
  return crc32(value, crc32(utf8.encode(key)));
}

/** value ‖ CRC-32(key, value): what is stored for a meta value. */
export function sealMeta(key: string, value: Uint8Array): Uint8Array {
  const out = new Uint8Array(value.length + META_TRAILER_BYTES);
  out.set(value);
  new DataView(out.buffer).setUint32(value.length, metaCrc(key, value), true);
  return out;
}

/** The value of stored meta bytes (a fresh copy), or E_CORRUPT_META if they are damaged. */
export function openMeta(group: number, key: string, stored: Uint8Array): Uint8Array {
  const n = stored.length - META_TRAILER_BYTES;
  const ok =
    n >= 0 &&
    new DataView(stored.buffer, stored.byteOffset, stored.byteLength).getUint32(n, true) ===
      metaCrc(key, stored.subarray(0, n));
  if (!ok) {
    throw new StorageError(
      'E_CORRUPT_META',
      `group ${group}: stored meta value ${JSON.stringify(key)} is damaged (bad CRC)`,
      { group },
    );
  }
  return stored.slice(0, n);
}
