// The client commands of the `tspaxos` bin (etcdctl's shape): kv, status, members, backup,
// restore. Each prints what it did on stdout; an error is one line on stderr and exit code 1
// (usage errors stay commander's: exit code 2).
import { type Command, InvalidArgumentError, Option } from 'commander';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BackupError, parseBackup, restoreBackup } from '../backup';
import { DEFAULT_BASE_PORT, HTTP_PORT_OFFSET } from '../options';
import type { NodeStatus } from '../status';
import { Client, ClientError, errorOf, parseEndpoints } from './http';

/** The HTTP APIs of `npm start`'s three nodes. */
export const DEFAULT_ENDPOINTS = [1, 2, 3]
  .map((i) => `127.0.0.1:${DEFAULT_BASE_PORT + HTTP_PORT_OFFSET + i}`)
  .join(',');
/** Largest `kv list --limit` page the server answers (the listing's own maximum). */
const LIST_PAGE_MAX = 1000;

interface ConnectionFlags {
  endpoints: string;
  token?: string;
  cacert?: string;
  cert?: string;
  key?: string;
}

/** --endpoints, --token and the TLS flags, on every command that talks to a server. */
function connected(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        '--endpoints <list>',
        'HTTP APIs, comma separated; the next is tried when one does not answer',
      )
        .env('TSPAXOS_ENDPOINTS')
        .default(DEFAULT_ENDPOINTS),
    )
    .addOption(new Option('--token <token>', 'bearer token (auth)').env('TSPAXOS_TOKEN'))
    .option('--cacert <file>', 'CA certificate(s) to verify an https:// server with')
    .option('--cert <file>', 'client certificate (a server that asks for one)')
    .option('--key <file>', 'client key of --cert');
}

function clientOf(flags: ConnectionFlags): Client {
  return new Client({
    endpoints: parseEndpoints(flags.endpoints),
    ...(flags.token !== undefined ? { token: flags.token } : {}),
    ...(flags.cacert !== undefined ? { cacert: flags.cacert } : {}),
    ...(flags.cert !== undefined ? { cert: flags.cert } : {}),
    ...(flags.key !== undefined ? { key: flags.key } : {}),
  });
}

/** Runs a command's body: a ClientError or BackupError becomes one line and exit code 1. */
function run<A extends unknown[]>(
  body: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args) => {
    try {
      await body(...args);
    } catch (error) {
      if (!(error instanceof ClientError) && !(error instanceof BackupError)) throw error;
      process.stderr.write(`tspaxos: error: ${error.message}\n`);
      process.exitCode = 1;
    }
  };
}

function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

const keyPath = (key: string) => `/kv/${encodeURIComponent(key)}`;

function positiveInt(flag: string): (text: string) => number {
  return (text) => {
    if (!/^\d{1,9}$/.test(text) || Number(text) < 1)
      throw new InvalidArgumentError(`${flag} must be a positive integer, got '${text}'`);
    return Number(text);
  };
}

/** The server answered 404 "no route": it predates the feature the command needs. */
function missingRoute(error: unknown): boolean {
  return error instanceof ClientError && error.status === 404 && / no route /.test(error.message);
}

export function registerClientCommands(program: Command): void {
  registerKv(program);
  registerStatus(program);
  registerMembers(program);
  registerBackup(program);
}

