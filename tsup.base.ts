import type { Options } from 'tsup';

/** Shared tsup settings: ESM + CJS + .d.ts, one entry per package (src/index.ts). */
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
