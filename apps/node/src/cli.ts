#!/usr/bin/env node
// `tspaxos`: the CLI of design.md §6. Bad flags give one line on stderr and exit code 2.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ArgumentError, parseAddress, parseCluster, parseHttpPeers, parseIntIn } from './args';
import { registerClientCommands } from './client/commands';
import { runCluster } from './cluster';
import { runNode } from './run-node';
import { MASTER_LEASE_MIN_MS } from './stack';
import {
  DEFAULT_BASE_PORT,
  DEFAULT_CHECKPOINT_EVERY_INSTANCES,
  DEFAULT_KEEP_LOG_INSTANCES,
  MAX_CATCH_UP_BATCH_INSTANCES,
  MAX_GROUPS,
  MAX_MASTER_LEASE_MS,
  MAX_LOCAL_NODES,
  MIN_KEEP_LOG_INSTANCES,
} from './options';

const EXIT_USAGE = 2;

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

export function buildProgram(): Command {
  const program = new Command('tspaxos')
    .description('tspaxos reference server: a replicated key-value store on PhxPaxos-style groups')
    .showSuggestionAfterError(false)
    .exitOverride()
    .configureOutput({
      writeErr: (s) => process.stderr.write(s.split('\n').filter(Boolean)[0] + '\n'),
      outputError: (s, write) => write(`tspaxos: ${s.trim().split('\n')[0]} (see --help)\n`),
    });

  program
    .command('node')
    .description('run one node')
    .requiredOption(
      '--id <N>',
      'this node id',
      arg((t) => parseIntIn('--id', t, 1, Number.MAX_SAFE_INTEGER)),
    )
    .requiredOption(
      '--cluster <list>',
      'voting members: 1=host:port,2=host:port,… (paxos addresses)',
      arg(parseCluster),
    )
    .requiredOption(
      '--http <host:port>',
      'HTTP API address (port 0: any free port)',
      arg((t) => parseAddress('--http', t)),
    )
    .requiredOption('--data <dir>', 'data directory (paxos log and KV files)')
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
      'run no master election (GET ?consistent=lease then answers 409)',
    )
    .option(
      '--master-lease-ms <ms>',
      `the master lease (default 10000, PhxPaxos's; at least ${MASTER_LEASE_MIN_MS})`,
      arg((t) => parseIntIn('--master-lease-ms', t, MASTER_LEASE_MIN_MS, MAX_MASTER_LEASE_MS)),
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
    .addOption(
      new Option('--log-level <level>', 'log level')
        .choices(['debug', 'info', 'warn', 'error'])
        .default('info'),
    )
    .action(async (o: NodeFlags) => {
      const listen = o.listen ?? o.cluster.get(o.id);
      if (o.followTo !== undefined) {
        if (o.cluster.has(o.id))
          usageError(`a follower (--follow-to) must not be in --cluster (node ${o.id} is)`);
        if (!o.cluster.has(o.followTo)) usageError(`--follow-to ${o.followTo} is not in --cluster`);
        if (o.listen === undefined)
          usageError('a follower needs --listen (its id is not in --cluster)');
      } else if (!o.cluster.has(o.id)) {
        usageError(`--id ${o.id} is not in --cluster (${[...o.cluster.keys()].join(',')})`);
      }
      await runNode({
        nodeId: o.id,
        cluster: o.cluster,
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
        checkpointEveryInstances: o.checkpointEvery,
        keepLogInstances: o.keepLog,
        logLevel: o.logLevel,
      });
    });

  program
    .command('cluster')
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

interface NodeFlags {
  id: number;
  cluster: Map<number, { host: string; port: number }>;
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
  checkpointEvery: number;
  keepLog: number;
  logLevel: string;
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
