import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base';

// Two entries: the core (`@tspaxos/storage`) and the Node adapter (`@tspaxos/storage/sqlite`).
export default defineConfig(
  packageBuild({ entry: { index: 'src/index.ts', sqlite: 'src/sqlite.ts' }, splitting: true }),
);
