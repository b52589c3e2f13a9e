// Configuration and start errors with real processes (issue 19): flags win over TSPAXOS_*
// environment variables, which win over --config; the data directory records cluster id, node
// id and --groups, and a restart with another --groups refuses to start; peers of another
// --cluster-id are refused; every start error is one line on stderr with exit code 1 (the
// machine refused) or 2 (the configuration is wrong), never a stack trace.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readConfigFile } from '../src/config';
import { IDENTITY_FILE } from '../src/data-dir';
import { CLI, freePorts, NodeProcess, tempDir, waitFor } from './helpers';

const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** Runs the CLI to its exit (a start that must fail). */
function run(args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Exactly one line on stderr, `tspaxos: error: …` matching `pattern`, and no stack trace. */
function expectOneLine(r: { code: number | null; stderr: string }, code: 1 | 2, pattern: RegExp) {
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^tspaxos: error: /);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.code, r.stderr).toBe(code);
}

describe('configuration and start errors', () => {
  const root = tempDir('config');
  const nodes: NodeProcess[] = [];
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.kill('SIGTERM')));
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('--version and GET /version name the package.json version', async () => {
    const r = await run(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it(
    'flags over environment over file; identity recorded; other cluster ids and start errors refused',
    { timeout: 240_000 },
    async () => {
      const [p1, p2, h1, h1env, h2, busy] = await freePorts(6);
      const cluster = `1=127.0.0.1:${p1},2=127.0.0.1:${p2}`;
      const data1 = path.join(root, 'node-1');
      const configFile = path.join(root, 'node-1.json');
      // The file gives everything; the environment overrides --http; the flag overrides --groups.
      fs.writeFileSync(
        configFile,
        JSON.stringify({
          id: 1,
          cluster,
          http: `127.0.0.1:${h1}`,
          data: data1,
          groups: 3,
          'cluster-id': 'blue',
          'master-election': false,
          'cors-origin': ['https://a.example', 'https://b.example'],
        }),
      );
      const env = { TSPAXOS_CONFIG: configFile, TSPAXOS_HTTP: `127.0.0.1:${h1env}` };
      const n1 = new NodeProcess(1, ['node', '--groups', '2'], `http://127.0.0.1:${h1env}`);
      n1.env = env;
      n1.start();
      nodes.push(n1);
      await n1.ready();
      const s1 = await n1.status();
      expect(s1.groupCount).toBe(2); // the flag, not the file's 3
      expect(s1.httpUrl).toBe(`http://127.0.0.1:${h1env}`); // the environment, not the file
      expect(s1.groups[0]!.master).toBeNull(); // the file's "master-election": false
      const cors = await fetch(`${n1.httpUrl}/livez`, { headers: { origin: 'https://b.example' } });
      expect(cors.headers.get('access-control-allow-origin')).toBe('https://b.example');
      const identity = JSON.parse(fs.readFileSync(path.join(data1, IDENTITY_FILE), 'utf8'));
      expect(identity).toMatchObject({ clusterId: 'blue', nodeId: 1, groups: 2 });
      const version = (await (await fetch(`${n1.httpUrl}/version`)).json()) as { version: string };
      expect(version.version).toBe(pkg.version);

      // A peer of another cluster id is refused at its hello.
      const n2 = new NodeProcess(
        2,
        [
          'node',
          '--id',
          '2',
          '--cluster',
          cluster,
          '--http',
          `127.0.0.1:${h2}`,
          '--data',
          path.join(root, 'node-2'),
          '--groups',
          '2',
          '--cluster-id',
          'green',
        ],
        `http://127.0.0.1:${h2}`,
      );
      nodes.push(n2);
      n2.start();
      await n2.ready();
      await waitFor('node 1 refused node 2 (another cluster id)', async () => {
        const s = await n1.status();
        return (s.network.drops['E_WRONG_CLUSTER'] ?? 0) >= 1;
      });
      expect((await n1.status()).network.framesReceived).toBe(0);

      const flags = (over: Record<string, string>) => {
        const all: Record<string, string> = {
          '--id': '1',
          '--cluster': cluster,
          '--http': '127.0.0.1:0',
          '--data': data1,
          '--groups': '2',
          '--cluster-id': 'blue',
          '--listen': '127.0.0.1:0',
          ...over,
        };
        return ['node', ...Object.entries(all).flat()];
      };
      // The data directory is held by node 1.
      expectOneLine(await run(flags({})), 1, /in use by another process/);
      await n1.kill('SIGTERM');
      // Restarted with another --groups (or cluster id): refused, the recorded values named.
      expectOneLine(
        await run(flags({ '--groups': '3' })),
        2,
        /--groups 2; this start gives .*--groups 3/,
      );
      expectOneLine(await run(flags({ '--cluster-id': 'red' })), 2, /cluster id 'blue'/);
      // Another node id on this node's data directory: its log would answer for a node it never was.
      expectOneLine(
        await run(flags({ '--id': '2' })),
        2,
        /created for cluster id 'blue', node 1, --groups 2; this start gives .*node 2,/,
      );
      // A port in use.
      const holder = net.createServer();
      await new Promise<void>((r) => holder.listen(busy, '127.0.0.1', r));
      try {
        expectOneLine(
          await run(flags({ '--http': `127.0.0.1:${busy}` })),
          1,
          new RegExp(`cannot listen on 127.0.0.1:${busy}: the address is in use`),
        );
        expectOneLine(
          await run(flags({ '--listen': `127.0.0.1:${busy}` })),
          1,
          /the address is in use/,
        );
      } finally {
        holder.close();
      }
      // A data directory that is not one (a file), and a damaged identity file.
      const file = path.join(root, 'a-file');
      fs.writeFileSync(file, 'x');
      expectOneLine(await run(flags({ '--data': file })), 1, /data directory .* cannot be used/);
      const damaged = path.join(root, 'damaged');
      fs.mkdirSync(damaged);
      fs.writeFileSync(path.join(damaged, IDENTITY_FILE), '{not json');
      expectOneLine(await run(flags({ '--data': damaged })), 1, /is not JSON/);
      // Bad config files and values.
      const bad = path.join(root, 'bad.json');
      fs.writeFileSync(bad, '{"id": 1,');
      expectOneLine(await run(['node', '--config', bad]), 2, /--config .*bad.json: not JSON/);
      fs.writeFileSync(bad, JSON.stringify({ id: 1, colour: 'blue' }));
      expectOneLine(await run(['node', '--config', bad]), 2, /unknown key 'colour'/);
      fs.writeFileSync(bad, JSON.stringify({ id: 1, groups: 0 }));
      expectOneLine(await run(['node', '--config', bad]), 2, /groups: .*--groups must be 1 … 64/);
      // V8's message quotes the start of the file, newlines included: still one line.
      fs.writeFileSync(bad, 'id: 1\ncluster: x\n');
      expectOneLine(await run(['node', '--config', bad]), 2, /bad.json: not JSON: .*id: 1 clus/);
      fs.writeFileSync(bad, '[1, 2]');
      expectOneLine(await run(['node', '--config', bad]), 2, /must be a JSON object/);
      expectOneLine(
        await run(['node', '--config', path.join(root, 'none.json')]),
        2,
        /cannot read it/,
      );
      // A flag out of its range.
      expectOneLine(
        await run(flags({ '--batch-wait-ms': '1001' })),
        2,
        /--batch-wait-ms must be 0 … 1000/,
      );
      // A bad environment value and a missing required value are usage errors too.
      expectOneLine(
        await run(flags({}), { TSPAXOS_KEEP_LOG: 'many' }),
        2,
        /--keep-log must be an integer/,
      );
      expectOneLine(
        await run(['node', '--id', '1']),
        2,
        /required option '--http <host:port>'.*TSPAXOS_HTTP/,
      );
      // An auth file that is not one.
      const tokens = path.join(root, 'tokens');
      fs.writeFileSync(tokens, 'short read\n');
      expectOneLine(
        await run(flags({ '--auth-file': tokens })),
        2,
        /tokens:1: a token is at least 16/,
      );
      // TLS files that do not exist, and half a TLS configuration.
      expectOneLine(
        await run(
          flags({ '--cert': path.join(root, 'no.pem'), '--key': path.join(root, 'no.key') }),
        ),
        1,
        /--cert .*no.pem: ENOENT/,
      );
      expectOneLine(
        await run(flags({ '--peer-cert': 'x' })),
        2,
        /--peer-cert, --peer-key and --peer-ca go together/,
      );
    },
  );
  it("the README's JSON and YAML config examples say the same and are read as such", async () => {
    const readme = fs.readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    // The first block of each language: the configuration section's examples.
    const blocks = new Map<string, string>();
    for (const m of readme.matchAll(/\n```(\w+)\n([\s\S]*?)\n```/g))
      if (!blocks.has(m[1]!)) blocks.set(m[1]!, m[2]!);
    const files = await Promise.all(
      ['json', 'yaml'].map((lang) => {
        const file = path.join(root, `readme-example.${lang}`);
        fs.writeFileSync(file, blocks.get(lang)!);
        return readConfigFile(file);
      }),
    );
    expect(files[0]).toMatchObject({ id: 1, groups: 4, 'master-election': true });
    expect(files[1]).toEqual(files[0]);
  });

  it(
    'a YAML --config file: same keys, same precedence, one-line errors',
    { timeout: 240_000 },
    async () => {
      const [p1, hFile, hEnv] = await freePorts(3);
      const data = path.join(root, 'yaml-node');
      const file = path.join(root, 'node.yaml');
      // The file gives everything; the environment overrides --http; the flag overrides --groups.
      fs.writeFileSync(
        file,
        [
          '# tspaxos node 1',
          'id: 1',
          `cluster: "1=127.0.0.1:${p1}"`,
          `http: 127.0.0.1:${hFile}`,
          `data: ${JSON.stringify(data)}`,
          'groups: 3',
          'cluster-id: yaml-blue',
          'master-election: false',
          'cors-origin:',
          '  - https://a.example',
          '  - https://b.example',
          '',
        ].join('\n'),
      );
      const n = new NodeProcess(
        1,
        ['node', '--config', file, '--groups', '2'],
        `http://127.0.0.1:${hEnv}`,
      );
      n.env = { TSPAXOS_HTTP: `127.0.0.1:${hEnv}` };
      n.start();
      nodes.push(n);
      await n.ready();
      const s = await n.status();
      expect(s.groupCount).toBe(2); // the flag, not the file's 3
      expect(s.httpUrl).toBe(`http://127.0.0.1:${hEnv}`); // the environment, not the file
      expect(s.groups[0]!.master).toBeNull(); // the file's master-election: false
      const cors = await fetch(`${n.httpUrl}/livez`, { headers: { origin: 'https://a.example' } });
      expect(cors.headers.get('access-control-allow-origin')).toBe('https://a.example');
      const identity = JSON.parse(fs.readFileSync(path.join(data, IDENTITY_FILE), 'utf8'));
      expect(identity).toMatchObject({ clusterId: 'yaml-blue', nodeId: 1, groups: 2 });
      await n.kill('SIGTERM');

      const bad = path.join(root, 'bad.yml');
      const refused = async (text: string, pattern: RegExp) => {
        fs.writeFileSync(bad, text);
        expectOneLine(await run(['node', '--config', bad]), 2, pattern);
      };
      // Malformed: the yaml package's first line (what and where), not its excerpt with a caret.
      await refused(
        'id: 1\ncluster: [a\n',
        /--config .*bad.yml: not YAML: .* at line \d+, column \d+:$/,
      );
      await refused('id: 1\nid: 2\n', /not YAML: Map keys must be unique at line 2/);
      await refused('id: !secret 1\n', /not YAML: Unresolved tag: !secret/);
      await refused('id: 1\n---\nid: 2\n', /not YAML: /);
      await refused('- id\n- 1\n', /must be a YAML object/);
      await refused('', /must be a YAML object/);
      await refused('id: 1\ncolour: blue\n', /unknown key 'colour'/);
      // YAML 1.2: `yes` is a string, so a switch given as yes is refused rather than guessed.
      await refused('id: 1\nmaster-election: yes\n', /master-election must be true or false/);
      await refused('id: 1\nhttp:\n  host: 127.0.0.1\n', /http must be a string or a number/);
      await refused('id: 1\ngroups: 65\n', /groups: .*--groups must be 1 … 64/);
    },
  );
});
