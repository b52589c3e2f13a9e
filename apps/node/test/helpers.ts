// Process-level test helpers: real `tspaxos node` processes on loopback, ports chosen at run time.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { QUEUE_MAX_AGE_MS } from '@tspaxos/transport';
import type { GroupView, NodeStatus } from '../src/status';

export const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
/** apps/node/test-output (git-ignored): logs kept for reading a failure (from dist/ too). */
export const TEST_OUTPUT = fileURLToPath(new URL('../test-output', import.meta.url));
/** How long a node process may take to print `listening`. */
const READY_TIMEOUT_MS = 120_000;

/** freePorts picks from here up to the kernel's own range (ephemeralPorts). */
const PICK_FROM_PORT = 20_000;
/** Fewer ports than this below the kernel's range: freePorts takes the kernel's picks instead. */
const PICK_MIN_PORTS = 2000;

/**
 * The range the kernel picks ports from itself, for a listen on port 0 and for an outgoing
 * connection: Linux's ip_local_port_range, else the IANA range (macOS's and Windows' default).
 */
export function ephemeralPorts(): { low: number; high: number } {
  try {
    const text = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8');
    const [low, high] = text.trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) return { low: low!, high: high! };
  } catch {
    // Not Linux.
  }
  return { low: 49152, high: 65535 };
}

/** Listens on `port` of the loopback (0: the kernel picks); rejects when it cannot. */
export function listenOn(port: number): Promise<net.Server> {
  return new Promise<net.Server>((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

/** Closes every server; resolves once all are closed. */
export function closeServers(servers: readonly net.Server[]): Promise<void[]> {
  return Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
}

/**
 * `n` distinct loopback ports, free when picked (bound, then released) for nodes to bind a
 * moment later. They come from below the kernel's range (ephemeralPorts), where no listen on
 * port 0 and no outgoing connection lands, so only a bind naming the port can take one in
 * between. Picked on port 0, they shared a few thousand ports with every later listen on port 0:
 * a link proxy of test/jepsen (LinkTable, started right after) took one of its cluster's node
 * ports in about 1 cluster in 200, and that node exited at start (EADDRINUSE).
 */
export async function freePorts(n: number): Promise<number[]> {
  const { low } = ephemeralPorts();
  if (low - PICK_FROM_PORT < PICK_MIN_PORTS) return kernelPorts(n);
  const servers: net.Server[] = [];
  const tried = new Set<number>();
  try {
    while (servers.length < n) {
      if (tried.size >= PICK_MIN_PORTS)
        throw new Error(`no ${n} free ports among ${tried.size} in [${PICK_FROM_PORT}, ${low})`);
      const port = PICK_FROM_PORT + Math.floor(Math.random() * (low - PICK_FROM_PORT));
      if (tried.has(port)) continue;
      tried.add(port);
      // In use (or not ours to bind): another.
      const server = await listenOn(port).catch(() => undefined);
      if (server !== undefined) servers.push(server);
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await closeServers(servers);
  }
}

/** Free loopback ports: bound on port 0 together (so all differ), then released. */
async function kernelPorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => listenOn(0)));
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await closeServers(servers);
  return ports;
}

export function tempDir(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `tspaxos-${name}-`));
}

/**
 * Calls `line` with each whole line the streams write (a partial line waits for its end; the
 * streams share nothing but the callback, so interleaved lines stay whole per stream).
 */
export function onLines(
  streams: readonly NodeJS.ReadableStream[],
  line: (text: string) => void,
): void {
  for (const stream of streams) {
    let buffered = '';
    stream.on('data', (d: Buffer) => {
      buffered += d.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      for (const p of parts) line(p);
    });
  }
}

/** Thrown by a waitFor check: the wait fails at once with it (what it waits for cannot come). */
export class WaitEnded extends Error {
  override readonly name = 'WaitEnded';
}

