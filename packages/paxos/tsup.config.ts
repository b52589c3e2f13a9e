import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base';

// Four entries: the public core (`@tspaxos/paxos`, sans-IO), the Node entry (`@tspaxos/paxos/node`:
// createNode over TCP and SQLite), the internals (`/internal`: the lower-level node, codecs) and
// the virtual-time test cluster (`/testing`).
export default defineConfig(
  packageBuild({
    entry: {
      index: 'src/index.ts',
      node: 'src/adapters/node-entry.ts',
      internal: 'src/internal.ts',
      testing: 'src/adapters/testing-entry.ts',
    },
    splitting: true,
  }),
);
