// docs/operations.md's blocks for several hosts, run on the hosts the guide names (issue 19):
// 10.0.0.1 … 10.0.0.4, each a network namespace of its own (its loopback, one veth), joined by
// a bridge in another namespace, so nothing is added to this machine's network. Each block marked
// `<!-- run on hosts: STEP -->` runs as written (`ip netns exec HOST bash -euo pipefail -c BLOCK`)
// in one scratch directory all hosts share (the copies of tls/ and cluster.backup the guide asks
// for), with /var/lib/tspaxos moved to a scratch directory per host and, in a node's own command,
// its id and address changed as the guide says. In the guide's order where it allows, on one set
// of namespaces: three hosts start and serve writes through each (start, status); node 3 is
// replaced by node 4 while writes go on (join, replace); the cluster is backed up (the guide's
// backup block), restored on three hosts and started again as a new cluster (restore, start); a
// cluster with TLS refuses a plain client and another CA (tls-ca, tls-start, tls-status). The
// test reaches the nodes only from inside the namespaces (a client script run there).
// Needs root and iproute2; where they are missing the test says why and skips (on CI it fails).
import Database from 'better-sqlite3';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Block, bash, guideBlocks, guideWorkDir } from './guide';
import { onLines, waitFor } from './helpers';
import { IsolatedNetwork, ip, netnsUnavailable, reportUnavailable } from './netns';

const FAMILY = 'tspx-ops';
const HOST_IDS = [1, 2, 3, 4];
const host = (n: number) => `host${n}`;
const httpUrl = (n: number) => `http://10.0.0.${n}:8101`;
/**
 * A deadline for each wait (a start, an election, a catch-up): a node start alone ran past 30 s on
 * a loaded 2-core machine (helpers.ts READY_TIMEOUT_MS), and every block here starts npx too.
 */
const WAIT_MS = 180_000;
/** A stopping node drains for up to 3 s (src/options.ts); npx and bash go with it. */
const STOP_MS = 30_000;
/** Writes through each host, and writes that must be acknowledged after node 3 is gone. */
const WRITES_PER_HOST = 20;
const WRITES_AFTER_REMOVAL = 20;

const unavailable = netnsUnavailable(`${FAMILY}-${process.pid}-probe`);
reportUnavailable('operations-hosts.test.ts', unavailable);

/** The environment of the guide's commands: no TSPAXOS_* of the test run's own. */
const baseEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.startsWith('TSPAXOS_')),
);

let network: IsolatedNetwork | undefined;
let work = '';
const running = new Set<HostProcess>();

/** A long-running block on a host (a node), in its own process group. */
class HostProcess {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  readonly exited: Promise<number | null>;