function registerKv(program: Command): void {
  const kv = program.command('kv').description('read and write keys');

  connected(kv.command('get').description('print the value of KEY'))
    .argument('<key>')
    .addOption(
      new Option(
        '--consistent <mode>',
        'false: this node; true: a quorum read index; barrier: a barrier; lease: the master',
      )
        .choices(['false', 'true', 'barrier', 'lease'])
        .default('false'),
    )
    .action(
      run(async (key: string, o: ConnectionFlags & { consistent: string }) => {
        const res = await clientOf(o).request('GET', `${keyPath(key)}?consistent=${o.consistent}`);
        if (res.status === 404)
          throw new ClientError(`not found: key '${key}'`, 'E_NOT_FOUND', 404);
        if (res.status !== 200) throw errorOf(res);
        process.stdout.write(res.body);
        if (process.stdout.isTTY) process.stdout.write('\n');
      }),
    );

  const write = (name: string, description: string) =>
    connected(kv.command(name).description(description))
      .option('--if-match <version>', 'only if the key is at this version (its ETag)')
      .option('--if-none-match', 'only if the key does not exist');
  write('put', 'set KEY to VALUE (or to standard input when VALUE is left out)')
    .argument('<key>')
    .argument('[value]')
    .action(
      run(async (key: string, value: string | undefined, o: WriteFlags) => {
        const body = value !== undefined ? Buffer.from(value) : fs.readFileSync(0);
        await writeKey(o, 'PUT', key, body);
      }),
    );
  write('del', 'delete KEY')
    .argument('<key>')
    .action(run(async (key: string, o: WriteFlags) => writeKey(o, 'DELETE', key)));

  connected(kv.command('list').description('list the keys that start with PREFIX, in key order'))
    .argument('[prefix]', 'key prefix', '')
    .option('--limit <n>', 'at most this many keys (default: all)', positiveInt('--limit'))
    .option('--keys-only', 'print the keys only')
    .option('--json', 'print the items as JSON')
    .action(
      run(
        async (
          prefix: string,
          o: ConnectionFlags & { limit?: number; keysOnly?: boolean; json?: boolean },
        ) => {
          const client = clientOf(o);
          const items: { key: string; value: string; version: string }[] = [];
          let after: string | null = null;
          do {
            const page = Math.min(LIST_PAGE_MAX, (o.limit ?? Infinity) - items.length);
            const query = new URLSearchParams({ prefix, limit: String(page) });
            if (after !== null) query.set('after', after);
            let res;
            try {
              res = await client.call('GET', `/kv?${query}`);
            } catch (error) {
              // Before listing (issue 18), GET /kv answered 400 E_BAD_KEY "the key is empty".
              if (error instanceof ClientError && error.code === 'E_BAD_KEY')
                throw new ClientError(
                  'this server does not list keys (GET /kv?prefix=): it needs a newer tspaxos node',
                );
              throw error;
            }
            const body = JSON.parse(res.body.toString('utf8')) as {
              items: { key: string; value: string; version: string }[];
              next: string | null;
            };
            items.push(...body.items);
            after = body.next;
          } while (after !== null && items.length < (o.limit ?? Infinity));
          if (o.json) return out(JSON.stringify(items));
          for (const item of items)
            out(
              o.keysOnly
                ? item.key
                : `${item.key}\t${Buffer.from(item.value, 'base64').toString('utf8')}`,
            );
        },
      ),
    );
}

interface WriteFlags extends ConnectionFlags {
  ifMatch?: string;
  ifNoneMatch?: boolean;
}

async function writeKey(
  o: WriteFlags,
  method: 'PUT' | 'DELETE',
  key: string,
  body?: Buffer,
): Promise<void> {
  // One key per command, reused by its retries on the next endpoints: the server applies the
  // write once whichever of them it reached (issue 18's exactly-once writes).
  const headers: Record<string, string> = { 'idempotency-key': randomUUID() };
  if (o.ifMatch !== undefined) headers['if-match'] = `"${o.ifMatch.replace(/^"|"$/g, '')}"`;
  if (o.ifNoneMatch) headers['if-none-match'] = '*';
  const res = await clientOf(o).call(method, keyPath(key), body, headers);
  const instanceId = res.headers['x-tspaxos-instance-id'];
  out(`OK${instanceId !== undefined ? ` (instance ${String(instanceId)})` : ''}`);
}

