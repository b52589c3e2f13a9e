// The lint rules that hold the layering of DESIGN §1 and the sans-IO cores (STYLE.md 1, 2, 4):
// each planted violation is linted with the repository's own eslint.config.js (ESLint's Node API,
// as `npm run lint` uses it) and must be reported; what is allowed must stay clean; and the real
// tree is clean.
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const eslint = new ESLint({ cwd: root });

/** The rule ids (with the first words of their messages) ESLint reports for `code` at `file`. */
async function problems(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: `${root}${file}` });
  return result!.messages.map((m) => `${m.ruleId ?? 'fatal'}: ${m.message}`);
}

describe('lint: layering (DESIGN §1)', () => {
  it.each([
    // A core file deep-importing another package: the core override used to replace this rule.
    [
      'packages/learner/src/planted.ts',
      "import { SqliteLogStore } from '../../storage/src/sqlite-log-store';\nexport { SqliteLogStore };",
      /no-restricted-imports: .*public entries/,
    ],
    [
      'packages/learner/src/planted.ts',
      "import { createNode } from '@tspaxos/paxos';\nexport { createNode };",
      /no-restricted-imports: .*DESIGN §1: @tspaxos\/learner may not import/,
    ],
    [
      'packages/checkpoint/src/planted.ts',
      "import { Learner } from '@tspaxos/learner';\nexport { Learner };",
      /DESIGN §1: @tspaxos\/checkpoint may not import/,
    ],
    [
      'packages/storage/src/planted.ts',
      "import { MemoryNetwork } from '@tspaxos/transport';\nexport { MemoryNetwork };",
      /DESIGN §1: @tspaxos\/storage may not import/,
    ],
    [
      'packages/crc-wasm/src/planted.ts',
      "import { MemoryLogStore } from '@tspaxos/storage';\nexport { MemoryLogStore };",
      /DESIGN §1: @tspaxos\/crc-wasm may not import/,
    ],
    [
      'packages/core/src/planted.ts',
      "import { crc32 } from '@tspaxos/crc-wasm';\nexport { crc32 };",
      /DESIGN §1: @tspaxos\/core may not import/,
    ],
    [
      'packages/core/src/planted.ts',
      'export const now = (): number => Date.now();',
      /no-restricted-properties: .*Scheduler/,
    ],
    [
      'packages/paxos/bench/planted.mjs',
      "import { runSeed } from '@tspaxos/sim';\nexport { runSeed };",
      /DESIGN §1: @tspaxos\/paxos may not import/,
    ],
    [
      'packages/sim/src/planted.ts',
      "import { Instance } from '@tspaxos/paxos/dist/instance';\nexport { Instance };",
      /public entries/,
    ],
  ])('reports a planted violation in %s', async (file, code, expected) => {
    expect((await problems(file, code)).join('\n')).toMatch(expected);
  });

  it.each([
    [
      'packages/sim/src/planted.ts',
      "import { createNode } from '@tspaxos/paxos';\nexport { createNode };",
    ],
    [
      'packages/paxos/src/adapters/planted.ts',
      "import { SqliteLogStore } from '@tspaxos/storage/sqlite';\nexport { SqliteLogStore };",
    ],
    [
      'packages/paxos/bench/planted.mjs',
      "import { TcpNetwork } from '@tspaxos/transport/tcp';\nexport { TcpNetwork };",
    ],
    [
      'packages/learner/src/planted.ts',
      "import { MemoryLogStore } from '@tspaxos/storage';\nexport { MemoryLogStore };",
    ],
    [
      'packages/crc-wasm/src/planted.ts',
      "import { TspaxosError } from '@tspaxos/core';\nexport { TspaxosError };",
    ],
  ])('allows %s', async (file, code) => {
    expect(await problems(file, code)).toEqual([]);
  });
});

describe('lint: cores take time, randomness and I/O only through ports', () => {
  it.each([
    [
      "import { SqliteLogStore } from '@tspaxos/storage/sqlite';\nexport { SqliteLogStore };",
      /Core files do no I\/O/,
    ],
    [
      "import { TcpNetwork } from '@tspaxos/transport/tcp';\nexport { TcpNetwork };",
      /Core files do no I\/O/,
    ],
    [
      "import { createNode } from '@tspaxos/paxos/node';\nexport { createNode };",
      /Core files do no I\/O/,
    ],
    ["import { readFileSync } from 'node:fs';\nexport { readFileSync };", /Core files do no I\/O/],
    ['export const at = new Date();', /no-restricted-syntax: No wall clock/],
    ['export const at = Date.now();', /no-restricted-properties/],
    ['globalThis.setTimeout(() => 0, 1);', /no-restricted-properties/],
    ['export const t = globalThis.performance.now();', /no-restricted-properties/],
    ['export const t = performance.now();', /no-restricted-globals/],
    ['queueMicrotask(() => 0);', /no-restricted-globals/],
    ['export const id = crypto.randomUUID();', /no-restricted-globals/],
    ['export const r = Math.random();', /no-restricted-properties/],
    ['setTimeout(() => 0, 1);', /no-restricted-globals/],
  ])('reports %s in a core file', async (code, expected) => {
    for (const file of ['packages/paxos/src/planted.ts', 'packages/learner/src/planted.ts']) {
      expect((await problems(file, code)).join('\n'), file).toMatch(expected);
    }
  });

  it('allows the same in an adapter file and in tests', async () => {
    const code = 'export const t = performance.now() + Date.now() + new Date().getTime();';
    expect(await problems('packages/paxos/src/adapters/planted.ts', code)).toEqual([]);
    expect(await problems('packages/paxos/src/planted.test.ts', code)).toEqual([]);
  });
});

describe('lint: the real tree', () => {
  it('is clean', async () => {
    const results = await eslint.lintFiles(['packages', 'scripts', 'eslint.config.js']);
    const errors = results.flatMap((r) =>
      r.messages.map((m) => `${r.filePath}:${m.line} ${m.ruleId ?? 'fatal'} ${m.message}`),
    );
    expect(results.length).toBeGreaterThan(50);
    expect(errors).toEqual([]);
    // ESLint over the whole tree: fixed work that ran past 60 s on a loaded machine (load ~30).
  }, 180_000);
});
