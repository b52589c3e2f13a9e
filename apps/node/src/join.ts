// `tspaxos node --join URL`: a node that knows one member's HTTP API asks it for the membership
// (every node's addresses and role), starts with the voters as its peers, and, when it is not in
// the membership yet, asks that member to add it (as a follower unless --join-as voter) with the
// addresses it actually bound (port 0 allowed). Both requests go through the CLI client
// (client/http.ts), so a join reaches a secured member as `tspaxos members` does: a bearer token
// (both routes need admin), a CA for https://, a client certificate for a member with --client-ca.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger as PinoLogger } from 'pino';
import { formatAddress, parseAddress } from './args';
import {
  Client,
  ClientError,
  type ClientOptions,
  type ClientResponse,
  errorOf,
} from './client/http';
import type { MemberRole } from './members';
import type { MembersView } from './membership';
import { JOIN_REQUEST_TIMEOUT_MS, JOIN_TIMEOUT_MS } from './options';
import type { PeerAddress } from './stack';

/** A join that cannot go on (one line for the operator; the process exits 1). */
export class JoinError extends Error {
  override readonly name = 'JoinError';
  constructor(
    message: string,
    /** The member never answered (a node with a log may start from it); not a refusal. */
    readonly unanswered = false,
  ) {
    super(message);
  }
}

export interface JoinOptions {
  url: string;
  as: MemberRole;
  /** How to reach the member (--join-token[-file], --join-ca, --join-cert, --join-key). */
  client?: JoinClientOptions;
}

export type JoinClientOptions = Pick<ClientOptions, 'token' | 'cacert' | 'cert' | 'key'>;

/** What the operator can do about a refusal of the member's (401 and 403 name the flags). */
function refused(url: string, what: string, res: ClientResponse): JoinError {
  const hint =
    res.status === 401 || res.status === 403
      ? ' (a join needs an admin token: --join-token-file or --join-token)'
      : '';
  return new JoinError(`${url} refused ${what}: ${res.status} ${errorOf(res).message}${hint}`);
}

/**
 * One request to the member. A member that does not answer (refused, reset, timed out) is an
 * Error the caller retries; anything else that stops the request (a certificate the CA did not
 * sign, a file that cannot be read) is a JoinError: retrying would not help.
 */
async function send(join: JoinOptions, method: string, body?: string): Promise<ClientResponse> {
  try {
    const client = new Client({
      ...join.client,
      endpoints: [join.url],
      timeoutMs: JOIN_REQUEST_TIMEOUT_MS,
    });
    return await client.request(
      method,
      '/admin/members',
      body === undefined ? undefined : Buffer.from(body),
      body === undefined ? {} : { 'content-type': 'application/json' },
    );
  } catch (error) {
    if (!(error instanceof ClientError)) throw error;
    if (error.code === 'E_UNREACHABLE') throw new Error(error.message);
    // A certificate the CA did not sign (or none asked for): name the flag that fixes it.
    const hint = /certificate|self[- ]signed|issuer/i.test(error.message)
      ? ' (--join-ca: the CA that signed its certificate; --join-cert/--join-key if it asks for one)'
      : '';
    throw new JoinError(`--join: ${error.message}${hint}`);
  }
}

async function askMembers(join: JoinOptions): Promise<MembersView> {
  const res = await send(join, 'GET');
  if (res.status !== 200) throw refused(join.url, 'GET /admin/members', res);
  try {
    return JSON.parse(res.body.toString('utf8')) as MembersView;
  } catch {
    throw new JoinError(`${join.url}/admin/members answered 200 without a membership`);
  }
}

