// `tspaxos node`: one node as a process. SIGTERM/SIGINT stop it gracefully (new requests get 503,
// writes in flight are drained or answered 504, the log and the KV files are closed); a failed KV
// commit stops it with exit code 1 (the log replays the lost instances at the next start).
import { pino } from 'pino';
import { KvServer, type ServerConfig } from './server';

export async function runNode(config: ServerConfig & { logLevel: string }): Promise<void> {
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
}
