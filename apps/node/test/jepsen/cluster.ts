// Three (or more) `tspaxos node` processes whose paxos links each go through a LinkProxy: node
// i's `--cluster` names its own listen address and, for every peer j, the proxy of link i -> j.
// Voters' addresses come from `--cluster` only (the transport ignores a voter's hello address),
// so no frame goes around the proxies.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { NodeStatus } from '../../src/status';
import { freePorts, NodeProcess, tempDir, TEST_OUTPUT } from '../helpers';
import { LinkTable } from './proxy';

const STATUS_TIMEOUT_MS = 3000;

/** The node's fields of its /status, and group 0's (the only group these runs have). */
export interface StatusBody {
  nodeId: number;
  instanceId: number;
  lastChecksum: number;
  master: { nodeId: number } | null;
  taskErrors: { code: string; message: string }[];
  /** Quorum reads since the node's last start (`?consistent=true`, paxos quorum-read.ts). */
  quorumReads: NodeStatus['quorumReads'];
}

export async function statusOf(url: string): Promise<StatusBody> {
  const res = await fetch(`${url}/status`, { signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) });
  if (!res.ok) throw new Error(`status ${res.status}`);
  const s = (await res.json()) as NodeStatus;
  const g0 = s.groups[0]!;
  return {
    nodeId: s.nodeId,
    instanceId: g0.instanceId,
    lastChecksum: g0.lastChecksum,
    master: g0.master,
    taskErrors: s.taskErrors,
    quorumReads: s.quorumReads,
  };
}

export class ProxiedCluster {
  private constructor(
    readonly ids: number[],
    readonly nodes: Map<number, NodeProcess>,
    readonly links: LinkTable,
    readonly dataDir: string,
  ) {}

  /** Sets up the proxies and the node processes (not started); `args` go to every node. */
  static async create(name: string, ids: number[], args: string[]): Promise<ProxiedCluster> {
    const ports = await freePorts(ids.length * 2);
    const paxosPort = (id: number) => ports[ids.indexOf(id)]!;
    const httpPort = (id: number) => ports[ids.length + ids.indexOf(id)]!;
    const links = await LinkTable.start(ids, paxosPort);
    const dataDir = tempDir(name);
    const nodes = new Map<number, NodeProcess>();
    for (const id of ids) {
      const cluster = ids
        .map((p) => `${p}=127.0.0.1:${p === id ? paxosPort(id) : links.get(id, p).port}`)
        .join(',');
      const nodeArgs = [
        'node',
        '--id',
        String(id),
        '--cluster',
        cluster,
        '--http',
        `127.0.0.1:${httpPort(id)}`,
        '--data',
        path.join(dataDir, `node-${id}`),
        ...args,
      ];
      nodes.set(id, new NodeProcess(id, nodeArgs, `http://127.0.0.1:${httpPort(id)}`));
    }
    return new ProxiedCluster(ids, nodes, links, dataDir);
  }

  node(id: number): NodeProcess {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  /**
   * Waits until node `id` answers /status (NodeProcess.ready() would see an earlier start's line);
   * fails at once if the process ends meanwhile.
   */
  async answering(id: number): Promise<void> {
    const node = this.node(id);
    await node.waitWhileRunning('answering', async () => {
      return (await statusOf(node.httpUrl)).nodeId === id;
    });
  }

  /** Starts node `id`; if it does not answer, every node's output is saved (saveLogs) first. */
  async start(id: number): Promise<void> {
    this.node(id).start();
    try {
      await this.answering(id);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n(${this.saveLogs()})`, { cause: error });
    }
  }

  async startAll(): Promise<void> {
    await Promise.all(this.ids.map((id) => this.start(id)));
  }

  /**
   * Every node's output lines so far under test-output/<data dir's name>/node-<id>.log (the data
   * dir's name is unique to the cluster, so each run keeps its own); says where.
   */
  saveLogs(): string {
    const dir = path.join(TEST_OUTPUT, path.basename(this.dataDir));
    fs.mkdirSync(dir, { recursive: true });
    for (const n of this.nodes.values())
      fs.writeFileSync(path.join(dir, `node-${n.id}.log`), n.lines.join('\n') + '\n');
    return `the nodes' output is in ${dir}`;
  }

  /** Kills every node (SIGCONT first: a stopped process would not die of SIGTERM), closes the proxies. */
  async close(keepData = false): Promise<void> {
    for (const n of this.nodes.values()) if (n.running) n.child!.kill('SIGCONT');
    await Promise.all([...this.nodes.values()].map((n) => n.kill('SIGKILL')));
    await this.links.close();
    if (!keepData) fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** `tspaxos_consistent_read_barriers_total` of the node's /metrics (0 when none was counted). */
export async function consistentReadBarriersOf(url: string): Promise<number> {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) });
  if (!res.ok) throw new Error(`metrics ${res.status}`);
  const line = /^tspaxos_consistent_read_barriers_total(?:\{[^}]*\})? (\d+)/m.exec(
    await res.text(),
  );
  return line === null ? 0 : Number(line[1]);
}
