// One page of `GET /kv?prefix=`: the groups' entries merged in key order. Keys hash to groups,
// so each group's file holds some of the keys of any prefix, each in order; a k-way merge of
// their cursors gives the page without reading more than it holds from any of them.
import type { KvEntry } from './kv-state-machine';

export interface ListPage {
  items: KvEntry[];
  /** The last key of the page when more may follow (the next page's `after`); null at the end. */
  next: string | null;
}

/** UTF-8 byte order: SQLite's BINARY collation, which orders each group's cursor. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Takes at most `limit` entries (and stops once their values reach `maxBytes`, after at least
 * one) from cursors that are each in key order; returns every cursor it opened.
 */
export function listPage(cursors: Iterator<KvEntry>[], limit: number, maxBytes: number): ListPage {
  const heads: (KvEntry | undefined)[] = [];
  try {
    for (const c of cursors) heads.push(nextOf(c));
    const items: KvEntry[] = [];
    let bytes = 0;
    for (;;) {
      let best = -1;
      for (let i = 0; i < heads.length; i++) {
        const h = heads[i];
        if (h !== undefined && (best < 0 || compareKeys(h.key, heads[best]!.key) < 0)) best = i;
      }
      if (best < 0) return { items, next: null }; // every cursor is done
      if (items.length === limit || (items.length > 0 && bytes >= maxBytes))
        return { items, next: items[items.length - 1]!.key };
      const entry = heads[best]!;
      items.push(entry);
      bytes += entry.value.length;
      heads[best] = nextOf(cursors[best]!);
    }
  } finally {
    for (const c of cursors) c.return?.();
  }
}

function nextOf(cursor: Iterator<KvEntry>): KvEntry | undefined {
  const r = cursor.next();
  return r.done === true ? undefined : r.value;
}
