// Key validation and the key → group hash.
import { ServerError } from './errors';
import { MAX_KEY_BYTES } from './options';

const encoder = new TextEncoder();

/** Throws E_BAD_KEY unless the key is 1 … MAX_KEY_BYTES bytes of UTF-8 without control characters. */
export function checkKey(key: string): void {
  if (key.length === 0) throw new ServerError('E_BAD_KEY', 'the key is empty');
  checkKeyText(key, 'the key', 'E_BAD_KEY');
}

/** As checkKey, but it may be empty: a listing's `prefix` and `after` (what: how to name it). */
export function checkKeyText(key: string, what: string, code: 'E_BAD_KEY' | 'E_BAD_QUERY'): void {
  const bytes = encoder.encode(key).length;
  if (bytes > MAX_KEY_BYTES)
    throw new ServerError(code, `${what} has ${bytes} bytes; at most ${MAX_KEY_BYTES}`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(key))
    throw new ServerError(code, `${what} contains a control character`);
  if (key.includes('\uFFFD'))
    throw new ServerError(code, `${what} is not valid UTF-8 once percent-decoded`);
}

/** FNV-1a (32 bit) of the key's UTF-8 bytes, modulo the group count: stable across nodes and versions. */
export function groupOfKey(key: string, groups: number): number {
  let h = 0x811c9dc5;
  for (const b of encoder.encode(key)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % groups;
}
