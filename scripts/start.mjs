// `npm start`: a local 3-node cluster of the reference server (apps/node) on embedded SQLite under
// ./data. It prints each node's HTTP URL and the dashboard URL; Ctrl-C stops every node.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'apps', 'node', 'dist', 'cli.js');
const child = spawn(
  process.execPath,
  [cli, 'cluster', '--nodes', '3', '--data', './data', ...process.argv.slice(2)],
  { cwd: root, stdio: 'inherit' },
);
// The cluster process stops its nodes on SIGINT/SIGTERM; pass ours on and exit with its code.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
