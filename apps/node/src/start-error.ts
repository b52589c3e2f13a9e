// Why a node could not start, said in one line: the CLI prints `tspaxos: error: <message>` on
// stderr and exits with `exitCode` (2: the flags, the config or the data directory's recorded
// identity are wrong; 1: the machine refused, e.g. a port in use or a data directory held by
// another process). Never a stack trace: an operator reads these.
export class StartError extends Error {
  override readonly name = 'StartError';
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
  ) {
    // A parser's message may quote the input's lines (V8's JSON.parse does): keep it one line.
    super(message.replace(/\s*\n\s*/g, ' '));
  }
}

/** The start error an exception raised while starting means; undefined when it is a bug of ours. */
export function startErrorOf(error: unknown): StartError | undefined {
  if (error instanceof StartError) return error;
  const e = error as { code?: unknown; message?: unknown; address?: unknown; port?: unknown };
  const where = typeof e.address === 'string' ? `${e.address}:${String(e.port)}` : 'the address';
  switch (e.code) {
    case 'EADDRINUSE':
      return new StartError(`cannot listen on ${where}: the address is in use`, 1);
    case 'EADDRNOTAVAIL':
      return new StartError(`cannot listen on ${where}: no such local address`, 1);
    case 'EACCES':
    case 'EPERM':
      return new StartError(`permission denied: ${String(e.message)}`, 1);
    case 'E_LOCKED':
      return new StartError(
        `the data directory is in use by another process (${String(e.message)})`,
        1,
      );
    case 'ENOTDIR':
    case 'EISDIR':
    case 'ENOENT':
    case 'EROFS':
    case 'ENOSPC':
    case 'E_OPEN_FAILED':
    case 'E_READ_ONLY':
    case 'E_SCHEMA_TOO_NEW':
      return new StartError(`the data directory cannot be used: ${String(e.message)}`, 1);
    default:
      return undefined;
  }
}
