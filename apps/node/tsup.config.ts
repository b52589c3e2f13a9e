import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base';

// An application, not a library: ESM only; dist/cli.js is the `tspaxos` bin.
export default defineConfig(
  packageBuild({ entry: ['src/index.ts', 'src/cli.ts'], format: ['esm'] }),
);