  constructor(
    readonly hostId: number,
    code: string,
    env: NodeJS.ProcessEnv = baseEnv,
  ) {
    this.child = spawn(
      network!.exec(host(hostId))[0]!,
      [...network!.exec(host(hostId)).slice(1), 'bash', '-euo', 'pipefail', '-c', code],
      { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    onLines([this.child.stdout!, this.child.stderr!], (line) => this.lines.push(line));
    this.exited = new Promise((resolve) => this.child.on('exit', (c) => resolve(c)));
    running.add(this);
  }

  /** Until the node logs `listening`; an exit before that fails with its output. */
  async listening(): Promise<void> {
    await waitFor(
      `the node on ${host(this.hostId)} listening`,
      () => {
        if (this.child.exitCode !== null || this.child.signalCode !== null)
          throw new Error(`it exited (${this.child.exitCode}):\n${this.lines.join('\n')}`);
        return this.lines.some((l) => l.includes('"msg":"listening"'));
      },
      WAIT_MS,
      200,
    );
  }

  /** SIGTERM to the group (bash, npx, node), SIGKILL after STOP_MS. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    running.delete(this);
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const kill = (s: NodeJS.Signals) => {
      try {
        process.kill(-this.child.pid!, s);
      } catch (error) {
        if ((error as { code?: string }).code !== 'ESRCH') throw error;
      }
    };
    kill(signal);
    const timer = setTimeout(() => kill('SIGKILL'), STOP_MS);
    await this.exited;
    clearTimeout(timer);
    kill('SIGKILL'); // what is left of the group (npx's node, when only npm exited)
  }
}

/** One HTTP request made from inside a host's namespace. */
interface Request {
  method?: string;
  url: string;
  body?: string;
}
type Answer = { status: number; body: string } | { error: string };

/** Runs `requests` (8 at a time) from a Node process on the host; the answers in order. */
const REQUESTS_SCRIPT = `
const requests = JSON.parse(process.argv[1]);
const answers = new Array(requests.length);
let next = 0;
await Promise.all(Array.from({ length: 8 }, async () => {
  for (let i = next++; i < requests.length; i = next++) {
    const r = requests[i];
    try {
      const res = await fetch(r.url, { method: r.method ?? 'GET', body: r.body, signal: AbortSignal.timeout(15000) });
      answers[i] = { status: res.status, body: await res.text() };
    } catch (error) {
      answers[i] = { error: String(error.cause?.code ?? error.message) };
    }
  }
}));
process.stdout.write(JSON.stringify(answers));
`;

/**
 * Writes `${prefix}${i}` = `v-${prefix}${i}` one after another until SIGTERM, one JSON line per
 * answer (a request that got none prints its error: its outcome is unknown).
 */
const WRITER_SCRIPT = `
const [url, prefix] = process.argv.slice(1);
let stop = false;
process.on('SIGTERM', () => (stop = true));
for (let i = 0; !stop; i++) {
  const key = prefix + i;
  try {
    const res = await fetch(url + '/kv/' + key, { method: 'PUT', body: 'v-' + key, signal: AbortSignal.timeout(15000) });
    console.log(JSON.stringify({ key, status: res.status, body: await res.text(), atMs: Date.now() }));
    // Not applied (an election under way): retried as the next key after a pause, as writeKeys does.
    if (res.status === 503) await new Promise((r) => setTimeout(r, 100));
  } catch (error) {
    console.log(JSON.stringify({ key, error: String(error.cause?.code ?? error.message) }));
  }
}
`;

/** Runs a Node script on a host to its end; its standard output. */
function nodeOn(hostId: number, script: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const [command, ...rest] = [
      ...network!.exec(host(hostId)),
      process.execPath,
      '--input-type=module',
      '-e',
      script,
      ...args,
    ];
    const child = spawn(command!, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`node on ${host(hostId)}: ${code} ${err}`)),
    );
  });
}

async function requestsFrom(hostId: number, requests: Request[]): Promise<Answer[]> {
  return JSON.parse(await nodeOn(hostId, REQUESTS_SCRIPT, [JSON.stringify(requests)])) as Answer[];
}

/** The keys of `expected` (key → value) that `hostId`'s node does not read back (local reads). */
async function missingOn(hostId: number, expected: Map<string, string>): Promise<string[]> {
  const keys = [...expected.keys()];
  const answers = await requestsFrom(
    hostId,
    keys.map((k) => ({ url: `${httpUrl(hostId)}/kv/${encodeURIComponent(k)}` })),
  );
  return keys.filter((k, i) => {
    const a = answers[i]!;
    return !('status' in a) || a.status !== 200 || a.body !== expected.get(k);
  });
}

/** Waits until `hostId`'s node reads every key of `expected`; returns how many it read. */
async function waitHolds(hostId: number, expected: Map<string, string>): Promise<number> {
  let missing: string[] = [];
  await waitFor(
    `${host(hostId)} reads all ${expected.size} keys`,
    async () => (missing = await missingOn(hostId, expected)).length === 0,
    WAIT_MS,
    500,
  ).catch((error: Error) => {
    throw new Error(
      `${error.message}; missing ${missing.length}: ${missing.slice(0, 10).join(' ')}`,
    );
  });
  return expected.size;
}

/** Waits until every node of `ids` reports one master, the same, with `members` as its voters. */
async function waitOneMaster(ids: number[], members: number[]): Promise<number> {
  return waitFor(
    `one master seen by nodes ${ids.join(',')}`,
    async () => {
      const answers = await requestsFrom(
        ids[0]!,
        ids.map((n) => ({ url: `${httpUrl(n)}/status` })),
      );
      const groups = answers.map((a) => {
        if (!('status' in a) || a.status !== 200) return undefined;
        return (
          JSON.parse(a.body) as {
            groups: { master: { nodeId: number } | null; members: number[] }[];
          }
        ).groups[0]!;
      });
      const master = groups[0]?.master?.nodeId;
      return master !== undefined &&
        groups.every(
          (g) => g?.master?.nodeId === master && g.members.join(',') === members.join(','),
        )
        ? master
        : undefined;
    },
    WAIT_MS,
    500,
  );
}

