// How errors become HTTP answers: the `{ error: { code, message } }` body, the mapping of every
// paxos rejection (fromPaxos), and what a refusal tells about a proposal's fate (settle).
import { ServerError } from '../errors';
import { MAX_BODY_BYTES } from '../options';
import { PaxosError } from '../stack';

export interface ErrorBody {
  error: { code: string; message: string; [extra: string]: unknown };
}

export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

/** Where a proposal was when the group refused it, and what it was for. */
export interface Refusal {
  /**
   * The value had entered the group's queue: its proposer may have sent it, so it may be chosen.
   * False when PaxosNode refused it before queueing it (nothing left the node).
   */
  queued: boolean;
  /** A PUT/DELETE (a barrier has no effect, so its outcome is never in doubt). */
  write: boolean;
}

/**
 * Maps every paxos rejection to an HTTP answer; undefined for the codes that mean a bug of ours.
 * A 503 means "not applied, try again" (issue 17): a write the group may have sent before it
 * refused it is answered 504 E_OUTCOME_UNKNOWN instead, as a timeout is.
 */
export function fromPaxos(error: PaxosError, refusal: Refusal): ServerError | undefined {
  const code = error.code;
  const detail = `${code}: ${error.message}`;
  const unavailable = () => new ServerError('E_UNAVAILABLE', detail);
  const unknownOutcome = refusal.queued && refusal.write;
  const outcomeUnknown = () =>
    new ServerError(
      'E_OUTCOME_UNKNOWN',
      `${detail} (the write may have been sent to the other members before: it may or may not be applied; read it back or retry)`,
    );
  switch (code) {
    case 'E_TIMEOUT':
      return new ServerError('E_TIMEOUT', error.message);
    case 'E_STOPPED':
      return unknownOutcome ? outcomeUnknown() : new ServerError('E_STOPPING', error.message);
    case 'E_FOLLOWER':
      return new ServerError(
        'E_FOLLOWER',
        'a follower proposes nothing itself and knows no master to forward to now (an election takes up to two leases): try again, or send it to a voting member',
      );
    case 'E_NOT_MASTER':
    case 'E_MASTER_UNREACHABLE':
      // Not proposed anywhere (a former master refused it unqueued, or nothing was sent), or no
      // master to ask for a read index: not applied, try again.
      return unavailable();
    case 'E_NO_QUORUM':
      return new ServerError('E_NO_QUORUM', detail);
    case 'E_OUTCOME_UNKNOWN':
      // A forwarded write the master may have chosen; a read applies nothing, so it is retryable.
      return refusal.write ? outcomeUnknown() : unavailable();
    case 'E_VALUE_TOO_LARGE':
      return new ServerError('E_TOO_LARGE', error.message);
    case 'E_QUEUE_FULL':
    case 'E_NOT_MEMBER':
      // Refused before it was sent, even when queued (paxos proposing.ts checkNewValue).
      return unavailable();
    case 'E_CHECKSUM_MISMATCH':
    case 'E_STORAGE':
    case 'E_NEEDS_CHECKPOINT':
    case 'E_CHECKPOINT_INSTALLED':
    case 'E_CHECKPOINT_INSTALL_FAILED':
      // The group cannot take values now (stopped on a diverged log or a failed write, waiting
      // for or restarting from a checkpoint). Its queue is rejected whole, in-flight value too.
      return unknownOutcome ? outcomeUnknown() : unavailable();
    case 'E_EXECUTE_FAILED':
      // Only ever for the value in flight once chosen: it is in the log, not yet applied here.
      return new ServerError(
        'E_EXECUTE_FAILED',
        `${detail} (the value was chosen; this node applies it once its state machine works again)`,
      );
    case 'E_BAD_GROUP':
    case 'E_BAD_ARGUMENT':
    case 'E_UNKNOWN_STATE_MACHINE':
    case 'E_MEMBERSHIP_CONFLICT':
    case 'E_ABORTED': // the server passes no AbortSignal
    case 'E_INVARIANT':
      // The server asked wrongly, a peer runs state machines this node does not have, or an
      // invariant of the consensus core broke (the group stopped): bugs, counted as task errors.
      return undefined;
    default: {
      const unmapped: never = code; // a new code must be mapped above
      return unmapped;
    }
  }
}

const QUEUED = Symbol('queued');
const QUEUED_NOW = Promise.resolve(QUEUED);

export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown; queued: boolean };

/**
 * Settles like `pending`, and says whether a rejection was there at once. PaxosNode refuses a
 * value it does not queue with an already-rejected promise, which wins the race below against
 * a resolved one; a rejection that comes later is for a value the group had queued.
 */
export async function settle<T>(pending: Promise<T>): Promise<Settled<T>> {
  let queued = false;
  try {
    const first = await Promise.race([pending, QUEUED_NOW]);
    if (first !== QUEUED) return { ok: true, value: first as T };
    queued = true;
    return { ok: true, value: await pending };
  } catch (error) {
    return { ok: false, error, queued };
  }
}

/** The answer to an error the client or the cluster's state explains; undefined for a bug. */
export function clientError(error: unknown): ServerError | undefined {
  if (error instanceof ServerError) return error.code === 'E_INTERNAL' ? undefined : error;
  // Other routes (compact): nothing was proposed.
  if (error instanceof PaxosError) return fromPaxos(error, { queued: false, write: false });
  // fastify's own 4xx (body too large, bad content length …); anything else is ours.
  const err = error as { statusCode?: number; code?: string; message?: string };
  const status = err.statusCode ?? 500;
  if (status === 413)
    return new ServerError('E_TOO_LARGE', `the body is larger than ${MAX_BODY_BYTES} bytes`);
  if (status === 415)
    return new ServerError('E_UNSUPPORTED_MEDIA_TYPE', err.message ?? 'unsupported media type');
  if (status >= 400 && status < 500)
    return new ServerError('E_BAD_REQUEST', `${err.code ?? 'bad request'}: ${err.message ?? ''}`);
  return undefined;
}