function registerStatus(program: Command): void {
  connected(program.command('status').description("a summary of every endpoint's /status"))
    .option('--json', "print each endpoint's /status as JSON, one per line")
    .action(
      run(async (o: ConnectionFlags & { json?: boolean }) => {
        const endpoints = parseEndpoints(o.endpoints);
        // Every endpoint, not the first that answers: the point is to see each node.
        const answers = await Promise.all(
          endpoints.map(async (endpoint) => {
            try {
              const res = await clientOf({ ...o, endpoints: endpoint }).call('GET', '/status');
              return { endpoint, status: JSON.parse(res.body.toString('utf8')) as NodeStatus };
            } catch (error) {
              return { endpoint, error: (error as Error).message };
            }
          }),
        );
        for (const a of answers) {
          if (o.json) out(JSON.stringify(a.status ?? { endpoint: a.endpoint, error: a.error }));
          else
            out(
              a.status
                ? describeNode(a.endpoint, a.status)
                : `${a.endpoint}  unreachable: ${a.error}`,
            );
        }
        const failed = answers.filter((a) => a.status === undefined).length;
        if (failed > 0) {
          process.stderr.write(
            `tspaxos: error: ${failed} of ${answers.length} endpoints did not answer\n`,
          );
          process.exitCode = 1;
        }
      }),
    );
}

/** One node's /status in a few lines an operator reads. */
export function describeNode(endpoint: string, s: NodeStatus): string {
  const lines = [
    `node ${s.nodeId}  ${endpoint}  paxos ${s.paxosAddress ?? '-'}  ${s.stopping ? 'STOPPING' : 'serving'}` +
      `${s.taskErrors.length > 0 ? `  task errors: ${s.taskErrors.length}` : ''}`,
  ];
  for (const g of s.groups) {
    const master =
      g.master === null ? 'none' : `node ${g.master.nodeId}${g.master.self ? ' (this node)' : ''}`;
    const state =
      g.stopped !== null
        ? `STOPPED (${JSON.stringify(g.stopped)})`
        : g.isFollower
          ? 'follower'
          : 'voter';
    lines.push(
      `  group ${g.group}: ${state}, instance ${g.instanceId}, applied ${g.kv.appliedInstanceId}, ` +
        `checkpoint ${g.kv.checkpointInstanceId}, log from ${g.minChosenInstanceId}, master ${master}, ` +
        `members ${g.members.join(',')}${g.followers.length > 0 ? `, followers ${g.followers.join(',')}` : ''}`,
    );
    const c = g.learner.catchUp;
    if (c !== undefined) lines.push(`    ${describeCatchUp(c, g.instanceId)}`);
  }
  return lines.join('\n');
}

/** A catch-up under way (the learner's status: rates over its window, ETA at that rate). */
export function describeCatchUp(
  c: NonNullable<NodeStatus['groups'][number]['learner']['catchUp']>,
  instanceId: number,
): string {
  const left = Math.max(0, c.targetInstanceId - instanceId);
  // etaMs is absent from the JSON while nothing has been learned (no rate yet).
  const eta =
    c.etaMs === undefined ? 'ETA unknown (nothing learned yet)' : `ETA ${formatMs(c.etaMs)}`;
  return (
    `catching up from node ${c.fromNodeId}: instance ${instanceId} of ${c.targetInstanceId} ` +
    `(${left} left), ${Math.round(c.instancesPerSec)} instances/s, ` +
    `${Math.round(c.bytesPerSec)} bytes/s, ${eta}`
  );
}

function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

