import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base';

// Two entries: the core (`@tspaxos/transport`) and the Node adapter (`@tspaxos/transport/tcp`).
export default defineConfig(
  packageBuild({ entry: { index: 'src/index.ts', tcp: 'src/tcp.ts' }, splitting: true }),
);
