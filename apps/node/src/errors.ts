// Errors of the reference server: values with a stable code, each mapped to one HTTP status.

export type ServerErrorCode =
  | 'E_BAD_KEY'
  | 'E_BAD_QUERY'
  | 'E_BAD_REQUEST'
  | 'E_UNAUTHORIZED'
  | 'E_FORBIDDEN'
  | 'E_TOO_LARGE'
  | 'E_NOT_FOUND'
  | 'E_METHOD_NOT_ALLOWED'
  | 'E_UNSUPPORTED_MEDIA_TYPE'
  | 'E_FOLLOWER'
  | 'E_NOT_MASTER'
  | 'E_CHECKPOINT_LOCKED'
  | 'E_STOPPING'
  | 'E_UNAVAILABLE'
  | 'E_NO_QUORUM'
  | 'E_NOT_READY'
  | 'E_TIMEOUT'
  | 'E_OUTCOME_UNKNOWN'
  | 'E_EXECUTE_FAILED'
  | 'E_BAD_CHECKPOINT'
  | 'E_BAD_HEADER'
  | 'E_PRECONDITION'
  | 'E_IDEMPOTENCY_KEY_REUSED'
  | 'E_BAD_STATE'
  | 'E_BAD_NODE_ID'
  | 'E_BAD_ADDRESS'
  | 'E_MEMBER_EXISTS'
  | 'E_UNKNOWN_MEMBER'
  | 'E_NOT_FOLLOWER'
  | 'E_LAST_VOTER'
  | 'E_MEMBERSHIP_CONFLICT'
  | 'E_INTERNAL';

const STATUS: Record<ServerErrorCode, number> = {
  E_BAD_KEY: 400,
  E_BAD_QUERY: 400,
  E_BAD_REQUEST: 400,
  // No token, a malformed one or an unknown one (with WWW-Authenticate); a token whose role is
  // too low, or a CORS preflight from an origin not configured.
  E_UNAUTHORIZED: 401,
  E_FORBIDDEN: 403,
  E_TOO_LARGE: 413,
  E_NOT_FOUND: 404,
  E_METHOD_NOT_ALLOWED: 405,
  E_UNSUPPORTED_MEDIA_TYPE: 415,
  E_FOLLOWER: 409,
  E_NOT_MASTER: 409,
  E_CHECKPOINT_LOCKED: 409,
  E_STOPPING: 503,
  E_UNAVAILABLE: 503,
  // A majority of the members is known unreachable from the node: nothing was proposed.
  E_NO_QUORUM: 503,
  // GET /readyz: the reasons are in the body's `reasons`.
  E_NOT_READY: 503,
  // 504: the write may or may not be applied (it may have left the node); 503: it was not.
  E_TIMEOUT: 504,
  E_OUTCOME_UNKNOWN: 504,
  // Chosen, but this node's state machine failed to apply it (it retries): a broken disk.
  E_EXECUTE_FAILED: 500,
  E_BAD_CHECKPOINT: 500,
  E_BAD_HEADER: 400,
  // If-Match / If-None-Match did not hold (RFC 9110 §13.1); the body has the current version.
  E_PRECONDITION: 412,
  // The IETF Idempotency-Key draft: the key was first used with another request.
  E_IDEMPOTENCY_KEY_REUSED: 422,
  // A KV file holds a record this server never writes (a broken disk or a foreign file).
  E_BAD_STATE: 500,
  // POST /admin/members: what is wrong with the request, or (409) other changes kept winning.
  E_BAD_NODE_ID: 400,
  E_BAD_ADDRESS: 400,
  E_MEMBER_EXISTS: 400,
  E_UNKNOWN_MEMBER: 400,
  E_NOT_FOLLOWER: 400,
  E_LAST_VOTER: 400,
  E_MEMBERSHIP_CONFLICT: 409,
  E_INTERNAL: 500,
};

export class ServerError extends Error {
  override readonly name = 'ServerError';
  constructor(
    readonly code: ServerErrorCode,
    message: string,
    /** More fields of the error body (E_NOT_MASTER: `master`, the master's HTTP API). */
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }

  get httpStatus(): number {
    return STATUS[this.code];
  }
}