/**
 * Polls `check` until it returns a value other than undefined/false, or fails after timeoutMs
 * (at once when `check` throws a WaitEnded).
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (error) {
      if (error instanceof WaitEnded) throw error;
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** How many of a node's last output lines an error about its start quotes. */
const TAIL_LINES = 30;

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class NodeProcess {
  child: ChildProcess | undefined;
  readonly lines: string[] = [];
  exit: Promise<ProcessExit> | undefined;
  /** The exit once stdout and stderr are read to their end too (every line is in `lines`). */
  private closed: Promise<ProcessExit> | undefined;
  /** Environment variables added to the process's (TSPAXOS_* configuration). */
  env: Record<string, string> = {};

  constructor(
    readonly id: number,
    readonly args: string[],
    /** '' for a node on port 0: ready() fills it in from the `listening` line. */
    public httpUrl: string,
    /** Runs the node under this command (e.g. `ip netns exec NS`). */
    readonly prefix: string[] = [],
  ) {}

  start(): void {
    const [command, ...rest] = [...this.prefix, process.execPath, CLI, ...this.args];
    const child = spawn(command!, rest, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...this.env },
    });
    this.child = child;
    onLines([child.stdout!, child.stderr!], (line) => this.lines.push(line));
    this.exit = new Promise((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    this.closed = new Promise((resolve) =>
      child.on('close', (code, signal) => resolve({ code, signal })),
    );
  }

  async ready(): Promise<void> {
    // A start replays the log and opens SQLite; on a loaded 2-core machine that alone ran past 30 s.
    const line = await this.waitWhileRunning(
      'listening',
      () => this.lines.find((l) => l.includes('"msg":"listening"')),
      READY_TIMEOUT_MS,
    );
    if (this.httpUrl === '') this.httpUrl = (JSON.parse(line) as { http: string }).http;
  }

  /**
   * waitFor(`node <id> <what>`, check), failed at once when the process has ended meanwhile (a
   * node that cannot start fails its test with its own error, not at the timeout). Either
   * failure says how the process stands and ends with the last lines of its output.
   */
  async waitWhileRunning<T>(
    what: string,
    check: () => Promise<T | undefined | false> | T | undefined | false,
    timeoutMs?: number,
  ): Promise<T> {
    try {
      return await waitFor(
        `node ${this.id} ${what}`,
        async () => {
          let value: T | undefined | false;
          let failure: unknown;
          try {
            value = await check();
          } catch (error) {
            failure = error;
          }
          if (value !== undefined && value !== false) return value;
          if (this.child !== undefined && !this.running)
            throw new WaitEnded(`node ${this.id} ended before ${what}`);
          if (failure !== undefined) throw failure;
          return value;
        },
        timeoutMs,
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}; ${await this.describe()}`, { cause: error });
    }
  }

  /** How the process stands (pid, or its exit code or signal) and the last lines of its output. */
  async describe(tail = TAIL_LINES): Promise<string> {
    let state: string;
    if (this.child === undefined) state = 'not started';
    else if (this.running) state = `running (pid ${this.child.pid})`;
    else {
      const { code, signal } = await this.closed!;
      state = signal !== null ? `killed by ${signal}` : `exited with code ${code}`;
    }
    const last = this.lines.slice(-tail);
    return `node ${this.id} ${state}; its last ${last.length} of ${this.lines.length} output lines:\n${last.join('\n')}`;
  }

  get running(): boolean {
    return (
      this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
    );
  }

  async kill(
    signal: NodeJS.Signals = 'SIGKILL',
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.running) return (await this.exit)!;
    this.child!.kill(signal);
    return (await this.exit)!;
  }

  async status(): Promise<NodeStatus> {
    const res = await fetch(`${this.httpUrl}/status`);
    if (!res.ok) throw new Error(`status ${res.status}`);
    return (await res.json()) as NodeStatus;
  }

  /** Group `g` of this node's /status. */
  async group(g = 0): Promise<GroupView> {
    return (await this.status()).groups[g]!;
  }

  /** Log lines parsed as JSON (the pino ones). */
  json(): Record<string, unknown>[] {
    return this.lines.flatMap((l) => {
      if (!l.startsWith('{')) return [];
      return [JSON.parse(l) as Record<string, unknown>];
    });
  }
}

/**
 * A node of its own (`--cluster 1=…`, node 1) on ports it picks, storing under `dataDir`; not
 * started. `extraArgs`: more flags.
 */
export async function singleNode(dataDir: string, extraArgs: string[] = []): Promise<NodeProcess> {
  const [paxos, http] = await freePorts(2);
  return new NodeProcess(
    1,
    [
      'node',
      '--id',
      '1',
      '--cluster',
      `1=127.0.0.1:${paxos}`,
      '--http',
      `127.0.0.1:${http}`,
      '--data',
      dataDir,
      ...extraArgs,
    ],
    `http://127.0.0.1:${http}`,
  );
}

export interface Cluster {
  nodes: NodeProcess[];
  paxosPorts: number[];
  httpPorts: number[];
  dataRoot: string;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  voters: number;
  followers?: { followTo: number }[];
  groups?: number;
  name: string;
  /** More flags for node `id`. */
  extraArgs?: (id: number) => string[];
}

/** Starts `voters` voting nodes (ids 1…n) and followers (ids n+1…), each its own process. */
export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const followers = opts.followers ?? [];
  const total = opts.voters + followers.length;
  const ports = await freePorts(total * 2);
  const paxosPorts = ports.slice(0, total);
  const httpPorts = ports.slice(total);
  const dataRoot = tempDir(opts.name);
  const cluster = Array.from(
    { length: opts.voters },
    (_, i) => `${i + 1}=127.0.0.1:${paxosPorts[i]}`,
  ).join(',');
  const httpPeers = httpPorts.map((p, i) => `${i + 1}=127.0.0.1:${p}`).join(',');
  const nodes: NodeProcess[] = [];
  for (let i = 0; i < total; i++) {
    const id = i + 1;
    const args = [
      'node',
      '--id',
      String(id),
      '--cluster',
      cluster,
      '--http',
      `127.0.0.1:${httpPorts[i]}`,
      '--data',
      path.join(dataRoot, `node-${id}`),
      '--groups',
      String(opts.groups ?? 1),
      '--http-peers',
      httpPeers,
    ];
    args.push(...(opts.extraArgs?.(id) ?? []));
    if (i >= opts.voters) {
      args.push('--follow-to', String(followers[i - opts.voters]!.followTo));
      args.push('--listen', `127.0.0.1:${paxosPorts[i]}`);
    }
    nodes.push(new NodeProcess(id, args, `http://127.0.0.1:${httpPorts[i]}`));
  }
  for (const n of nodes) n.start();
  await Promise.all(nodes.map((n) => n.ready()));
  return {
    nodes,
    paxosPorts,
    httpPorts,
    dataRoot,
    async stop() {
      await Promise.all(nodes.map((n) => n.kill('SIGTERM')));
      fs.rmSync(dataRoot, { recursive: true, force: true });
    },
  };
}

