import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base';

// Two entries: the core (`@tspaxos/paxos`) and the Node entry (`@tspaxos/paxos/node`: createNode
// with dataDir, the real clock and randomness).
export default defineConfig(
  packageBuild({
    entry: { index: 'src/index.ts', node: 'src/adapters/node-entry.ts' },
    splitting: true,
  }),
);
