import { describe, expect, it } from 'vitest';
import { compareKeys, listPage } from './kv-list';
import type { KvEntry } from './kv-state-machine';

const entry = (key: string, bytes = 1): KvEntry => ({
  key,
  value: Buffer.alloc(bytes),
  version: '1',
});

/** A cursor over sorted keys that counts what it handed out and whether it was returned. */
function cursor(keys: string[], bytes = 1) {
  const sorted = [...keys].sort(compareKeys);
  const state = { taken: 0, returned: false };
  const it: Iterator<KvEntry> = {
    next: () =>
      state.taken < sorted.length
        ? { done: false, value: entry(sorted[state.taken++]!, bytes) }
        : { done: true, value: undefined },
    return: () => {
      state.returned = true;
      return { done: true, value: undefined };
    },
  };
  return { it, state };
}

describe('listPage', () => {
  it('merges the groups in key order and pages with next', () => {
    const groups = [
      ['a', 'd', 'g'],
      ['b', 'e'],
      ['c', 'f', 'h', 'i'],
    ];
    const keys: string[] = [];
    let after: string | null = '';
    let pages = 0;
    while (after !== null) {
      const from = after;
      const cursors = groups.map((g) => cursor(g.filter((k) => compareKeys(k, from) > 0)));
      const page = listPage(
        cursors.map((c) => c.it),
        4,
        1 << 20,
      );
      pages++;
      expect(cursors.every((c) => c.state.returned)).toBe(true);
      // Each cursor gives at most one entry more than the page takes from it.
      expect(cursors.reduce((n, c) => n + c.state.taken, 0)).toBeLessThanOrEqual(4 + groups.length);
      keys.push(...page.items.map((e) => e.key));
      after = page.next;
    }
    expect(keys).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']);
    expect(pages).toBe(3); // 4 + 4 + 1
  });

  it('a full page says next only when an entry follows (it peeks every cursor)', () => {
    expect(listPage([cursor(['a', 'b']).it, cursor([]).it], 2, 1 << 20)).toMatchObject({
      next: null,
    });
    expect(listPage([cursor(['a', 'b']).it, cursor(['c']).it], 2, 1 << 20)).toMatchObject({
      next: 'b',
    });
    expect(listPage([cursor(['a']).it], 2, 1 << 20)).toMatchObject({ next: null });
  });

  it('stops at the byte bound, after at least one entry', () => {
    const big = listPage([cursor(['a', 'b', 'c'], 600).it], 1000, 1000);
    expect(big.items.map((e) => e.key)).toEqual(['a', 'b']);
    expect(big.next).toBe('b');
    const huge = listPage([cursor(['a', 'b'], 5000).it], 1000, 1000);
    expect(huge.items.map((e) => e.key)).toEqual(['a']);
  });

  it('orders by UTF-8 bytes, as SQLite does (not by UTF-16 code units)', () => {
    // U+FF61 < U+1F600 in code points and UTF-8; in UTF-16 the surrogate 0xD83D comes first.
    expect(compareKeys('\uFF61', '\u{1F600}')).toBeLessThan(0);
    expect('\uFF61' < '\u{1F600}').toBe(false);
    const page = listPage([cursor(['\u{1F600}']).it, cursor(['\uFF61']).it], 10, 1 << 20);
    expect(page.items.map((e) => e.key)).toEqual(['\uFF61', '\u{1F600}']);
  });
});
