// The CLI as a user meets it: --help on every command, one-line errors with exit code 2 for bad
// flags, and a graceful SIGTERM (a write that went out answered 504 after the drain, log and
// state closed, exit 0).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { isBuiltin } from 'node:module';
import * as net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { CLI, freePorts, NodeProcess, singleNode, tempDir, waitFor } from './helpers';

function run(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const NODE = [
  'node',
  '--id',
  '1',
  '--cluster',
  '1=127.0.0.1:7101',
  '--http',
  '127.0.0.1:0',
  '--data',
  '/tmp/x',
];

describe('tspaxos CLI', () => {
  it.each([[[] as string[]], [['--help']], [['node', '--help']], [['cluster', '--help']]])(
    'help: %j',
    (args) => {
      const r = run(...args);
      expect(r.code).toBe(args.length === 0 ? 2 : 0);
      expect(r.stdout).toMatch(/Usage: tspaxos/);
    },
  );

  it('node --help names every flag of design.md §6', () => {
    const r = run('node', '--help');
    for (const flag of [
      '--id',
      '--cluster',
      '--http',
      '--data',
      '--listen',
      '--follow-to',
      '--groups',
    ])
      expect(r.stdout).toContain(flag);
  });

  it.each([
    [[...NODE, '--bogus'], /unknown option '--bogus'/],
    [['node', '--id', '1'], /required option/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [[...NODE.slice(0, 2), 'x', ...NODE.slice(3)], /--id must be an integer/],
    [
      ['node', '--id', '1', '--cluster', '1=nohost', '--http', '127.0.0.1:0', '--data', 'd'],
      /--cluster node 1 must be host:port/,
    ],
    [
      ['node', '--id', '1', '--cluster', '1=h:1,1=h:2', '--http', '127.0.0.1:0', '--data', 'd'],
      /names node 1 twice/,
    ],
    [
      ['node', '--id', '4', '--cluster', '1=h:1', '--http', '127.0.0.1:0', '--data', 'd'],
      /--id 4 is not in --cluster/,
    ],
    [[...NODE, '--groups', '0'], /--groups must be 1 … 64/],
    [[...NODE, '--idempotency-keys', '0'], /--idempotency-keys must be 1 … 4294967295/],
    [[...NODE, '--idempotency-window-ms', '4294967296'], /--idempotency-window-ms must be 1 …/],
    [[...NODE, '--http', 'h:99999'], /port 99999 is above 65535/],
    [
      [
        'node',
        '--id',
        '2',
        '--cluster',
        '1=h:1',
        '--http',
        '127.0.0.1:0',
        '--data',
        'd',
        '--follow-to',
        '1',
      ],
      /needs --listen/,
    ],
    [['cluster', '--nodes', '100'], /--nodes must be 1 … 9/],
    [['cluster', '--base-port', 'abc'], /--base-port must be an integer/],
  ])('bad flags %j: one line, exit 2', (args, message) => {
    const r = run(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('the bin is one file: it imports only Node modules and the native, lazy or unused externals', () => {
    // A start evaluated ~600 small modules before our first line (issue 22): dist/cli.js bundles
    // the workspace packages and the pure-JS dependencies (tsup.config.ts).
    const source = fs.readFileSync(CLI, 'utf8');
    const imported = new Set<string>();
    for (const m of source.matchAll(/^import [^;]*?from ['"]([^'"]+)['"]/gm)) imported.add(m[1]!);
    for (const m of source.matchAll(/__require\(['"]([^'"]+)['"]\)/g)) imported.add(m[1]!);
    const outside = new Set(
      [...imported]
        .filter((name) => !isBuiltin(name))
        .map((name) =>
          name
            .split('/')
            .slice(0, name.startsWith('@') ? 2 : 1)
            .join('/'),
        ),
    );
    // Native addons, and what fastify requires only when used (schemas, inject()).
    expect([...outside].sort()).toEqual([
      '@fastify/ajv-compiler',
      'better-sqlite3',
      'fast-json-stringify',
      'light-my-request',
      'msgpackr-extract',
    ]);
    expect(source).toMatch(/import\(['"]yaml['"]\)/); // only for a YAML --config
  });

  it('the first line of a start says when Node handed over and when our modules were loaded', async () => {
    const node = await singleNode(tempDir('start-marks'));
    node.start();
    onTestFinished(async () => {
      await node.kill('SIGKILL');
    });
    await node.ready();
    const line = node.lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((j) => j['msg'] === 'data-dir');
    const marks = line?.['startMs'] as Record<string, number>;
    expect(Object.keys(marks)).toEqual(['nodeBootstrap', 'modulesLoaded', 'dataDir']);
    expect(marks['nodeBootstrap']).toBeGreaterThan(0);
    expect(marks['modulesLoaded']).toBeGreaterThan(marks['nodeBootstrap']!);
    expect(marks['dataDir']).toBeGreaterThanOrEqual(marks['modulesLoaded']!);
  });

  it('SIGTERM: a write it may have sent gets 504 after the drain, the node closes its log and state and exits 0', async () => {
    // Node 1 of a 3-node cluster whose other members take connections and never answer (black
    // holes): a write cannot be chosen, and the peers count as reachable (a connection is open),
    // so it is proposed, not refused E_NO_QUORUM as it would be with nobody listening.
    const [p1, p2, p3, http] = await freePorts(4);
    const held: net.Socket[] = [];
    const holes = [p2!, p3!].map((port) =>
      net
        .createServer((socket) => void held.push(socket.on('data', () => {})))
        .listen(port, '127.0.0.1'),
    );
    onTestFinished(() => {
      for (const socket of held) socket.destroy();
      for (const hole of holes) hole.close();
    });
    const node = new NodeProcess(
      1,
      [
        'node',
        '--id',
        '1',
        '--cluster',
        `1=127.0.0.1:${p1},2=127.0.0.1:${p2},3=127.0.0.1:${p3}`,
        '--http',
        `127.0.0.1:${http}`,
        '--data',
        tempDir('sigterm'),
        // No election: with one, a write finding no master waits for one (master-wait.ts) and
        // is not proposed, and its master operations would count as proposed here too.
        '--no-master-election',
      ],
      `http://127.0.0.1:${http}`,
    );
    node.start();
    await node.ready();
    const pending = fetch(`${node.httpUrl}/kv/a`, { method: 'PUT', body: 'v' });
    await waitFor('the write queued', async () => {
      return (await node.group()).committer.counters.proposed === 1;
    });
    expect(held.length).toBeGreaterThan(0); // node 1 connected to a peer that never answers
    const exited = node.kill('SIGTERM');
    // Its Prepare went out (to peers that are not there): it cannot be answered "not applied".
    // The stop waits STOP_DRAIN_MS for it to be chosen, then answers it outcome-unknown.
    const res = await pending;
    expect(res.status).toBe(504);
    expect(await res.json()).toMatchObject({ error: { code: 'E_OUTCOME_UNKNOWN' } });
    expect(await exited).toEqual({ code: 0, signal: null });
    const messages = node.json().map((l) => l['msg']);
    expect(messages).toContain('stopping');
    const drained = node.json().find((l) => l['msg'] === 'proposals-drained');
    expect(drained).toMatchObject({ inFlightAtStop: 1, drained: 0, leftAtDrainDeadline: 1 });
    expect(messages).toContain('stopped');
    // Every line names the node and the group (null for lines about the whole node).
    for (const line of node.json()) {
      expect(line['nodeId']).toBe(1);
      expect(line).toHaveProperty('group');
    }
  });
});
