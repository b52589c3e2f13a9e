#!/usr/bin/env node
// `tspaxos`: the CLI of design.md §6. Bad flags give one line on stderr and exit code 2.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import {
  ArgumentError,
  parseAddress,
  parseCluster,
  parseHttpPeers,
  parseIntIn,
  parseJoinUrl,
} from './args';
import { registerClientCommands } from './client/commands';
import { ClientError, readTokenFile } from './client/http';
import { runCluster } from './cluster';
import { applyConfig, missingRequired, readConfigFile, repeatable, withEnvVars } from './config';
import { AuthTokens } from './http/auth';
import { DEFAULT_READY_MAX_LAG_INSTANCES } from './readiness';
import type { JoinClientOptions } from './join';
import { runNode } from './run-node';
import { MASTER_LEASE_MIN_MS } from './stack';
import { StartError } from './start-error';
import { checkClientTls, httpsOptions, peerTls, tlsFlagProblem, type TlsFlags } from './tls';
import { VERSION } from './version';
import {
  CLUSTER_ID,
  DEFAULT_BASE_PORT,
  DEFAULT_CHECKPOINT_EVERY_INSTANCES,
  DEFAULT_IDEMPOTENCY_WINDOW_KEYS,
  DEFAULT_IDEMPOTENCY_WINDOW_MS,
  DEFAULT_KEEP_LOG_INSTANCES,
  DEFAULT_MASTER_LEASE_MS,
  MAX_IDEMPOTENCY_WINDOW_KEYS,
  MAX_IDEMPOTENCY_WINDOW_MS,
  MAX_CATCH_UP_BATCH_INSTANCES,
  MAX_GROUPS,
  MAX_MASTER_LEASE_MS,
  MAX_LOCAL_NODES,
  MIN_KEEP_LOG_INSTANCES,
} from './options';

/**
 * Milliseconds from the process start to the end of this bundle's module evaluation: the first
 * mark of a node's start timeline (the `data-dir` line; issue 22, BENCHMARKS.md).
 */
const MODULES_LOADED_MS = performance.now();

const EXIT_USAGE = 2;
/** Flags `tspaxos node` needs from the command line, the environment or --config. */
const NODE_REQUIRED = ['--id', '--http', '--data'];

/** Wraps a parser so commander reports its message on one line. */
function arg<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (error) {
      if (error instanceof ArgumentError) throw new InvalidArgumentError(error.message);
      throw error;
    }
  };
}

function usageError(message: string): never {
  process.stderr.write(`tspaxos: error: ${message} (see --help)\n`);
  process.exit(EXIT_USAGE);
}

/** A start error found while reading the flags' files (--config, --auth-file, TLS): one line. */
function startError(error: unknown): never {
  if (!(error instanceof StartError)) throw error;
  process.stderr.write(`tspaxos: error: ${error.message}\n`);
  process.exit(error.exitCode);
}

