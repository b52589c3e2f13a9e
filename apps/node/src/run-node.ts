// `tspaxos node`: one node as a process. SIGTERM/SIGINT stop it gracefully (new requests get 503,
// writes in flight are drained or answered 504, the log and the KV files are closed); a failed KV
// commit stops it with exit code 1 (the log replays the lost instances at the next start). What
// stops a start (a port in use, a data directory held or recorded for other values) is one line
// on stderr and exit code 1 or 2 (start-error.ts).
import { pino } from 'pino';
import { checkIdentity, lockDataDir } from './data-dir';
import { CLUSTER_ID } from './options';
import { JoinError, type JoinOptions, register, resolveJoin } from './join';
import type { MembersView } from './membership';
import { KvServer, type ServerConfig } from './server';
import { StartError, startErrorOf } from './start-error';

/** Marks of the start before runNode, in ms from the process start (the `data-dir` line). */
export interface StartMarks {
  /** The CLI's modules were evaluated (cli.ts). */
  modulesLoadedMs: number;
}

export async function runNode(
  flags: ServerConfig & { logLevel: string; join?: JoinOptions },
  marks?: StartMarks,
): Promise<void> {
  let config = flags;
  const log = pino({
    level: config.logLevel,
    base: { nodeId: config.nodeId },
    // Every line names its group; lines about the whole node say `group: null`.
    mixin: () => ({ group: null }),
    timestamp: pino.stdTimeFunctions.isoTime,
  });
  const exit = (code: number): never => {
    log.flush();
    process.exit(code);
  };
  // A join that cannot go on is one line and exit code 1, as any other start error.
  const joinFailed = (error: unknown): never => {
    if (!(error instanceof JoinError)) throw error;
    log.fatal({ group: null, err: error }, 'join-failed');
    process.stderr.write(`tspaxos: error: ${error.message}\n`);
    return exit(1) as never;
  };
  let joinView: MembersView | undefined;
  if (flags.join !== undefined) {
    try {
      const joined = await resolveJoin(flags, flags.join, log);
      config = { ...flags, ...joined.flags };
      joinView = joined.view;
    } catch (error) {
      joinFailed(error);
    }
  }
  let server: KvServer | undefined;
  let lock: { close(): void } | undefined;
  let started = false;
  try {
    // Before anything in the directory is opened: the KV files are repaired at open.
    lock = lockDataDir(config.dataDir);
    const identity = {
      clusterId: config.clusterId ?? CLUSTER_ID,
      nodeId: config.nodeId,
      groups: config.groups,
    };
    const recorded = checkIdentity(config.dataDir, identity);
    log.info(
      {
        ...identity,
        dataDir: config.dataDir,
        recorded: recorded === 'recorded',
        // The start timeline (ms from the process start): Node's own bootstrap done (our first
        // line could run), our modules evaluated, and this line.
        startMs: {
          nodeBootstrap: Math.round(performance.nodeTiming.bootstrapComplete),
          ...(marks !== undefined ? { modulesLoaded: Math.round(marks.modulesLoadedMs) } : {}),
          dataDir: Math.round(performance.now()),
        },
      },
      'data-dir',
    );
    server = new KvServer(config, log, (error) => {
      log.fatal({ err: error }, 'fatal');
      exit(1);
    });
  } catch (error) {
    failStart(error, log, exit);
  }
  process.on('unhandledRejection', (error) => {
    if (!started) failStart(error, log, exit);
    log.fatal({ err: error }, 'unhandled-rejection');
    exit(1);
  });
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) return;
    signalled = true;
    log.info({ signal }, 'signal');
    server!.stop().then(
      () => {
        lock!.close();
        exit(0);
      },
      (error: Error) => {
        log.fatal({ err: error }, 'stop-failed');
        exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await server!.start();
    started = true;
  } catch (error) {
    failStart(error, log, exit);
  }
  if (flags.join !== undefined) {
    await register(
      flags.join,
      { nodeId: config.nodeId, peer: server!.paxosAddress!, http: server!.httpUrl },
      joinView,
      log,
    ).catch(joinFailed);
  }
}

/** One line on stderr; a bug (not a known start error) keeps its stack in the JSON log. */
function failStart(error: unknown, log: pino.Logger, exit: (code: number) => never): never {
  const known = startErrorOf(error);
  const e =
    known ?? new StartError(`cannot start: ${(error as Error).message ?? String(error)}`, 1);
  if (known === undefined) log.fatal({ err: error }, 'start-failed');
  else
    log.error(
      { code: (error as { code?: unknown }).code ?? null, message: e.message },
      'start-failed',
    );
  log.flush();
  process.stderr.write(`tspaxos: error: ${e.message}\n`);
  return exit(e.exitCode);
}
