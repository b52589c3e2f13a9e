import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base';

// Two entries: the sans-IO core (no node:* import) and the Node file adapter behind
// `@tspaxos/checkpoint/fs` (design.md §1: what needs Node sits behind a subpath export).
export default defineConfig(
  packageBuild({ entry: { index: 'src/index.ts', fs: 'src/adapters/fs.ts' } }),
);