export async function put(url: string, key: string, value: string | Uint8Array): Promise<Response> {
  return fetch(`${url}/kv/${encodeURIComponent(key)}`, { method: 'PUT', body: value });
}

/**
 * PUTs keys `${prefix}${i}` = `v${i}` for i in [from, from + count) through `concurrency` parallel
 * writers. A 503 (not applied: e.g. the master that holds the lease was just killed and is
 * unreachable until its lease lapses) is retried after a pause, up to WRITE_RETRY_MS; any other
 * non-2xx answer fails the test.
 */
/** How long writeKeys retries a write answered 503 (ours: a few leases of the tests' 2 s or a 10 s one). */
const WRITE_RETRY_MS = 30_000;

export async function writeKeys(
  url: string,
  prefix: string,
  from: number,
  count: number,
  concurrency: number,
): Promise<void> {
  let next = from;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (;;) {
        const i = next++;
        if (i >= from + count) return;
        const deadline = Date.now() + WRITE_RETRY_MS;
        for (;;) {
          const res = await put(url, `${prefix}${i}`, `v${i}`);
          if (res.ok) break;
          const text = await res.text();
          if (res.status !== 503 || Date.now() > deadline)
            throw new Error(`write ${i}: ${res.status} ${text}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }),
  );
}

/** Past QUEUE_MAX_AGE_MS: the test's clock and the nodes' are one machine's, read apart. */
const QUEUE_AGE_MARGIN_MS = 1000;

/**
 * Waits until every frame the peers of a stopped node queued for it before `sinceMs` (Date.now())
 * is past the transport's queue age (QUEUE_MAX_AGE_MS, PhxPaxos TcpOutQueueDropTimeMs): the peers
 * drop those frames instead of sending them. A node restarted sooner is sent them once it is back:
 * its acceptor takes the queued Accepts and its learner the ProposerSendSuccess of the instances
 * it missed, in order, and it needs no catch-up at all (a CI run saw a restarted node learn 537
 * missed instances that way). Take `sinceMs` after the first two missed instances were chosen:
 * with theirs dropped, the younger frames are for instances ahead of the node, which it cannot
 * use, and it catches up from a peer.
 */
export async function waitQueuedFramesExpired(sinceMs: number): Promise<void> {
  await waitFor(
    `the frames queued before ${new Date(sinceMs).toISOString()} past the transport's queue age`,
    () => Date.now() - sinceMs > QUEUE_MAX_AGE_MS + QUEUE_AGE_MARGIN_MS,
    QUEUE_MAX_AGE_MS + 2 * QUEUE_AGE_MARGIN_MS,
    100,
  );
}

/**
 * Waits until the nodes report, in every group, the same now instance id and lastChecksum;
 * returns each node's group 0.
 */
export async function waitConverged(
  nodes: NodeProcess[],
  timeoutMs = 60_000,
): Promise<GroupView[]> {
  const key = (s: NodeStatus) => s.groups.map((g) => `${g.instanceId}/${g.lastChecksum}`).join(',');
  return waitFor(
    'all nodes at the same instance id and checksum',
    async () => {
      const all = await Promise.all(nodes.map((n) => n.status()));
      return all.every((s) => key(s) === key(all[0]!)) ? all.map((s) => s.groups[0]!) : undefined;
    },
    timeoutMs,
    200,
  );
}

/** Group 0 of the node's /status. */
export async function group0Status(url: string): Promise<GroupView> {
  const res = await fetch(`${url}/status`);
  if (!res.ok) throw new Error(`status ${res.status}`);
  return ((await res.json()) as NodeStatus).groups[0]!;
}

/** The body of a response that must be 2xx (else an error naming the URL, status and body). */
export async function ok(res: Promise<Response>): Promise<string> {
  const r = await res;
  const text = await r.text();
  if (!r.ok) throw new Error(`${r.url}: ${r.status} ${text}`);
  return text;
}

/**
 * A barrier (`?consistent=barrier` read) through `url`, retried while it is answered 503: a killed
 * master's lease stays live in the others' view until it lapses, and forwarding (issue 18)
 * refuses writes and barriers meanwhile instead of proposing them.
 */
export async function barrierThrough(url: string, key = 'k0'): Promise<void> {
  const res = await unless503(
    () => fetch(`${url}/kv/${key}?consistent=barrier`),
    `a barrier through ${url}`,
  );
  const text = await res.text();
  if (!res.ok && res.status !== 404) throw new Error(`${res.status} ${text}`);
}

/**
 * A request retried while it is answered 503 ("not applied": an election under way, e.g. a killed
 * master's lease still live in the others' view, E_UNAVAILABLE "master unreachable"). A value a
 * node queued itself when another node's lease became live is sent to that master, not refused
 * (packages/paxos forwarding.ts): a healthy cluster answers writes without a 503.
 */
export async function unless503(request: () => Promise<Response>, what: string): Promise<Response> {
  return waitFor(what, async () => {
    const res = await request();
    return res.status === 503 ? void (await res.arrayBuffer()) : res;
  });
}
