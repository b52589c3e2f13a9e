// docs/operations.md's commands, run: every ```sh block there carries a marker (guide.ts); the
// ones marked `<!-- run -->` run here in order, in a scratch directory, with
// TSPAXOS_ENDPOINTS set to a started 3-node cluster, each under `bash -euo pipefail` (one failing
// command fails the test). The guide's "restart node 3 of npm start" block needs `tspaxos
// cluster` itself: one runs in the scratch directory too, on a base port picked free and given
// to the guide as TSPAXOS_BASE_PORT (the cluster's own variable for --base-port). The guide is
// read from the file itself, so the two cannot drift. The blocks for several hosts
// (`<!-- run on hosts: step -->`) run in operations-hosts.test.ts; none may be left unrun.
import Database from 'better-sqlite3';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bash, guideBlocks, guideWorkDir, shellBlocks } from './guide';
import { CLI, closeServers, type Cluster, listenOn, startCluster, waitFor } from './helpers';

/** Blocks the guide runs today; a block moved to "not run" by mistake shows here. */
const MIN_RUN_BLOCKS = 5;
/** `tspaxos cluster`'s HTTP ports are its base port + this + i (src/options.ts). */
const HTTP_OFFSET = 1000;

/** Whether every port can be bound on loopback now (then released). */
async function allFree(ports: number[]): Promise<boolean> {
  const servers = await Promise.all(ports.map((port) => listenOn(port).catch(() => undefined)));
  await closeServers(servers.filter((s) => s !== undefined));
  return servers.every((s) => s !== undefined);
}

/** A base port whose three paxos and three HTTP ports are free (tried at random). */
async function freeBasePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    const ids = [1, 2, 3];
    if (await allFree([...ids.map((i) => base + i), ...ids.map((i) => base + HTTP_OFFSET + i)]))
      return base;
  }
  throw new Error('no free base port for tspaxos cluster in 50 tries');
}

describe('docs/operations.md', () => {
  let cluster: Cluster | undefined;
  let local: ChildProcess | undefined;
  let localOut = '';
  let base = 0;
  let work = '';
  beforeAll(async () => {
    cluster = await startCluster({ voters: 3, name: 'operations' });
    work = guideWorkDir('operations');
    base = await freeBasePort();
    // `npm start`'s cluster (tspaxos cluster --data data), on the picked base port.
    local = spawn(
      process.execPath,
      [CLI, 'cluster', '--data', 'data', '--base-port', String(base)],
      {
        cwd: work,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    for (const stream of [local.stdout!, local.stderr!])
      stream.on('data', (d: Buffer) => (localOut += d.toString()));
    for (const i of [1, 2, 3])
      await waitFor(
        `tspaxos cluster's node ${i} ready`,
        async () => (await fetch(`http://127.0.0.1:${base + HTTP_OFFSET + i}/readyz`)).ok,
        120_000,
        200,
      );
  }, 300_000);
  afterAll(async () => {
    await cluster?.stop();
    // The guide's restarted node 3 is no child of the cluster: it is stopped by its pid file.
    const pidFile = work && path.join(work, 'node-3.pid');
    if (pidFile && fs.existsSync(pidFile)) {
      try {
        process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGTERM');
      } catch (error) {
        if ((error as { code?: string }).code !== 'ESRCH') throw error;
      }
    }
    if (local && local.exitCode === null) {
      const exited = new Promise((r) => local!.once('exit', r));
      local.kill('SIGTERM');
      await exited;
    }
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('marks every sh block, and each one marked as run runs', { timeout: 300_000 }, async () => {
    const blocks = guideBlocks();
    const env = {
      ...process.env,
      TSPAXOS_ENDPOINTS: cluster!.nodes.map((n) => n.httpUrl).join(','),
      TSPAXOS_BASE_PORT: String(base),
    };
    let ran = 0;
    for (const block of blocks.filter((b) => b.run)) {
      const r = await bash(block.code, work, env);
      expect(r.code, `docs/operations.md:${block.line}:\n${block.code}\n---\n${r.out}`).toBe(0);
      ran++;
    }
    expect(ran).toBeGreaterThanOrEqual(MIN_RUN_BLOCKS);
    // Every other block runs on the guide's hosts (operations-hosts.test.ts): none is left unrun.
    expect(blocks.filter((b) => !b.run && b.hosts === '').map((b) => b.line)).toEqual([]);
    // What the run blocks did: the key written before the backup came back from the restore.
    const restored = new Database(path.join(work, 'restored', 'kv-g0', 'checkpoint', 'kv.sqlite'), {
      readonly: true,
    });
    const row = restored.prepare('SELECT value FROM kv WHERE key = ?').get('config/colour') as
      { value: Buffer } | undefined;
    restored.close();
    expect(row?.value.toString()).toBe('blue');
    expect(fs.existsSync(path.join(work, 'tls', 'ca.pem'))).toBe(true);
    // The restart block: the cluster's node 3 was killed, the one the guide started serves
    // (another process, ready) on the same data directory.
    expect(localOut).toMatch(/\[cluster\] node 3 exited/);
    const pid = Number(fs.readFileSync(path.join(work, 'node-3.pid'), 'utf8'));
    expect(() => process.kill(pid, 0)).not.toThrow();
    const status = (await (
      await fetch(`http://127.0.0.1:${base + HTTP_OFFSET + 3}/status`)
    ).json()) as {
      nodeId: number;
    };
    expect(status.nodeId).toBe(3);
    expect((await fetch(`http://127.0.0.1:${base + HTTP_OFFSET + 3}/readyz`)).status).toBe(200);
    expect(fs.readFileSync(path.join(work, 'node-3.log'), 'utf8')).toMatch(/"msg":"listening"/);
  });

  it('refuses a sh block without a marker', () => {
    expect(() => shellBlocks('text\n```sh\necho hi\n```\n')).toThrow(/without <!-- run -->/);
    expect(() => shellBlocks('<!-- run on hosts: -->\n```sh\nx\n```\n')).toThrow(
      /without <!-- run -->/,
    );
    expect(
      shellBlocks(
        '## A\n<!-- not run: needs a disk -->\n```sh\nx\n```\n<!-- run -->\n```sh\ny\n```\n' +
          '## B\n<!-- run on hosts: start -->\n```sh\nz\n```',
      ),
    ).toEqual([
      { line: 3, section: 'A', run: false, hosts: '', why: 'needs a disk', code: 'x' },
      { line: 7, section: 'A', run: true, hosts: '', why: '', code: 'y' },
      { line: 12, section: 'B', run: false, hosts: 'start', why: '', code: 'z' },
    ]);
  });
});
