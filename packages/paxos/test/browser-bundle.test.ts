// design.md §1: the core entries load in a browser or an edge runtime. Each entry is bundled for the
// browser platform with esbuild (as a web app's bundler would) and every import of a Node
// built-in (node:*, fs, net, tls, …) or of better-sqlite3 is collected; a core entry must have
// none. The Node adapter entries are bundled too, to show that the check sees what they load.
import { builtinModules } from 'node:module';
import { build, type Plugin } from 'esbuild';
import { describe, expect, it } from 'vitest';

const CORE_ENTRIES = [
  '@tspaxos/crc-wasm',
  '@tspaxos/storage',
  '@tspaxos/transport',
  '@tspaxos/checkpoint',
  '@tspaxos/learner',
  '@tspaxos/paxos',
];

const NODE_ONLY = new Set([...builtinModules, 'better-sqlite3']);

function isNodeOnly(path: string): boolean {
  if (path.startsWith('node:')) return true;
  return NODE_ONLY.has(path) || NODE_ONLY.has(path.split('/')[0]!);
}

/** Bundles `entry` for the browser; returns the Node-only modules it imports, as `importer -> module`. */
async function nodeImportsOf(entry: string): Promise<string[]> {
  const found: string[] = [];
  const spy: Plugin = {
    name: 'node-only-imports',
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) => {
        if (!isNodeOnly(args.path)) return undefined;
        found.push(`${args.importer.replace(/^.*(node_modules|packages)\//, '')} -> ${args.path}`);
        return { path: args.path, external: true };
      });
    },
  };
  await build({
    stdin: { contents: `export * from '${entry}';`, resolveDir: import.meta.dirname },
    bundle: true,
    platform: 'browser',
    format: 'esm',
    write: false,
    logLevel: 'silent',
    plugins: [spy],
  });
  return found;
}

describe('core entries bundle for the browser without Node built-ins', () => {
  for (const entry of CORE_ENTRIES) {
    it(entry, async () => {
      expect(await nodeImportsOf(entry)).toEqual([]);
    });
  }

  // The check itself: the adapter entries do load Node built-ins, and the check reports them.
  it.each([
    ['@tspaxos/storage/sqlite', /-> better-sqlite3$/m],
    ['@tspaxos/transport/tcp', /-> (node:)?net$/m],
    ['@tspaxos/checkpoint/fs', /-> (node:)?fs(\/promises)?$/m],
    ['@tspaxos/paxos/node', /-> better-sqlite3$/m],
  ])('reports the Node built-ins of the adapter entry %s', async (entry, expected) => {
    const found = await nodeImportsOf(entry);
    expect(found.join('\n')).toMatch(expected);
  });
});
