// Shared by the crash test and its child: the records the child writes, fully determined by
// (id, batch first, batch count, big).

/** xorshift32: the child's schedule, reproducible from the seed the parent gives it. */
export function nextRandom(x) {
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  return x >>> 0;
}

/** Filler length of record `id`: mostly 50–550 B, sometimes 32–96 KiB (`big`: out of line). */
function fillerLength(id, big) {
  return big ? 32 * 1024 + ((id * 7919) % (64 * 1024)) : 50 + ((id * 131) % 500);
}

export function crashValue(id, first, count, big) {
  const header = new TextEncoder().encode(`${id}/${first}/${count}/${big ? 1 : 0}|`);
  const n = fillerLength(id, big);
  const value = new Uint8Array(header.length + n);
  value.set(header);
  for (let k = 0; k < n; k++) value[header.length + k] = (id * 31 + k) & 0xff;
  return value;
}

export function crashRecord(id, first, count, big) {
  return {
    instanceId: id,
    promiseId: id + 1,
    promiseNodeId: 1,
    acceptedId: id + 1,
    acceptedNodeId: 1,
    value: crashValue(id, first, count, big),
    checksum: id % 2 ** 32,
  };
}

/** The batch a stored value says it belongs to, after checking every byte of it. */
export function parseCrashValue(record) {
  const text = new TextDecoder().decode(record.value.subarray(0, 64));
  const [id, first, count, big] = text.slice(0, text.indexOf('|')).split('/').map(Number);
  const expected = crashRecord(record.instanceId, first, count, big === 1);
  const same =
    id === record.instanceId &&
    record.promiseId === expected.promiseId &&
    record.acceptedId === expected.acceptedId &&
    record.checksum === expected.checksum &&
    Buffer.from(record.value).equals(Buffer.from(expected.value));
  return same ? { first, count } : undefined;
}
