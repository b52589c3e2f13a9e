// `npm start`. The reference server (apps/node) is not built yet, so for now this runs the
// crc-wasm benchmark and says so. Once apps/node exists it starts the local 3-node cluster.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
console.log('tspaxos: the reference server (apps/node) is not built yet;');
console.log('running the @tspaxos/crc-wasm benchmark instead (see README.md, Status).\n');
const result = spawnSync(process.execPath, ['bench/run.mjs'], {
  cwd: join(root, 'packages', 'crc-wasm'),
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
