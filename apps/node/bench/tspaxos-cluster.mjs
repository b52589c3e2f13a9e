// A local 3-node cluster of `tspaxos node` processes on loopback, on ports picked free, data in a
// temp dir removed at stop. Every child is SIGKILLed if the bench exits first.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { endpoint, httpClient } from './http-client.mjs';

/** The node's CLI; BENCH_NODE_CLI runs another build (a before/after in one sitting). */
const CLI = process.env.BENCH_NODE_CLI || fileURLToPath(new URL('../dist/cli.js', import.meta.url));
/** BENCH_NODE_PROF=<dir>: every node writes a V8 CPU profile there when it stops (--cpu-prof). */
const PROF_DIR = (process.env.BENCH_NODE_PROF ?? '').trim();
const PROF_ARGS = PROF_DIR === '' ? [] : ['--cpu-prof', `--cpu-prof-dir=${PROF_DIR}`];
/** BENCH_NODE_TRACE=<dir>: every node stamps the steps of its writes there (trace-preload.mjs). */
const TRACE_ARGS =
  (process.env.BENCH_NODE_TRACE ?? '').trim() === ''
    ? []
    : ['--import', fileURLToPath(new URL('./trace-preload.mjs', import.meta.url))];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `n` ports free now on 127.0.0.1 (the OS picks them). */
export async function freePorts(n) {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise((resolve) => {
          const s = net.createServer();
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** Spawns `command args`; the child is killed if the bench exits first. */
export function spawnChild(command, args, stdio) {
  const child = spawn(command, args, { stdio });
  children.add(child);
  const exited = new Promise((r) => child.on('exit', r));
  child.on('exit', () => children.delete(child));
  return { child, exited };
}

/** `onLine(line)`, if given, gets every line of the node's stdout (its JSON log). */
export function startNode(args, onLine) {
  const { child, exited } = spawnChild(
    process.execPath,
    [...PROF_ARGS, ...TRACE_ARGS, CLI, ...args],
    ['ignore', 'pipe', 'inherit'],
  );
  let out = '';
  let partial = '';
  if (onLine !== undefined)
    child.stdout.on('data', (d) => {
      const parts = (partial + d.toString()).split('\n');
      partial = parts.pop();
      for (const line of parts) onLine(line);
    });
  const ready = new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      if (out !== null) {
        out += d.toString();
        if (out.includes('"msg":"listening"')) {
          out = null;
          resolve();
        }
      }
    });
    child.on('exit', (code) => reject(new Error(`node exited ${code}`)));
  });
  ready.catch(() => {}); // a kill after ready rejects it too; whoever awaits it sees the error
  return { child, ready, exited };
}

const statusClient = httpClient(4);

/** Group 0 of a node's /status (every /status lists its groups under `groups`). */
export async function statusOf(url) {
  const res = await statusClient.request(endpoint(url), '/status');
  if (!res.ok) throw new Error(`/status: HTTP ${res.status}`);
  return JSON.parse(res.body.toString()).groups[0];
}

/** Polls until one of `indices` reports itself master with a lease; its index. */
export async function waitForMaster(cluster, indices) {
  for (;;) {
    for (const i of indices) {
      const s = await statusOf(cluster.urls[i]);
      if (s.master !== null && s.master.self) return i;
    }
    await sleep(10);
  }
}

export async function startCluster(groups, extra = []) {
  const ports = await freePorts(6);
  const dir = mkdtempSync(join(tmpdir(), 'tspaxos-node-bench-'));
  const cluster = [1, 2, 3].map((i) => `${i}=127.0.0.1:${ports[i - 1]}`).join(',');
  const urls = [1, 2, 3].map((i) => `http://127.0.0.1:${ports[i + 2]}`);
  const argsOf = (i) => [
    'node',
    '--id',
    String(i),
    '--cluster',
    cluster,
    '--http',
    `127.0.0.1:${ports[i + 2]}`,
    '--data',
    join(dir, `node-${i}`),
    '--groups',
    String(groups),
    ...extra,
  ];
  const nodes = [1, 2, 3].map((i) => startNode(argsOf(i)));
  await Promise.all(nodes.map((n) => n.ready));
  return {
    urls,
    nodes,
    argsOf,
    dir,
    async stop() {
      for (const n of nodes) n.child.kill('SIGTERM');
      await Promise.all(nodes.map((n) => n.exited));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Closes the /status client's sockets (the bench's last step). */
export function closeStatusClient() {
  statusClient.close();
}
