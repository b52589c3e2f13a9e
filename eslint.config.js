// One lint setup for the whole tree. Besides the usual rules it enforces the layering of
// design.md §1 (packages import each other only through their public entries, and a lower
// package never imports a higher one), forbids import cycles among a package's own modules, and
// keeps the sans-IO cores free of real clocks, real randomness and node:* modules (style.md 1,
// 2, 4).
import js from '@eslint/js';
import { createNodeResolver, importX } from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

/** Files that hold protocol cores: no I/O, no wall clock, no Math.random. */
const CORE_PACKAGES = ['core', 'learner', 'paxos', 'checkpoint'];
/** Adapter files inside core packages that are allowed to do I/O. */
const ADAPTER_FILES = ['**/src/adapters/**/*.ts', '**/*.test.ts'];

/** The Node-only entries of packages (design.md §1): public, but never imported by a core file. */
const ADAPTER_ENTRIES = [
  '@tspaxos/storage/sqlite',
  '@tspaxos/transport/tcp',
  '@tspaxos/paxos/node',
  '@tspaxos/checkpoint/fs',
];

/**
 * design.md §1, lowest first: a package may import only packages of a lower rank (core < crc-wasm <
 * storage, transport < checkpoint < learner < paxos < sim, apps). storage and transport share a
 * rank and do not import each other.
 */
const LAYERS = [
  ['core'],
  ['crc-wasm'],
  ['storage', 'transport'],
  ['checkpoint'],
  ['learner'],
  ['paxos'],
  ['sim', 'node'],
];
const rankOf = (name) => LAYERS.findIndex((layer) => layer.includes(name));

/** Packages `name` must not import: its own layer's peers and every higher layer. */
function forbiddenPackages(name) {
  const rank = rankOf(name);
  return LAYERS.flat().filter((other) => other !== name && rankOf(other) >= rank);
}

/** Rules every file obeys: other packages only through their public entries. */
const BASE_PATTERNS = [
  {
    group: [
      '@tspaxos/*/*',
      ...ADAPTER_ENTRIES.map((entry) => `!${entry}`),
      '**/packages/*/src/**',
      '../../*/src/**',
    ],
    message:
      'Import other packages only through their public entries (@tspaxos/<name>, or an adapter entry such as @tspaxos/storage/sqlite).',
  },
];

/** What a core file may not import besides: I/O modules and adapter entries. */
const CORE_PATTERNS = [
  {
    group: ['node:*', 'fs', 'net', 'tls', 'os', 'path', 'better-sqlite3'],
    message: 'Core files do no I/O: take a port instead (style.md 1).',
  },
  {
    group: ADAPTER_ENTRIES,
    message: 'Core files do no I/O: import the core entry and take a port instead (design.md §1).',
  },
];

function layerPatterns(name) {
  const forbidden = forbiddenPackages(name);
  if (forbidden.length === 0) return [];
  return [
    {
      group: forbidden.flatMap((other) => [`@tspaxos/${other}`, `@tspaxos/${other}/*`]),
      message: `design.md §1: @tspaxos/${name} may not import a package of its own or a higher layer (order: ${LAYERS.map((l) => l.join(', ')).join(' < ')}).`,
    },
  ];
}

/**
 * ESLint replaces a rule that a later config object sets again, so each file set gets the whole
 * list: the base patterns, its package's layer, and for core files the core patterns.
 */
const restrictImports = (...patterns) => ['error', { patterns: [...BASE_PATTERNS, ...patterns] }];

/** Packages and apps by directory, so that the layering config finds each one. */
const PACKAGE_DIRS = LAYERS.flat().map((name) =>
  name === 'node' ? `apps/${name}` : `packages/${name}`,
);

const SOURCE_EXTENSIONS = ['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs'];

/**
 * No import cycle inside a package (issue 21): the layering above orders the packages, this
 * orders the modules of each. Other packages are external here (their order is the layering's).
 */