export function buildProgram(): Command {
  const program = new Command('tspaxos')
    .description('tspaxos reference server: a replicated key-value store on PhxPaxos-style groups')
    .version(VERSION.version, '-V, --version', 'print the version')
    .showSuggestionAfterError(false)
    .exitOverride()
    .configureOutput({
      writeErr: (s) => process.stderr.write(s.split('\n').filter(Boolean)[0] + '\n'),
      outputError: (s, write) => write(`tspaxos: ${s.trim().split('\n')[0]} (see --help)\n`),
    });

  withEnvVars(program.command('node'))
    .description('run one node (every flag also as TSPAXOS_<FLAG> or a --config key)')
    .option(
      '--config <file>',
      'a JSON or YAML (.yaml, .yml) file of flags: {"id": 1, "cluster": "1=h:p,…", …}',
    )
    .option(
      '--id <N>',
      'this node id',
      arg((t) => parseIntIn('--id', t, 1, Number.MAX_SAFE_INTEGER)),
    )
    .option(
      '--cluster <list>',
      'voting members: 1=host:port,2=host:port,… (paxos addresses; or --join)',
      arg(parseCluster),
    )
    .option(
      '--join <url>',
      "join a running cluster: ask this member's HTTP API for the membership (needs --listen)",
      arg(parseJoinUrl),
    )
    .addOption(
      new Option('--join-as <role>', 'the role --join asks for when this node is not a member yet')
        .choices(['follower', 'voter'])
        .default('follower'),
    )
    .option(
      '--join-token <token>',
      'bearer token --join sends to the member (an admin token: both its routes need admin)',
    )
    .option(
      '--join-token-file <file>',
      'file holding the --join token (its first line; a `token role` line works too)',
    )
    .option('--join-ca <file>', 'PEM CA to verify an https:// --join member with')
    .option('--join-cert <file>', 'PEM client certificate for a --join member with --client-ca')
    .option('--join-key <file>', 'PEM key of --join-cert')
    .option(
      '--http <host:port>',
      'HTTP API address (port 0: any free port)',
      arg((t) => parseAddress('--http', t)),
    )
    .option('--data <dir>', 'data directory (paxos log and KV files)')
    .option(
      '--listen <host:port>',
      'paxos listen address (default: own entry of --cluster)',
      arg((t) => parseAddress('--listen', t)),
    )
    .option(
      '--follow-to <M>',
      'run as a non-voting follower of node M',
      arg((t) => parseIntIn('--follow-to', t, 1, Number.MAX_SAFE_INTEGER)),
    )
    .option(
      '--groups <G>',
      'independent paxos groups keys are hashed to',
      arg((t) => parseIntIn('--groups', t, 1, MAX_GROUPS)),
      1,
    )
    .option(
      '--http-peers <list>',
      "the other members' HTTP APIs: 1=host:port,… (members view in /status, dashboard)",
      arg(parseHttpPeers),
    )
    .option(
      '--catch-up-rate <n>',
      'most instances per second this node streams to a lagging peer (learner sender rate limit)',
      arg((t) => parseIntIn('--catch-up-rate', t, 1, 10_000_000)),
    )
    .option(
      '--no-master-election',
      'run no master election (GET ?consistent=lease then answers 503; every node proposes its own writes)',
    )
    .option(
      '--master-lease-ms <ms>',
      `the master lease (default ${DEFAULT_MASTER_LEASE_MS}, etcd's election timeout; at least ${MASTER_LEASE_MIN_MS})`,
      arg((t) => parseIntIn('--master-lease-ms', t, MASTER_LEASE_MIN_MS, MAX_MASTER_LEASE_MS)),
    )
    .option(
      '--batch-wait-ms <ms>',
      'how long a batch of writes may wait for as many as the last batch answered (paxos batchWaitMs, default 3; 0: never)',
      arg((t) => parseIntIn('--batch-wait-ms', t, 0, 1000)),
    )
    .option(
      '--catch-up-batch <n>',
      'most instances per catch-up batch this node sends (learner batchMaxInstances; also the burst the rate limit allows)',
      arg((t) => parseIntIn('--catch-up-batch', t, 1, MAX_CATCH_UP_BATCH_INSTANCES)),
    )
    .option(
      '--checkpoint-every <instances>',
      `write a KV checkpoint every this many instances (0: only on POST /admin/checkpoint)`,
      arg((t) => parseIntIn('--checkpoint-every', t, 0, Number.MAX_SAFE_INTEGER)),
      DEFAULT_CHECKPOINT_EVERY_INSTANCES,
    )
    .option(
      '--keep-log <instances>',
      `log instances kept below the KV checkpoint: the node compacts its log on its own once it holds more (min ${MIN_KEEP_LOG_INSTANCES})`,
      arg((t) => parseIntIn('--keep-log', t, MIN_KEEP_LOG_INSTANCES, Number.MAX_SAFE_INTEGER)),
      DEFAULT_KEEP_LOG_INSTANCES,
    )
    .option(
      '--idempotency-window-ms <ms>',
      'how long each group keeps an Idempotency-Key, by the clocks the writes carry (the window travels in each write from this node)',
      arg((t) => parseIntIn('--idempotency-window-ms', t, 1, MAX_IDEMPOTENCY_WINDOW_MS)),
      DEFAULT_IDEMPOTENCY_WINDOW_MS,
    )
    .option(
      '--idempotency-keys <n>',
      'most Idempotency-Keys each group keeps (the oldest go first; bounds the table)',
      arg((t) => parseIntIn('--idempotency-keys', t, 1, MAX_IDEMPOTENCY_WINDOW_KEYS)),
      DEFAULT_IDEMPOTENCY_WINDOW_KEYS,
    )
    .addOption(
      new Option('--log-level <level>', 'log level')
        .choices(['debug', 'info', 'warn', 'error'])
        .default('info'),
    )
    .option(
      '--cluster-id <id>',
      'the cluster id every peer link announces; peers of another cluster are refused',
      arg(parseClusterId),
      CLUSTER_ID,
    )
    .option('--peer-cert <file>', 'PEM certificate of this node on the paxos links (mutual TLS)')
    .option('--peer-key <file>', 'PEM key of --peer-cert')
    .option(
      '--peer-ca <file>',
      'PEM CA that signed every peer certificate (plain peers are refused)',
    )
    .option('--cert <file>', 'PEM certificate of the HTTPS client API')
    .option('--key <file>', 'PEM key of --cert')
    .option(
      '--client-ca <file>',
      'PEM CA whose signed client certificate every HTTPS client must present',
    )
    .option(
      '--auth-file <file>',
      "bearer tokens: one 'token role' per line (role: read, write, admin)",
    )
    .option(
      '--auth-metrics',
      'with --auth-file, /metrics /status /livez /readyz /version need a read token too',
    )
    .addOption(
      repeatable(
        new Option(
          '--cors-origin <origin>',
          'an origin browsers may call this API from (repeatable)',
        ).argParser((value: string, previous: string[] | undefined) => [
          ...(previous ?? []),
          parseOrigin(value),
        ]),
      ),
    )
    .option(
      '--ready-max-lag <instances>',
      `GET /readyz: most instances a group may be behind its peers (default ${DEFAULT_READY_MAX_LAG_INSTANCES})`,
      arg((t) => parseIntIn('--ready-max-lag', t, 0, Number.MAX_SAFE_INTEGER)),
      DEFAULT_READY_MAX_LAG_INSTANCES,
    )
    .action(async (_o: unknown, command: Command) => {
      if (command.opts().config !== undefined) {
        const file = command.opts().config as string;
        try {
          applyConfig(command, file, await readConfigFile(file));
        } catch (error) {
          startError(error);
        }
      }
      const missing = missingRequired(command, NODE_REQUIRED);
      if (missing !== undefined) usageError(missing);
      const o = command.opts<NodeFlags>();
      const tlsProblem = tlsFlagProblem(o);
      if (tlsProblem !== undefined) usageError(tlsProblem);
      if (o.authMetrics && o.authFile === undefined) usageError('--auth-metrics needs --auth-file');
      let security: Pick<Parameters<typeof runNode>[0], 'peerTls' | 'https' | 'auth'>;
      try {
        const peer = peerTls(o);
        const https = httpsOptions(o);
        let tokens: AuthTokens | undefined;
        try {
          tokens = o.authFile === undefined ? undefined : AuthTokens.load(o.authFile);
        } catch (error) {
          throw new StartError((error as Error).message, 2);
        }
        security = {
          ...(peer ? { peerTls: peer } : {}),
          ...(https ? { https } : {}),
          auth: { tokens, protectObservability: o.authMetrics === true },
        };
      } catch (error) {
        startError(error);
      }
      if ((o.cluster === undefined) === (o.join === undefined))
        usageError('give either --cluster (a new cluster) or --join URL (a running one)');
      if (o.join !== undefined) {
        if (o.followTo !== undefined) usageError('--join and --follow-to do not go together');
        if (o.listen === undefined) usageError('--join needs --listen (the paxos address to bind)');
        for (const [flag, a] of [
          ['--listen', o.listen],
          ['--http', o.http],
        ] as const)
          if (a.host === '0.0.0.0' || a.host === '::')
            usageError(
              `--join registers ${flag} as this node's address: give a host others can reach, not ${a.host}`,
            );
      }
      const joinClient = joinClientOptions(o);
      const cluster = o.cluster ?? new Map<number, { host: string; port: number }>();
      const listen = o.listen ?? cluster.get(o.id);
      if (o.join !== undefined) {
        // The voters come from the member asked (join.ts).
      } else if (o.followTo !== undefined) {
        if (cluster.has(o.id))
          usageError(`a follower (--follow-to) must not be in --cluster (node ${o.id} is)`);
        if (!cluster.has(o.followTo)) usageError(`--follow-to ${o.followTo} is not in --cluster`);
        if (o.listen === undefined)
          usageError('a follower needs --listen (its id is not in --cluster)');
      } else if (!cluster.has(o.id)) {
        usageError(`--id ${o.id} is not in --cluster (${[...cluster.keys()].join(',')})`);
      }
      await runNode(
        {
          nodeId: o.id,
          cluster,
          ...(o.join !== undefined
            ? { join: { url: o.join, as: o.joinAs, client: joinClient } }
            : {}),
          listen: listen!,
          http: o.http,
          dataDir: o.data,
          ...(o.followTo !== undefined ? { followTo: o.followTo } : {}),
          groups: o.groups,
          httpPeers: o.httpPeers ?? new Map(),
          ...(o.catchUpRate !== undefined ? { catchUpRatePerSec: o.catchUpRate } : {}),
          ...(o.catchUpBatch !== undefined ? { catchUpBatchInstances: o.catchUpBatch } : {}),
          masterElection: o.masterElection,
          ...(o.masterLeaseMs !== undefined ? { masterLeaseMs: o.masterLeaseMs } : {}),
          ...(o.batchWaitMs !== undefined ? { batchWaitMs: o.batchWaitMs } : {}),
          checkpointEveryInstances: o.checkpointEvery,
          keepLogInstances: o.keepLog,
          idempotencyWindowMs: o.idempotencyWindowMs,
          idempotencyWindowKeys: o.idempotencyKeys,
          logLevel: o.logLevel,
          clusterId: o.clusterId,
          ...security,
          corsOrigins: o.corsOrigin ?? [],
          readyMaxLagInstances: o.readyMaxLag,
        },
        { modulesLoadedMs: MODULES_LOADED_MS },
      );
    });

  withEnvVars(program.command('cluster'))
    .description('run N local nodes as child processes (what `npm start` runs)')
    .option(
      '--nodes <N>',
      'how many nodes',
      arg((t) => parseIntIn('--nodes', t, 1, MAX_LOCAL_NODES)),
      3,
    )
    .option('--data <dir>', 'data directory; node i uses <dir>/node-i', './data')
    .option(
      '--base-port <P>',
      `node i: paxos on P+i, HTTP on P+1000+i (default ${DEFAULT_BASE_PORT})`,
      arg((t) => parseIntIn('--base-port', t, 1, 65535 - 1000 - MAX_LOCAL_NODES)),
      DEFAULT_BASE_PORT,
    )
    .option('--host <host>', 'address every node binds', '127.0.0.1')
    .option(
      '--groups <G>',
      'paxos groups per node',
      arg((t) => parseIntIn('--groups', t, 1, MAX_GROUPS)),
      1,
    )
    .action(async (o: ClusterFlags) => {
      await runCluster({
        nodes: o.nodes,
        dataDir: o.data,
        basePort: o.basePort,
        host: o.host,
        groups: o.groups,
      });
    });

  registerClientCommands(program);
  return program;
}