describe.skipIf(unavailable !== undefined)(
  'docs/operations.md on hosts 10.0.0.1 … 10.0.0.4',
  () => {
    let blocks: Block[] = [];
    /** How many times each step's block ran, by step. */
    const ran = new Map<string, number>();
    /** Every write acknowledged (200) by the cluster of the first sections: key → value. */
    const acked = new Map<string, string>();
    /** Writes whose outcome is unknown (chosen or not). */
    const unknown = new Set<string>();
    let nodes = new Map<number, HostProcess>();

    /** The block of `step`, counted as run. */
    const step = (name: string): string => {
      const found = blocks.filter((b) => b.hosts === name);
      expect(found.length, `one <!-- run on hosts: ${name} --> block`).toBe(1);
      ran.set(name, (ran.get(name) ?? 0) + 1);
      return found[0]!.code;
    };
    /** The data directory of `hostId` for one cluster of the test (the guide's /var/lib/tspaxos). */
    const dataDir = (cluster: string, hostId: number) =>
      path.join(work, 'hosts', cluster, host(hostId), 'var-lib-tspaxos');
    /** `code` as typed on `hostId`: its data directory; for a node's own command, its id and address. */
    const onHost = (code: string, hostId: number, cluster: string, ownNode: boolean): string => {
      let out = code.replaceAll('/var/lib/tspaxos', dataDir(cluster, hostId));
      if (ownNode) {
        const before = out;
        // "change --id and the --http address to its own": the lists (1=10.0.0.1:…) stay.
        out = out
          .replace(/--id 1\b/, `--id ${hostId}`)
          .replace(/(?<![=\d.])10\.0\.0\.1(?!\d)/g, `10.0.0.${hostId}`);
        expect(hostId === 1 || out !== before, 'the block names node 1 on 10.0.0.1').toBe(true);
      }
      return out;
    };
    /** A finite block (or command) on `hostId`; fails the test with its output unless it exits 0. */
    const runOn = async (hostId: number, code: string, env: NodeJS.ProcessEnv = baseEnv) => {
      const r = await bash(code, work, env, network!.exec(host(hostId)), WAIT_MS);
      expect(r.code, `on ${host(hostId)}:\n${code}\n---\n${r.out}`).toBe(0);
      return r.out;
    };
    /** The guide's "start" block on hosts 1…3, each node ready; the master's id. */
    const startThree = async (cluster: string, env: NodeJS.ProcessEnv = baseEnv) => {
      nodes = new Map();
      for (const n of [1, 2, 3])
        nodes.set(n, new HostProcess(n, onHost(step('start'), n, cluster, true), env));
      await Promise.all([...nodes.values()].map((p) => p.listening()));
      return waitOneMaster([1, 2, 3], [1, 2, 3]);
    };
    const stopAll = async () => {
      await Promise.all([...nodes.values()].map((p) => p.stop()));
      nodes = new Map();
    };

    beforeAll(() => {
      // A run killed earlier (its pid gone) left its namespaces and maybe nodes in them.
      const removed = IsolatedNetwork.removeLeftovers(FAMILY);
      if (removed.length > 0)
        console.warn(`operations-hosts: removed leftovers ${removed.join(' ')}`);
      network = IsolatedNetwork.create(
        FAMILY,
        Object.fromEntries(HOST_IDS.map((n) => [host(n), `10.0.0.${n}/24`])),
      );
      work = guideWorkDir('operations-hosts');
      blocks = guideBlocks();
    });
    afterAll(async () => {
      await Promise.all([...running].map((p) => p.stop('SIGKILL')));
      const result = network?.destroy() ?? { failures: [], left: [] };
      if (work) fs.rmSync(work, { recursive: true, force: true });
      expect(result).toEqual({ failures: [], left: [] });
    });

    it("removes what a killed run left (namespaces, processes in them), not a live run's", async () => {
      // A leftover as a SIGKILLed run leaves it: its pid gone, a process still inside.
      const gone = spawn(process.execPath, ['-e', '']);
      await new Promise((r) => gone.on('exit', r));
      const leftover = `${FAMILY}-${gone.pid}-host1`;
      ip('netns', 'add', leftover);
      const orphan = spawn('ip', ['netns', 'exec', leftover, 'sleep', '600'], { stdio: 'ignore' });
      const orphanExit = new Promise((r) => orphan.on('exit', (_code, signal) => r(signal)));
      await waitFor(
        'a process inside the leftover',
        () => ip('netns', 'pids', leftover).trim() !== '',
      );
      expect(IsolatedNetwork.removeLeftovers(FAMILY)).toEqual([leftover]);
      expect(await orphanExit).toBe('SIGKILL');
      const listed = ip('netns', 'list');
      expect(listed).not.toContain(leftover);
      expect(listed).toContain(network!.namespace('host1')); // this run's: its pid is alive
    });

    it('three hosts: every node sees the others and one master, and takes writes', async () => {
      const master = await startThree('first');
      // Writes through each host's own node (the two that are not master forward them).
      for (const n of [1, 2, 3]) {
        const keys = Array.from({ length: WRITES_PER_HOST }, (_, i) => `host${n}-${i}`);
        const answers = await requestsFrom(
          n,
          keys.map((k) => ({ method: 'PUT', url: `${httpUrl(n)}/kv/${k}`, body: `v-${k}` })),
        );
        expect(
          answers.filter((a) => 'status' in a && a.status === 200).length,
          JSON.stringify(answers),
        ).toBe(WRITES_PER_HOST);
        for (const k of keys) acked.set(k, `v-${k}`);
      }
      for (const n of [1, 2, 3]) expect(await waitHolds(n, acked)).toBe(3 * WRITES_PER_HOST);

      const out = await runOn(1, step('status'));
      // One block per node, each on its own host, all with members 1,2,3 and the same master.
      const heads = [
        ...out.matchAll(
          /^node (\d) {2}http:\/\/10\.0\.0\.(\d):8101 {2}paxos 10\.0\.0\.(\d):7101 {2}serving$/gm,
        ),
      ];
      expect(
        heads.map((m) => [m[1], m[2], m[3]]),
        out,
      ).toEqual([
        ['1', '1', '1'],
        ['2', '2', '2'],
        ['3', '3', '3'],
      ]);
      const groupLines = [
        ...out.matchAll(/^ {2}group 0: voter, .*master node (\d).*members 1,2,3$/gm),
      ];
      expect(
        groupLines.map((m) => Number(m[1])),
        out,
      ).toEqual([master, master, master]);
    }, 600_000);

    it('replaces node 3 by node 4 while writes go on; node 4 has every acknowledged write', async () => {
      const writer = spawn(
        network!.exec(host(1))[0]!,
        [
          ...network!.exec(host(1)).slice(1),
          process.execPath,
          '--input-type=module',
          '-e',
          WRITER_SCRIPT,
          httpUrl(1),
          'during-',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const answers: {
        key: string;
        status?: number;
        body?: string;
        error?: string;
        atMs?: number;
      }[] = [];
      onLines([writer.stdout], (line) =>
        answers.push(JSON.parse(line) as (typeof answers)[number]),
      );
      let writerErr = '';
      writer.stderr.on('data', (d: Buffer) => (writerErr += d.toString()));
      const writerExit = new Promise<number | null>((r) => writer.on('close', (c) => r(c)));
      const ok = () => answers.filter((a) => a.status === 200).length;
      try {
        await waitFor('writes going on', () => ok() >= 5, WAIT_MS, 100);

        const node4 = new HostProcess(4, onHost(step('join'), 4, 'first', false));
        nodes.set(4, node4);
        await node4.listening();
        const out = await runOn(1, step('replace'));
        // members list: nodes 1, 2, 4 voters; node 3 gone.
        const listed = [...out.matchAll(/^nodeId=(\d) {2}role=(\w+)/gm)].map(
          (m) => `${m[1]}:${m[2]}`,
        );
        expect(listed, out).toEqual(['1:voter', '2:voter', '4:voter']);
        await nodes.get(3)!.stop();
        nodes.delete(3);
        // The majority is now nodes 1, 2 and 4: writes chosen from here on needed node 4.
        const atRemoval = ok();
        await waitFor(
          'writes after node 3 is gone',
          () => ok() >= atRemoval + WRITES_AFTER_REMOVAL,
          WAIT_MS,
          100,
        );
      } finally {
        writer.kill('SIGTERM');
        expect(await writerExit, writerErr).toBe(0);
      }
      // What a write may be told while the members change: 200; 503, not applied; 504, its
      // outcome unknown (E_OUTCOME_UNKNOWN, E_TIMEOUT: it was forwarded to a master that went
      // away, node 3 when it was the master); or nothing (unknown too). Anything else fails.
      const told = { acked: 0, notApplied: 0, unknown: 0, unexpected: [] as typeof answers };
      for (const a of answers) {
        const code =
          a.status === 504
            ? (JSON.parse(a.body!) as { error: { code: string } }).error.code
            : undefined;
        if (a.status === 200) told.acked++;
        else if (a.status === 503) told.notApplied++;
        else if (a.error !== undefined || code === 'E_OUTCOME_UNKNOWN' || code === 'E_TIMEOUT') {
          told.unknown++;
          unknown.add(a.key);
        } else told.unexpected.push(a);
      }
      expect(told.unexpected).toEqual([]);
      expect(told.acked).toBeGreaterThanOrEqual(5 + WRITES_AFTER_REMOVAL);
      for (const a of answers) if (a.status === 200) acked.set(a.key, `v-${a.key}`);
      expect(await waitHolds(4, acked)).toBe(3 * WRITES_PER_HOST + told.acked);
      const refusedAt = answers.filter((a) => a.status === 503).map((a) => a.atMs!);
      console.log(
        `operations-hosts: while node 4 joined and node 3 left, ${answers.length} writes: ` +
          `${told.acked} acknowledged, ${told.notApplied} not applied (503${
            refusedAt.length > 0
              ? ` over ${Math.max(...refusedAt) - Math.min(...refusedAt)} ms`
              : ''
          }), ${told.unknown} with an unknown outcome; node 4 reads all ${acked.size} acknowledged`,
      );
    }, 600_000);

    it('backs up the cluster, restores it on three hosts; the new cluster has every write of the backup', async () => {
      // Node 1, which the backup is taken from, holds every acknowledged write first.
      await waitHolds(1, acked);
      const backupBlock = blocks.find((b) => b.run && b.section === 'Backup and restore');
      expect(backupBlock).toBeDefined();
      await runOn(1, backupBlock!.code, {
        ...baseEnv,
        TSPAXOS_ENDPOINTS: [1, 2, 4].map((n) => `10.0.0.${n}:8101`).join(','),
      });
      const db = new Database(path.join(work, 'restored', 'kv-g0', 'checkpoint', 'kv.sqlite'), {
        readonly: true,
      });
      const backup = new Map(
        (db.prepare('SELECT key, value FROM kv').all() as { key: string; value: Buffer }[]).map(
          (r) => [r.key, r.value.toString()],
        ),
      );
      db.close();
      expect([...acked.keys()].filter((k) => backup.get(k) !== acked.get(k))).toEqual([]);
      expect(backup.get('config/colour')).toBe('blue');
      // Nothing else: a key not acknowledged is one whose outcome the writer was not told.
      const extra = [...backup.keys()].filter((k) => !acked.has(k) && k !== 'config/colour');
      expect(extra.filter((k) => !unknown.has(k))).toEqual([]);
      await stopAll();

      for (const n of [1, 2, 3]) await runOn(n, onHost(step('restore'), n, 'restored', false));
      // "start the nodes as in Three hosts with a new --cluster-id"
      await startThree('restored', { ...baseEnv, TSPAXOS_CLUSTER_ID: 'tspaxos-restored' });
      for (const n of [1, 2, 3]) expect(await waitHolds(n, backup)).toBe(backup.size);
      const identity = JSON.parse(
        fs.readFileSync(path.join(dataDir('restored', 1), 'tspaxos-identity.json'), 'utf8'),
      ) as { clusterId: string };
      expect(identity.clusterId).toBe('tspaxos-restored');
      // And it serves writes through every host.
      const answers = await Promise.all(
        [1, 2, 3].map((n) =>
          requestsFrom(n, [
            { method: 'PUT', url: `${httpUrl(n)}/kv/after-restore-${n}`, body: 'x' },
          ]),
        ),
      );
      expect(answers.flat().map((a) => ('status' in a ? a.status : a.error))).toEqual([
        200, 200, 200,
      ]);
      await stopAll();
    }, 600_000);

    it('TLS: the cluster links and serves over TLS; a plain client and another CA are refused', async () => {
      await stopAll(); // a step before that failed may have left its nodes
      await runOn(1, step('tls-ca'));
      for (const n of [1, 2, 3])
        expect(fs.existsSync(path.join(work, 'tls', `10.0.0.${n}.pem`))).toBe(true);
      for (const n of [1, 2, 3])
        nodes.set(n, new HostProcess(n, onHost(step('tls-start'), n, 'tls', true)));
      await Promise.all([...nodes.values()].map((p) => p.listening()));
      const cli = `node apps/node/dist/cli.js`;
      const trusted = '--cacert tls/ca.pem --cert tls/client.pem --key tls/client-key.pem';
      const endpoints = [1, 2, 3].map((n) => `https://10.0.0.${n}:8101`).join(',');
      // The peers link over mutual TLS: all three see one master.
      const master = await waitFor(
        'one master over TLS',
        async () => {
          const r = await bash(
            `${cli} status --json --endpoints ${endpoints} ${trusted}`,
            work,
            baseEnv,
            network!.exec(host(1)),
          );
          if (r.code !== 0) return undefined;
          const masters = r.out
            .trim()
            .split('\n')
            .map(
              (l) =>
                (JSON.parse(l) as { groups: { master: { nodeId: number } | null }[] }).groups[0]!
                  .master?.nodeId,
            );
          return masters.length === 3 &&
            masters[0] !== undefined &&
            masters.every((m) => m === masters[0])
            ? masters[0]
            : undefined;
        },
        WAIT_MS,
        1000,
      );
      const out = await runOn(1, step('tls-status'));
      expect(out).toMatch(
        new RegExp(
          `^node 1  https://10\\.0\\.0\\.1:8101  paxos 10\\.0\\.0\\.1:7101  serving$`,
          'm',
        ),
      );
      expect(out).toMatch(
        new RegExp(`group 0: voter, .*master node ${master}.*members 1,2,3$`, 'm'),
      );

      // A write over HTTPS through each host, read back from each.
      for (const n of [1, 2, 3])
        await runOn(
          n,
          `${cli} kv put tls-${n} v-tls-${n} --endpoints https://10.0.0.${n}:8101 ${trusted}`,
        );
      for (const n of [1, 2, 3])
        await waitFor(
          `the three TLS writes on ${host(n)}`,
          async () => {
            const r = await bash(
              `${cli} kv list tls- --keys-only --endpoints https://10.0.0.${n}:8101 ${trusted}`,
              work,
              baseEnv,
              network!.exec(host(n)),
            );
            return r.code === 0 && r.out.trim().split('\n').join(',') === 'tls-1,tls-2,tls-3';
          },
          WAIT_MS,
          1000,
        );

      // What a client that does not hold the right keys is told: exit 1, one line.
      await runOn(1, 'scripts/make-test-ca.sh ./other-tls 10.0.0.1');
      const refused = {
        'a plain client': `--endpoints http://10.0.0.1:8101`,
        'a client trusting another CA': `--endpoints https://10.0.0.1:8101 --cacert other-tls/ca.pem --cert tls/client.pem --key tls/client-key.pem`,
        'a client certificate of another CA': `--endpoints https://10.0.0.1:8101 --cacert tls/ca.pem --cert other-tls/client.pem --key other-tls/client-key.pem`,
        'no client certificate': `--endpoints https://10.0.0.1:8101 --cacert tls/ca.pem`,
      };
      const told: Record<string, { code: number | null; lines: number }> = {};
      for (const [who, flags] of Object.entries(refused)) {
        const r = await bash(`${cli} kv get tls-1 ${flags}`, work, baseEnv, network!.exec(host(2)));
        told[who] = { code: r.code, lines: r.out.trim().split('\n').length };
        expect(r.out, who).toMatch(/^tspaxos: error: /);
      }
      expect(told).toEqual(
        Object.fromEntries(Object.keys(refused).map((who) => [who, { code: 1, lines: 1 }])),
      );
      await stopAll();
    }, 600_000);

    it('ran every block of the guide meant for hosts', () => {
      const steps = blocks.filter((b) => b.hosts !== '').map((b) => b.hosts);
      expect([...ran.keys()].sort()).toEqual([...steps].sort());
      // start: the first cluster and the restored one; restore: on each of the three hosts.
      expect(Object.fromEntries(ran)).toEqual({
        start: 6,
        status: 1,
        join: 1,
        replace: 1,
        restore: 3,
        'tls-ca': 1,
        'tls-start': 3,
        'tls-status': 1,
      });
    });
  },
);