const NO_CYCLE = {
  files: [`**/*.{${SOURCE_EXTENSIONS.map((e) => e.slice(1)).join(',')}}`],
  plugins: { 'import-x': importX },
  settings: {
    'import-x/extensions': SOURCE_EXTENSIONS,
    'import-x/parsers': { '@typescript-eslint/parser': ['.ts', '.mts', '.cts'] },
    'import-x/resolver-next': [createNodeResolver({ extensions: SOURCE_EXTENSIONS })],
  },
  rules: { 'import-x/no-cycle': ['error', { ignoreExternal: true }] },
};

/**
 * apps/node: the HTTP layer, the metrics and the status declare the narrow interface they need
 * from the node and server.ts implements it (etcd's etcdhttp), so only the entry points import
 * the server. This also holds the edges no-cycle does not follow (`import type`, issue 21).
 */
const NODE_SERVER_IMPORTERS = ['apps/node/src/{index,run-node,cli}.ts', '**/*.test.ts'];
const NODE_SERVER_PATTERNS = [
  {
    group: ['./server', '../server', '../../server', './server.*', '../server.*'],
    message:
      'Only the entry points import server.ts: declare the interface this module needs, and let KvServer implement it (issue 21).',
  },
];

const CORE_TIMER_MESSAGE = 'Use the injected Scheduler (style.md 2).';
const CORE_GLOBAL_MESSAGE =
  'Cores reach time, randomness and the process only through injected ports (style.md 2, 6).';

export default tseslint.config(
  {
    ignores: [
      '**/dist/**',
      '**/build/**',
      '**/node_modules/**',
      '**/.turbo/**',
      '**/src/generated/**',
      'packages/crc-wasm/assembly/**',
      'data/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        console: 'readonly',
        process: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        queueMicrotask: 'readonly',
        performance: 'readonly',
        WebAssembly: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
        atob: 'readonly',
        URL: 'readonly',
        AbortController: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/no-non-null-assertion': 'off',
      'no-restricted-imports': restrictImports(),
    },
  },
  NO_CYCLE,
  ...PACKAGE_DIRS.map((dir) => ({
    files: [`${dir}/**/*.{ts,mts,cts,js,mjs,cjs}`],
    rules: { 'no-restricted-imports': restrictImports(...layerPatterns(dir.split('/')[1])) },
  })),
  {
    files: ['apps/node/src/**/*.ts'],
    ignores: NODE_SERVER_IMPORTERS,
    rules: {
      'no-restricted-imports': restrictImports(...layerPatterns('node'), ...NODE_SERVER_PATTERNS),
    },
  },
  ...CORE_PACKAGES.map((name) => ({
    files: [`packages/${name}/src/**/*.ts`],
    ignores: ADAPTER_FILES,
    rules: {
      'no-restricted-imports': restrictImports(...layerPatterns(name), ...CORE_PATTERNS),
      'no-restricted-globals': [
        'error',
        ...['setTimeout', 'setInterval', 'setImmediate', 'queueMicrotask', 'performance'].map(
          (name) => ({
            name,
            message: CORE_TIMER_MESSAGE,
          }),
        ),
        { name: 'crypto', message: 'Use the injected RandomSource (style.md 2).' },
        { name: 'process', message: 'Libraries never read or exit the process (style.md 6).' },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'Use the injected Scheduler (style.md 2).' },
        {
          object: 'Math',
          property: 'random',
          message: 'Use the injected RandomSource (style.md 2).',
        },
        ...[
          'setTimeout',
          'setInterval',
          'setImmediate',
          'queueMicrotask',
          'performance',
          'crypto',
          'process',
          'Date',
        ].map((property) => ({ object: 'globalThis', property, message: CORE_GLOBAL_MESSAGE })),
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector: "NewExpression[callee.name='Date']",
          message: 'No wall clock in a core: use the injected Scheduler (style.md 2).',
        },
        {
          selector: "CallExpression[callee.name='Date']",
          message: 'No wall clock in a core: use the injected Scheduler (style.md 2).',
        },
      ],
    },
  })),
);
