// `tspaxos node`: one node as a process. SIGTERM/SIGINT stop it gracefully (new requests get 503,
// writes in flight are drained or answered 504, the log and the KV files are closed); a failed KV
// commit stops it with exit code 1 (the log replays the lost instances at the next start).
import { pino } from 'pino';
import { JoinError, type JoinOptions, register, resolveJoin } from './join';
import type { MembersView } from './membership';
import { KvServer, type ServerConfig } from './server';

export async function runNode(
  flags: ServerConfig & { logLevel: string; join?: JoinOptions },
): Promise<void> {
  let config = flags;
  const log = pino({
    level: config.logLevel,
    base: { nodeId: config.nodeId },
    // Every line names its group; lines about the whole node say `group: null`.
    mixin: () => ({ group: null }),
    timestamp: pino.stdTimeFunctions.isoTime,
  });
  const exit = (code: number) => {
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
  const server = new KvServer(config, log, (error) => {
    log.fatal({ err: error }, 'fatal');
    exit(1);
  });
  process.on('unhandledRejection', (error) => {
    log.fatal({ err: error }, 'unhandled-rejection');
    exit(1);
  });
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) return;
    signalled = true;
    log.info({ signal }, 'signal');
    server.stop().then(
      () => exit(0),
      (error: Error) => {
        log.fatal({ err: error }, 'stop-failed');
        exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  await server.start();
  if (flags.join !== undefined) {
    await register(
      flags.join,
      { nodeId: config.nodeId, peer: server.paxosAddress!, http: server.httpUrl },
      joinView,
      log,
    ).catch(joinFailed);
  }
}