/** Retries what fails for lack of the member (down, restarting) until JOIN_TIMEOUT_MS. */
async function untilAnswered<T>(what: string, attempt: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + JOIN_TIMEOUT_MS;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (error instanceof JoinError || Date.now() > deadline)
        throw error instanceof JoinError
          ? error
          : new JoinError(`${what}: ${(error as Error).message}`, true);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * The membership as the member at `url` knows it, turned into this node's flags: the voters'
 * paxos and HTTP addresses. A node whose data directory already holds a log starts from that when
 * the member cannot be reached (it may have been removed since); a new node cannot. A member
 * that refuses (401, 403, a certificate) stops the join either way.
 */
export async function resolveJoin(
  config: { nodeId: number; dataDir: string; listen: PeerAddress },
  join: JoinOptions,
  log: PinoLogger,
): Promise<{
  flags: { cluster: Map<number, PeerAddress>; httpPeers: Map<number, string>; joinedFrom: string };
  view: MembersView | undefined;
}> {
  let view: MembersView | undefined;
  try {
    view = await untilAnswered(`asking ${join.url} for the membership`, () => askMembers(join));
  } catch (error) {
    // A refusal (a token, a certificate) is the operator's to fix, data directory or not.
    if (!(error instanceof JoinError && error.unanswered)) throw error;
    if (!fs.existsSync(path.join(config.dataDir, 'log'))) throw error;
    log.warn(
      { group: null, join: join.url, err: error },
      'join-unanswered: starting from the membership in the data directory',
    );
  }
  // An id listed elsewhere is refused before anything starts when the port is known already
  // (port 0: once it is bound, in register()).
  const listed = view?.nodes.find((n) => n.nodeId === config.nodeId);
  if (
    listed !== undefined &&
    config.listen.port !== 0 &&
    listed.peer !== formatAddress(config.listen)
  )
    throw new JoinError(
      `node ${config.nodeId} is listed at ${listed.peer}, not at ${formatAddress(config.listen)}: use another --id, or remove node ${config.nodeId} first`,
    );
  const cluster = new Map<number, PeerAddress>();
  const httpPeers = new Map<number, string>();
  for (const n of view?.nodes ?? []) {
    if (n.nodeId === config.nodeId) continue;
    if (n.http !== null) httpPeers.set(n.nodeId, n.http);
    if (n.role === 'voter') cluster.set(n.nodeId, parseAddress(`node ${n.nodeId} peer`, n.peer));
  }
  // The paxos node wants itself among the initial voters unless it follows one; that initial
  // list only stands until the first exchange with a peer brings the real (newer) membership.
  cluster.set(config.nodeId, config.listen);
  return { flags: { cluster, httpPeers, joinedFrom: join.url }, view };
}

/** Asks the member to add this node with the addresses it bound, unless it is listed already. */
export async function register(
  join: JoinOptions,
  self: { nodeId: number; peer: PeerAddress; http: string },
  view: MembersView | undefined,
  log: PinoLogger,
): Promise<void> {
  const listed = view?.nodes.find((n) => n.nodeId === self.nodeId);
  const peer = formatAddress(self.peer);
  if (listed !== undefined) {
    // Another node with this id, or this one moved: either way two addresses for one id.
    if (listed.peer !== peer || listed.http !== self.http)
      throw new JoinError(
        `node ${self.nodeId} is listed at ${listed.peer} (${listed.http ?? 'no HTTP'}), not at ${peer} (${self.http}): use another --id, or remove node ${self.nodeId} first`,
      );
    return;
  }
  if (view === undefined) return; // started from the data directory: it was added before
  const body = JSON.stringify({
    action: 'add',
    nodeId: self.nodeId,
    role: join.as,
    peer,
    http: self.http,
  });
  await untilAnswered(`asking ${join.url} to add node ${self.nodeId}`, async () => {
    const res = await send(join, 'POST', body);
    if (res.status >= 200 && res.status < 300) return;
    const code = errorOf(res).code;
    // 503: the member cannot propose now (stopping, not a member any more): try again. 504: it
    // may have been added: the next try says E_MEMBER_EXISTS if so.
    if (res.status === 503 || res.status === 504) throw new Error(`${res.status} ${code}`);
    if (code === 'E_MEMBER_EXISTS') return;
    throw refused(join.url, `to add node ${self.nodeId}`, res);
  });
  log.info({ group: null, join: join.url, role: join.as, peer, http: self.http }, 'joined');
}