/** The node command's flags (the TLS ones as tls.ts reads them). */
interface NodeFlags extends TlsFlags {
  id: number;
  cluster?: Map<number, { host: string; port: number }>;
  join?: string;
  joinAs: 'follower' | 'voter';
  joinToken?: string;
  joinTokenFile?: string;
  joinCa?: string;
  joinCert?: string;
  joinKey?: string;
  http: { host: string; port: number };
  data: string;
  listen?: { host: string; port: number };
  followTo?: number;
  groups: number;
  httpPeers?: Map<number, string>;
  catchUpRate?: number;
  catchUpBatch?: number;
  masterElection: boolean;
  masterLeaseMs?: number;
  batchWaitMs?: number;
  checkpointEvery: number;
  keepLog: number;
  idempotencyWindowMs: number;
  idempotencyKeys: number;
  logLevel: string;
  config?: string;
  clusterId: string;
  authFile?: string;
  authMetrics?: boolean;
  corsOrigin?: string[];
  readyMaxLag: number;
}

/**
 * How --join reaches the member: the token (from --join-token or its file) and the TLS files,
 * read and checked now so a bad one is one line before anything starts.
 */
function joinClientOptions(o: NodeFlags): JoinClientOptions {
  const given = (['joinToken', 'joinTokenFile', 'joinCa', 'joinCert', 'joinKey'] as const).filter(
    (k) => o[k] !== undefined,
  );
  if (o.join === undefined) {
    if (given.length > 0)
      usageError(`--${given[0]!.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} needs --join`);
    return {};
  }
  if (o.joinToken !== undefined && o.joinTokenFile !== undefined)
    usageError('give --join-token or --join-token-file, not both');
  if ((o.joinCert === undefined) !== (o.joinKey === undefined))
    usageError('--join-cert and --join-key go together');
  try {
    const token =
      o.joinTokenFile !== undefined
        ? readTokenFile('--join-token-file', o.joinTokenFile)
        : o.joinToken;
    checkClientTls(o.joinCa, o.joinCert, o.joinKey);
    return {
      ...(token !== undefined ? { token } : {}),
      ...(o.joinCa !== undefined ? { cacert: o.joinCa } : {}),
      ...(o.joinCert !== undefined ? { cert: o.joinCert, key: o.joinKey! } : {}),
    };
  } catch (error) {
    // A token file that cannot be read or holds no token: a bad flag, as --auth-file's (exit 2).
    startError(error instanceof ClientError ? new StartError(error.message, 2) : error);
  }
}

/** A cluster id: 1 … 64 printable ASCII characters, no spaces (it travels in every hello). */
function parseClusterId(text: string): string {
  if (!/^[\x21-\x7e]{1,64}$/.test(text))
    throw new ArgumentError(
      `--cluster-id must be 1 … 64 printable characters without spaces, got '${text}'`,
    );
  return text;
}

/** An origin as browsers send it: scheme://host[:port], nothing after. */
function parseOrigin(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidArgumentError(
      `--cors-origin must be an origin such as https://app.example:8443, got '${text}'`,
    );
  }
  if (url.origin !== text.replace(/\/$/, ''))
    throw new InvalidArgumentError(
      `--cors-origin must be an origin (scheme://host[:port]), got '${text}'`,
    );
  return url.origin;
}

interface ClusterFlags {
  nodes: number;
  data: string;
  basePort: number;
  host: string;
  groups: number;
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  if (argv.length <= 2) {
    program.outputHelp();
    process.exit(EXIT_USAGE);
  }
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here too, with exit code 0.
      process.exit(error.exitCode === 0 ? 0 : EXIT_USAGE);
    }
    throw error;
  }
}

main(process.argv).catch((error: Error) => {
  process.stderr.write(`tspaxos: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
