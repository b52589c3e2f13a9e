// `tspaxos cluster`: N local nodes as child processes of this one, each with its own data
// directory, their log lines prefixed with the node id. Restarts none; Ctrl-C / SIGTERM stops all
// (SIGTERM to each, SIGKILL after CHILD_STOP_TIMEOUT_MS).
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CHILD_STOP_TIMEOUT_MS, HTTP_PORT_OFFSET } from './options';

export interface ClusterConfig {
  nodes: number;
  dataDir: string;
  basePort: number;
  host: string;
  groups: number;
}

const CLI = fileURLToPath(new URL('./cli.js', import.meta.url));

export function clusterArgs(config: ClusterConfig, id: number): string[] {
  const hostPort = (port: number) => `${config.host}:${port}`;
  const ids = Array.from({ length: config.nodes }, (_, i) => i + 1);
  return [
    'node',
    '--id',
    String(id),
    '--cluster',
    ids.map((i) => `${i}=${hostPort(config.basePort + i)}`).join(','),
    '--http',
    hostPort(config.basePort + HTTP_PORT_OFFSET + id),
    '--data',
    path.join(config.dataDir, `node-${id}`),
    '--groups',
    String(config.groups),
    '--http-peers',
    ids.map((i) => `${i}=${hostPort(config.basePort + HTTP_PORT_OFFSET + i)}`).join(','),
  ];
}

export async function runCluster(config: ClusterConfig): Promise<void> {
  const children = new Map<number, ChildProcess>();
  let stopping = false;
  const urls: string[] = [];
  for (let id = 1; id <= config.nodes; id++) {
    const child = spawn(process.execPath, [CLI, ...clusterArgs(config, id)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // The cluster's own TSPAXOS_* variables (TSPAXOS_DATA …) mean other things to a node.
      env: Object.fromEntries(
        Object.entries(process.env).filter(([name]) => !name.startsWith('TSPAXOS_')),
      ),
    });
    children.set(id, child);
    for (const stream of [child.stdout!, child.stderr!]) {
      readline.createInterface({ input: stream }).on('line', (line) => {
        process.stdout.write(`[node ${id}] ${line}\n`);
      });
    }
    child.on('exit', (code, signal) => {
      children.delete(id);
      process.stdout.write(`[cluster] node ${id} exited (${signal ?? `code ${code}`})\n`);
      if (children.size === 0) process.exit(stopping ? 0 : 1);
    });
    urls.push(`http://${config.host}:${config.basePort + HTTP_PORT_OFFSET + id}`);
  }
  process.stdout.write(
    `[cluster] ${config.nodes} nodes, data under ${path.resolve(config.dataDir)}\n` +
      urls.map((u, i) => `[cluster] node ${i + 1}: ${u}\n`).join('') +
      `[cluster] dashboard: ${urls[0]}/\n` +
      '[cluster] Ctrl-C stops every node\n',
  );
  const stopAll = () => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('[cluster] stopping\n');
    for (const child of children.values()) child.kill('SIGTERM');
    setTimeout(() => {
      for (const child of children.values()) child.kill('SIGKILL');
    }, CHILD_STOP_TIMEOUT_MS).unref();
  };
  process.on('SIGINT', stopAll);
  process.on('SIGTERM', stopAll);
}
