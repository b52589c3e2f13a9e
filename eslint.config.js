// One lint setup for the whole tree. Besides the usual rules it enforces the layering of
// DESIGN.md §1 (packages import each other only through their public entry) and keeps the
// sans-IO cores free of real clocks, real randomness and node:* modules (STYLE.md 1, 2, 4).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Files that hold protocol cores: no I/O, no wall clock, no Math.random. */
const CORE_FILES = [
  'packages/learner/src/**/*.ts',
  'packages/paxos/src/**/*.ts',
  'packages/checkpoint/src/**/*.ts',
];
/** Adapter files inside core packages that are allowed to do I/O. */
const ADAPTER_FILES = ['**/src/adapters/**/*.ts', '**/*.test.ts'];

export default tseslint.config(
  {
    ignores: ['**/dist/**', '**/build/**', '**/node_modules/**', '**/.turbo/**', '**/src/generated/**', 'packages/crc-wasm/assembly/**', 'data/**'],
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
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['@tspaxos/*/*', '**/packages/*/src/**', '../../*/src/**'],
              message: 'Import other packages only through their public entry (@tspaxos/<name>).',
            },
          ],
        },
      ],
    },
  },
  {
    files: CORE_FILES,
    ignores: ADAPTER_FILES,
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*', 'fs', 'net', 'tls', 'os', 'path', 'better-sqlite3'], message: 'Core files do no I/O: take a port instead (STYLE.md 1).' },
            { group: ['@tspaxos/*/*'], message: 'Import other packages only through their public entry.' },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'setTimeout', message: 'Use the injected Clock (STYLE.md 2).' },
        { name: 'setInterval', message: 'Use the injected Clock (STYLE.md 2).' },
        { name: 'setImmediate', message: 'Use the injected Clock (STYLE.md 2).' },
        { name: 'performance', message: 'Use the injected Clock (STYLE.md 2).' },
        { name: 'process', message: 'Libraries never read or exit the process (STYLE.md 6).' },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'Use the injected Clock (STYLE.md 2).' },
        { object: 'Math', property: 'random', message: 'Use the injected Rng (STYLE.md 2).' },
      ],
    },
  },
);
