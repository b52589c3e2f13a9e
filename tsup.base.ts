import type { Options } from 'tsup';

/**
 * Shared tsup settings: ESM + CJS + .d.ts, entry src/index.ts. A package with a Node adapter entry
 * as well (storage/sqlite, transport/tcp, paxos/node) sets `splitting: true` so both entries share
 * one copy of its classes (an error thrown by one entry is `instanceof` the class of the other).
 */
export function packageBuild(overrides: Options = {}): Options {
  return {
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
    splitting: false,
    treeshake: true,
    ...overrides,
  };
}
