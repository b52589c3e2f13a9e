// docs/operations.md's commands, run: every ```sh block there carries a marker, `<!-- run -->`
// or `<!-- not run: why -->`; the marked ones run in order, in a scratch directory, with
// TSPAXOS_ENDPOINTS set to a started 3-node cluster, each under `bash -euo pipefail` (one failing
// command fails the test). The guide is read from the file itself, so the two cannot drift.
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cluster, startCluster, tempDir } from './helpers';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const GUIDE = path.join(ROOT, 'docs', 'operations.md');
/** Blocks the guide runs today; a block moved to "not run" by mistake shows here. */
const MIN_RUN_BLOCKS = 4;

interface Block {
  line: number;
  run: boolean;
  why: string;
  code: string;
}

/** Every ```sh block with the marker on the line before it (undefined marker: an error). */
export function shellBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== '```sh') continue;
    const marker = /^<!-- (run|not run: (.+)) -->$/.exec(lines[i - 1] ?? '');
    const end = lines.indexOf('```', i + 1);
    if (marker === null)
      throw new Error(
        `${GUIDE}:${i + 1}: a sh block without <!-- run --> or <!-- not run: why -->`,
      );
    if (end < 0) throw new Error(`${GUIDE}:${i + 1}: an unclosed sh block`);
    blocks.push({
      line: i + 1,
      run: marker[1] === 'run',
      why: marker[2] ?? '',
      code: lines.slice(i + 1, end).join('\n'),
    });
    i = end;
  }
  return blocks;
}

function bash(
  code: string,
  cwd: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-euo', 'pipefail', '-c', code], {
      cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (c) => resolve({ code: c, out }));
  });
}

describe('docs/operations.md', () => {
  let cluster: Cluster | undefined;
  let work = '';
  beforeAll(async () => {
    cluster = await startCluster({ voters: 3, name: 'operations' });
    work = tempDir('operations');
    // The guide's commands are typed at the repository root (npx tspaxos, scripts/…): the
    // scratch directory sees the root's node_modules and scripts, and nothing is written there.
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(work, 'node_modules'));
    fs.symlinkSync(path.join(ROOT, 'scripts'), path.join(work, 'scripts'));
  }, 300_000);
  afterAll(async () => {
    await cluster?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('marks every sh block, and each one marked as run runs', { timeout: 300_000 }, async () => {
    const blocks = shellBlocks(fs.readFileSync(GUIDE, 'utf8'));
    const env = {
      ...process.env,
      TSPAXOS_ENDPOINTS: cluster!.nodes.map((n) => n.httpUrl).join(','),
    };
    let ran = 0;
    for (const block of blocks.filter((b) => b.run)) {
      const r = await bash(block.code, work, env);
      expect(r.code, `docs/operations.md:${block.line}:\n${block.code}\n---\n${r.out}`).toBe(0);
      ran++;
    }
    expect(ran).toBeGreaterThanOrEqual(MIN_RUN_BLOCKS);
    expect(blocks.filter((b) => !b.run).every((b) => b.why.length > 0)).toBe(true);
    // What the run blocks did: the key written before the backup came back from the restore.
    const restored = new Database(path.join(work, 'restored', 'kv-g0', 'checkpoint', 'kv.sqlite'), {
      readonly: true,
    });
    const row = restored.prepare('SELECT value FROM kv WHERE key = ?').get('config/colour') as
      { value: Buffer } | undefined;
    restored.close();
    expect(row?.value.toString()).toBe('blue');
    expect(fs.existsSync(path.join(work, 'tls', 'ca.pem'))).toBe(true);
  });

  it('refuses a sh block without a marker', () => {
    expect(() => shellBlocks('text\n```sh\necho hi\n```\n')).toThrow(/without <!-- run -->/);
    expect(
      shellBlocks('<!-- not run: needs hosts -->\n```sh\nx\n```\n<!-- run -->\n```sh\ny\n```'),
    ).toEqual([
      { line: 2, run: false, why: 'needs hosts', code: 'x' },
      { line: 6, run: true, why: '', code: 'y' },
    ]);
  });
});
