// `tspaxos node --join URL`: a node that knows one member's HTTP API asks it for the membership
// (every node's addresses and role), starts with the voters as its peers, and, when it is not in
// the membership yet, asks that member to add it (as a follower unless --join-as voter) with the
// addresses it actually bound (port 0 allowed).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger as PinoLogger } from 'pino';
import { formatAddress, parseAddress } from './args';
import type { MemberRole } from './members';
import type { MembersView } from './membership';
import { JOIN_REQUEST_TIMEOUT_MS, JOIN_TIMEOUT_MS } from './options';
import type { PeerAddress } from './stack';

/** A join that cannot go on (one line for the operator; the process exits 1). */
export class JoinError extends Error {
  override readonly name = 'JoinError';
}

export interface JoinOptions {
  url: string;
  as: MemberRole;
}

async function askMembers(url: string): Promise<MembersView> {
  const res = await fetch(`${url}/admin/members`, {
    signal: AbortSignal.timeout(JOIN_REQUEST_TIMEOUT_MS),
  });
  const body = (await res.json()) as MembersView & { error?: { code: string; message: string } };
  if (!res.ok)
    throw new JoinError(
      `${url}/admin/members answered ${res.status} ${body.error?.code ?? ''}: ${body.error?.message ?? ''}`,
    );
  return body;
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
          : new JoinError(`${what}: ${(error as Error).message}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * The membership as the member at `url` knows it, turned into this node's flags: the voters'
 * paxos and HTTP addresses. A node whose data directory already holds a log starts from that when
 * the member cannot be reached (it may have been removed since); a new node cannot.
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
    view = await untilAnswered(`asking ${join.url} for the membership`, () => askMembers(join.url));
  } catch (error) {
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
    const res = await fetch(`${join.url}/admin/members`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
      signal: AbortSignal.timeout(JOIN_REQUEST_TIMEOUT_MS),
    });
    const answer = (await res.json()) as { error?: { code: string; message: string } };
    if (res.ok) return;
    // 503: the member cannot propose now (stopping, not a member any more): try again. 504: it
    // may have been added: the next try says E_MEMBER_EXISTS if so.
    if (res.status === 503 || res.status === 504)
      throw new Error(`${res.status} ${answer.error?.code}`);
    if (answer.error?.code === 'E_MEMBER_EXISTS') return;
    throw new JoinError(
      `${join.url} refused to add node ${self.nodeId}: ${res.status} ${answer.error?.code}: ${answer.error?.message}`,
    );
  });
  log.info({ group: null, join: join.url, role: join.as, peer, http: self.http }, 'joined');
}
