import { describe, expect, it } from 'vitest';
import { describeLogStoreContract, record } from './log-store.contract';
import { MemoryLogStore } from './memory-log-store';

describeLogStoreContract('MemoryLogStore', async () => {
  const store = new MemoryLogStore();
  return { store, reopen: async () => store, cleanup: async () => {} };
});

describe('MemoryLogStore power loss', () => {
  it('crash() keeps sync writes and everything before them, loses the rest', async () => {
    const store = new MemoryLogStore();
    await store.put(0, record(1), { sync: false });
    await store.put(0, record(2), { sync: true }); // makes 1 durable too (like an fsync of the WAL)
    await store.put(0, record(3), { sync: false });
    await store.put(0, record(2, 'overwritten'), { sync: false });
    await store.setMeta(0, 'masterVariables', new Uint8Array([1]), { sync: false });
    store.deleteBelow(0, 2, 10);
    store.crash();
    expect(store.get(0, 1)).toBeDefined();
    expect(new TextDecoder().decode(store.get(0, 2)!.value)).toBe('value-2');
    expect(store.get(0, 3)).toBeUndefined();
    expect(store.getMeta(0, 'masterVariables')).toBeUndefined();
  });

  it('reads a damaged record as E_CORRUPT_RECORD with group and instance, others still read', async () => {
    const store = new MemoryLogStore();
    await store.putMany(0, [record(1), record(2)], { sync: true });
    store.corrupt(0, 1, 60);
    expect(() => store.get(0, 1)).toThrow(
      expect.objectContaining({ code: 'E_CORRUPT_RECORD', group: 0, instanceId: 1 }),
    );
    expect(store.get(0, 2)).toBeDefined();
  });
});
