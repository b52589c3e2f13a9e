import { describe, expect, it } from 'vitest';
import { emptyCoverage } from '../coverage';
import type { Invariant } from '../result';
import { NodeErrorsChecker } from './node-errors';

function checker() {
  const notes: Array<[Invariant, string]> = [];
  const lines: string[] = [];
  const coverage = emptyCoverage();
  const c = new NodeErrorsChecker({
    groups: 1,
    paths: coverage.paths,
    log: (line) => lines.push(line),
    note: (invariant, message) => notes.push([invariant, message]),
    eventName: () => 'a timer',
  });
  return { c, notes, lines };
}

describe('NodeErrorsChecker', () => {
  it('takes a refused compaction for expected when a checkpoint is awaited or the disk failed', () => {
    const { c, notes, lines } = checker();
    const refused = { kind: 'compact-failed', node: 2, group: 0 } as const;
    c.observe({ ...refused, error: { code: 'E_NEEDS_CHECKPOINT' }, storeFailed: false });
    c.observe({ ...refused, error: { code: 'E_STORAGE' }, storeFailed: true });
    expect(notes).toEqual([]);
    expect(lines).toEqual([
      'n2 compact group 0 refused: E_NEEDS_CHECKPOINT',
      'n2 compact group 0 refused: E_STORAGE',
    ]);
  });

  it('reports any other failure as an error: a compaction, a checkpoint write', () => {
    const { c, notes } = checker();
    c.observe({
      kind: 'compact-failed',
      node: 2,
      group: 0,
      error: { code: 'E_STORAGE', message: 'disk full' },
      storeFailed: false, // no injected fsync failure: a bug
    });
    c.observe({ kind: 'checkpoint-write-failed', node: 3, group: 0, error: new Error('EIO') });
    expect(notes).toEqual([
      ['error', 'n2 group 0: compact failed: E_STORAGE: disk full'],
      ['error', 'n3 group 0: checkpoint write failed: Error: EIO'],
    ]);
  });
});
