// docs/operations.md read as a script, for the tests that run its commands: every ```sh block
// carries a marker on the line before it. `<!-- run -->`: run by operations.test.ts against a
// cluster on this machine's loopback. `<!-- run on hosts: STEP -->`: run by
// operations-hosts.test.ts on the guide's hosts 10.0.0.x (network namespaces), STEP naming the
// step. `<!-- not run: why -->`: run by no test, and says why.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from './helpers';

export const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
export const GUIDE = path.join(ROOT, 'docs', 'operations.md');

export interface Block {
  line: number;
  /** The `## ` heading the block is under. */
  section: string;
  /** Run on this machine (`<!-- run -->`). */
  run: boolean;
  /** The step of `<!-- run on hosts: STEP -->`, else ''. */
  hosts: string;
  /** Why a `<!-- not run: why -->` block is not run, else ''. */
  why: string;
  code: string;
}

/** Every ```sh block with the marker on the line before it (no marker: an error). */
export function shellBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  let section = '';
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.startsWith('## ')) section = lines[i]!.slice(3);
    if (lines[i] !== '```sh') continue;
    const marker = /^<!-- (run|run on hosts: ([a-z0-9-]+)|not run: (.+)) -->$/.exec(
      lines[i - 1] ?? '',
    );
    const end = lines.indexOf('```', i + 1);
    if (marker === null)
      throw new Error(
        `${GUIDE}:${i + 1}: a sh block without <!-- run -->, <!-- run on hosts: step --> or <!-- not run: why -->`,
      );
    if (end < 0) throw new Error(`${GUIDE}:${i + 1}: an unclosed sh block`);
    blocks.push({
      line: i + 1,
      section,
      run: marker[1] === 'run',
      hosts: marker[2] ?? '',
      why: marker[3] ?? '',
      code: lines.slice(i + 1, end).join('\n'),
    });
    i = end;
  }
  return blocks;
}

export function guideBlocks(): Block[] {
  return shellBlocks(fs.readFileSync(GUIDE, 'utf8'));
}

/**
 * A scratch directory to run the guide's commands in. They are typed at the repository root
 * (npx tspaxos, scripts/…, node apps/node/dist/cli.js): the scratch directory sees the root's
 * node_modules, scripts and apps, and nothing is written there.
 */
export function guideWorkDir(name: string): string {
  const work = tempDir(name);
  for (const dir of ['node_modules', 'scripts', 'apps'])
    fs.symlinkSync(path.join(ROOT, dir), path.join(work, dir));
  return work;
}

/**
 * Runs `code` under `bash -euo pipefail` (one failing command fails it), after `prefix` (e.g.
 * `ip netns exec NS`), to its end or until `timeoutMs` (then killed, code null).
 */
export function bash(
  code: string,
  cwd: string,
  env: NodeJS.ProcessEnv,
  prefix: string[] = [],
  timeoutMs = 300_000,
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const [command, ...args] = [...prefix, 'bash', '-euo', 'pipefail', '-c', code];
    const child = spawn(command!, args, {
      cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group: a timeout kills what it started too
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => {
      out += `\n[killed after ${timeoutMs} ms]`;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch (error) {
        if ((error as { code?: string }).code !== 'ESRCH') throw error;
      }
    }, timeoutMs);
    // 'close': the output is complete (a command it left in the background has its own files).
    child.on('close', (c) => {
      clearTimeout(timer);
      resolve({ code: c, out });
    });
  });
}
