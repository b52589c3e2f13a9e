import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base';

/**
 * Left outside the bundled bin: better-sqlite3 and msgpackr-extract are native addons found next
 * to their own files at run time; yaml is imported only for a YAML --config; the rest are fastify's
 * schema compilers and its inject(), which it requires only when used (no route has a schema), so
 * bundling them would only add ~1 MB to parse at every start.
 */
const RUNTIME_EXTERNAL = [
  'better-sqlite3',
  'msgpackr-extract',
  'yaml',
  'fast-json-stringify',
  '@fastify/ajv-compiler',
  'ajv',
  'ajv-formats',
  'light-my-request',
];

// An application, not a library: ESM only. Two builds:
// - dist/index.js, the library entry (tests, benchmarks): its dependencies stay imports, so it
//   shares one copy of each workspace package's classes with whoever imports them too;
// - dist/cli.js, the `tspaxos` bin (`npm start`, the tests' and the bench's nodes), and
//   dist/jepsen.js, the fault run of `npm run jepsen` (test/jepsen/cli.ts): one file each with the
//   workspace packages and the pure-JS dependencies inside, because a restarted node's start was
//   ~0.5 s of resolving, reading and compiling ~600 small modules (issue 22, BENCHMARKS.md). The
//   banner gives the bundled CommonJS dependencies the `require` an ES module lacks.
export default defineConfig([
  packageBuild({
    entry: { index: 'src/index.ts' },
    format: ['esm'],
    clean: ['index.*'],
  }),
  packageBuild({
    entry: { cli: 'src/cli.ts', jepsen: 'test/jepsen/cli.ts' },
    format: ['esm'],
    dts: { entry: { cli: 'src/cli.ts' } },
    clean: ['cli.*', 'jepsen.*'],
    noExternal: [new RegExp(`^(?!(${RUNTIME_EXTERNAL.join('|')})(/|$))`)],
    external: RUNTIME_EXTERNAL,
    banner: {
      js: "import { createRequire as __tspaxosCreateRequire } from 'node:module';\nconst require = __tspaxosCreateRequire(import.meta.url);",
    },
  }),
]);