function registerMembers(program: Command): void {
  const members = program
    .command('members')
    .description('list and change the membership (/admin/members)');
  connected(members.command('list').description('list the members'))
    .option('--json', 'print the answer as JSON')
    .action(
      run(async (o: ConnectionFlags & { json?: boolean }) => {
        const client = clientOf(o);
        try {
          const res = await client.call('GET', '/admin/members');
          // GET /admin/members: `nodes` (nodeId, role, peer, http, self) and `groups`.
          const body = JSON.parse(res.body.toString('utf8')) as {
            nodes?: Record<string, unknown>[];
          };
          if (o.json || !Array.isArray(body.nodes)) return out(JSON.stringify(body));
          for (const m of body.nodes)
            out(
              Object.entries(m)
                .map(([k, v]) => `${k}=${String(v)}`)
                .join('  '),
            );
        } catch (error) {
          if (!missingRoute(error)) throw error;
          // A server without membership routes: its members are the static --cluster, in /status.
          const s = JSON.parse(
            (await client.call('GET', '/status')).body.toString('utf8'),
          ) as NodeStatus;
          const g = s.groups[0]!;
          if (o.json) return out(JSON.stringify({ members: g.members, followers: g.followers }));
          for (const id of g.members) out(`nodeId=${id}  role=voter`);
          for (const id of g.followers) out(`nodeId=${id}  role=follower`);
        }
      }),
    );
  const change = (
    name: string,
    description: string,
    body: (id: number, o: MemberFlags) => Record<string, unknown>,
  ) =>
    connected(members.command(name).description(description))
      .argument('<nodeId>', 'the member', positiveInt('nodeId'))
      .action(
        run(async (id: number, o: MemberFlags) => {
          try {
            const res = await clientOf(o).call(
              'POST',
              '/admin/members',
              Buffer.from(JSON.stringify(body(id, o))),
              {
                'content-type': 'application/json',
              },
            );
            out(`OK ${res.body.toString('utf8')}`);
          } catch (error) {
            if (missingRoute(error))
              throw new ClientError(
                'this server has no /admin/members: membership changes need a newer tspaxos node',
              );
            throw error;
          }
        }),
      );
  change('add', 'add a member (a voter, or a follower with --follower)', (id, o) => ({
    action: 'add',
    nodeId: id,
    role: o.follower ? 'follower' : 'voter',
    ...(o.peer !== undefined ? { peer: o.peer } : {}),
    ...(o.http !== undefined ? { http: o.http } : {}),
  }))
    .option('--peer <host:port>', 'its paxos address')
    .option('--http <host:port>', 'its HTTP API')
    .option('--follower', 'add it as a non-voting follower');
  change('remove', 'remove a member', (id) => ({ action: 'remove', nodeId: id }));
  change('promote', 'make a follower a voter', (id) => ({ action: 'promote', nodeId: id }));
}

interface MemberFlags extends ConnectionFlags {
  peer?: string;
  http?: string;
  follower?: boolean;
}

function registerBackup(program: Command): void {
  connected(
    program.command('backup').description("save every group's KV checkpoint of one node to FILE"),
  )
    .requiredOption('--out <file>', 'the backup file (written whole or not at all)')
    .action(
      run(async (o: ConnectionFlags & { out: string }) => {
        const res = await clientOf(o).call('GET', '/admin/backup');
        // Checked before it is saved: a cut download is never left as a backup.
        const { header } = parseBackup(res.body);
        const temp = `${o.out}.partial`;
        try {
          fs.writeFileSync(temp, res.body, { flush: true });
          fs.renameSync(temp, o.out);
        } catch (error) {
          fs.rmSync(temp, { force: true });
          throw new ClientError(`cannot write ${o.out}: ${(error as Error).message}`);
        }
        out(
          `saved node ${header.nodeId}'s ${header.groupCount} group(s) at instances ` +
            `${header.groups.map((g) => g.checkpointInstanceId).join(',')} (${res.body.length} bytes) to ${o.out}`,
        );
      }),
    );

  program
    .command('restore')
    .description(
      'write a new data directory from a backup (start each node of a new cluster from a copy)',
    )
    .requiredOption('--from <file>', 'the backup file')
    .requiredOption('--data <dir>', 'the data directory to create (must not exist or be empty)')
    .action(
      run(async (o: { from: string; data: string }) => {
        let bytes: Buffer;
        try {
          bytes = fs.readFileSync(o.from);
        } catch (error) {
          throw new ClientError(
            `--from ${o.from}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
          );
        }
        const header = restoreBackup(bytes, o.data);
        out(
          `restored ${header.groupCount} group(s) at instances ${header.groups.map((g) => g.checkpointInstanceId).join(',')} ` +
            `into ${path.resolve(o.data)}; start the node with --groups ${header.groupCount} --data ${o.data}`,
        );
      }),
    );
}
