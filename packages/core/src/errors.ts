/**
 * Base class of every error tspaxos reports as a value: bad input from the network, the disk or
 * the user. `code` is stable (tests and callers switch on it); `message` is for people.
 * It lives in the lowest package so that every other package shares one class.
 */
export class TspaxosError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * What assert() throws: a bug of our own code, never bad input. Coded (E_INVARIANT) so that a
 * group it reaches stops with it, whichever package's code broke the invariant, and the callers
 * whose proposals were pending learn why.
 */
export class InvariantError extends TspaxosError {
  declare readonly code: 'E_INVARIANT';

  constructor(message: string) {
    super('E_INVARIANT', `tspaxos invariant violated: ${message}`);
  }
}

/**
 * A broken invariant of our own code: a bug, never bad input (style.md 10). On a hot path pass a
 * constant message (a template literal allocates even when the condition holds).
 */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantError(message);
}
