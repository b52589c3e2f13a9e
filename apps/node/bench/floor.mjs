// The floor of a replicated durable write on this machine (issue 22): 3 plain Node processes
// (floor-node.mjs) that do only what any such write must, with the parts tspaxos uses: HTTP in,
// the value to 2 peers over loopback TCP, an append and an fdatasync of each copy, the answer
// once 2 of the 3 copies are durable. No consensus, index or state machine. The one-client cell
// runs it beside tspaxos and etcd: what neither server can beat by much on this machine, and so
// how far a goal stated against etcd is from what the hardware and Node give.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { endpoint } from './http-client.mjs';
import { freePorts, spawnChild } from './tspaxos-cluster.mjs';

const FLOOR_NODE = fileURLToPath(new URL('./floor-node.mjs', import.meta.url));

/** Starts one floor process; resolves once it prints "listening", rejects if it exits first. */
function startFloorNode(args) {
  const proc = spawnChild(process.execPath, [FLOOR_NODE, ...args], ['ignore', 'pipe', 'inherit']);
  const ready = new Promise((resolve, reject) => {
    let out = '';
    proc.child.stdout.on('data', (d) => {
      out += d.toString();
      if (out.includes('listening')) resolve();
    });
    proc.child.on('exit', (code, signal) =>
      reject(new Error(`floor node ${args[0]} exited (${code ?? signal}) before it listened`)),
    );
  });
  return { ...proc, ready };
}

/** The floor cluster as a side of the one-client cell: `put` to its leader, `pid`, `stop`. */
export async function floorSide() {
  const ports = await freePorts(4);
  const dir = mkdtempSync(join(tmpdir(), 'tspaxos-floor-bench-'));
  const nodes = [];
  // The followers listen before the leader connects to them.
  for (const i of [1, 2, 0]) {
    const node = startFloorNode([String(i), dir, ...ports.map(String)]);
    nodes[i] = node;
    await node.ready;
  }
  const target = endpoint(`http://127.0.0.1:${ports[3]}`);
  return {
    name: 'floor',
    leader: async () => 0,
    put: (client, _i, key, value) =>
      client.request(target, `/kv/${key}`, { method: 'PUT', body: value }),
    pid: (i) => nodes[i].child.pid,
    async stop() {
      for (const n of nodes) n.child.kill('SIGTERM');
      await Promise.all(nodes.map((n) => n.exited));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
