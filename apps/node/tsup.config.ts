import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base';

// An application, not a library: ESM only; dist/cli.js is the `tspaxos` bin, dist/jepsen.js the
// fault run of `npm run jepsen` (test/jepsen/cli.ts).
export default defineConfig(
  packageBuild({
    entry: { index: 'src/index.ts', cli: 'src/cli.ts', jepsen: 'test/jepsen/cli.ts' },
    format: ['esm'],
    dts: { entry: { index: 'src/index.ts', cli: 'src/cli.ts' } },
  }),
);
