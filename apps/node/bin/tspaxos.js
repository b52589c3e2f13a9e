#!/usr/bin/env node
// The `tspaxos` bin. This file is committed, not built: npm links a workspace's bin at install,
// before any build, and skips a bin whose file is not there yet (so `npx tspaxos` at the
// repository root failed on a fresh clone). The root `prepare` script builds dist/ right after.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('tspaxos: not built yet: run `npm run build` at the repository root\n');
  process.exit(1);
}
await import(cli.href);
