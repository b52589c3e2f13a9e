// The server's membership: which nodes exist, where their paxos and HTTP ports are, and which of
// them vote. The addresses ride in the paxos membership itself (the system variables' `meta`,
// changed by the same value as the voting set), so every node learns them through the log, a
// checkpoint or a peer's SendNowInstanceID, and a joining node needs one member's address only.
// A node's role is not stored: a node is a voter exactly when the group's members name it.
import { ArgumentError, formatAddress, parseAddress } from './args';
import { ServerError } from './errors';
import type { PeerAddress } from './stack';

export type MemberRole = 'voter' | 'follower';

/** Where one node listens: its paxos address (`host:port`) and HTTP API (an origin, or null). */
export interface NodeAddresses {
  peer: string;
  http: string | null;
}

/** A node of the membership as the API shows it. */
export interface MemberEntry extends NodeAddresses {
  nodeId: number;
  role: MemberRole;
}

/** The membership of one group: its voting members and every node's addresses. */
export interface Membership {
  members: number[];
  nodes: Map<number, NodeAddresses>;
}

export type MemberRequest =
  | { action: 'add'; nodeId: number; role: MemberRole; addresses: NodeAddresses }
  | { action: 'promote'; nodeId: number }
  | { action: 'remove'; nodeId: number };

/** Version of the meta's JSON shape (a node refuses a shape it does not know). */
const META_FORMAT = 1;

/**
 * The meta of a membership value: every node's addresses and, when given, `source`: the group-0
 * version this membership is (group 0's own version after the change, or the version a copy into
 * another group was taken from). Older servers wrote no source; a reader ignores fields it does
 * not know, so the format stays 1.
 */
export function encodeMeta(nodes: Map<number, NodeAddresses>, source?: number): string {
  const out: Record<string, NodeAddresses> = {};
  for (const id of [...nodes.keys()].sort((a, b) => a - b)) out[String(id)] = nodes.get(id)!;
  return JSON.stringify(
    source === undefined
      ? { format: META_FORMAT, nodes: out }
      : { format: META_FORMAT, nodes: out, source },
  );
}

type MetaFields = { nodes?: unknown; source?: unknown } | undefined;

/** A meta's fields when it is JSON of META_FORMAT; undefined otherwise (none, or not ours). */
function parseMeta(meta: string | undefined): MetaFields {
  if (meta === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(meta);
  } catch {
    return undefined;
  }
  const fields = (v ?? {}) as { format?: unknown; nodes?: unknown; source?: unknown };
  return fields.format === META_FORMAT ? fields : undefined;
}

/** The group-0 version a group's meta says its membership is (encodeMeta); undefined: none. */
export function sourceOfMeta(meta: string | undefined): number | undefined {
  return sourceOf(parseMeta(meta));
}

function sourceOf(fields: MetaFields): number | undefined {
  const source = fields?.source;
  return Number.isSafeInteger(source) && (source as number) >= 0 ? (source as number) : undefined;
}

/** The addresses in a group's meta; undefined when it has none (no change made by a server yet). */
export function decodeMeta(meta: string | undefined): Map<number, NodeAddresses> | undefined {
  return nodesOf(parseMeta(meta));
}

function nodesOf(fields: MetaFields): Map<number, NodeAddresses> | undefined {
  const nodes = fields?.nodes;
  if (typeof nodes !== 'object' || nodes === null) return undefined;
  const out = new Map<number, NodeAddresses>();
  for (const [key, entry] of Object.entries(nodes)) {
    const id = Number(key);
    const { peer, http } = (entry ?? {}) as { peer?: unknown; http?: unknown };
    if (!Number.isSafeInteger(id) || id <= 0 || typeof peer !== 'string') return undefined;
    if (http !== null && typeof http !== 'string') return undefined;
    out.set(id, { peer, http });
  }
  return out;
}

/**
 * A group's membership from its system variables: the addresses in its meta, or, before any
 * server-made change, those of the flags (`--cluster`, `--http-peers`) for its members; and the
 * group-0 version it is (`source`, sourceOfMeta).
 */
export function membershipOf(
  vars: { members: readonly number[]; meta?: string },
  fallback: (nodeId: number) => NodeAddresses | undefined,
): Membership & { source: number | undefined } {
  const fields = parseMeta(vars.meta); // parsed once for both
  const nodes = nodesOf(fields) ?? new Map<number, NodeAddresses>();
  for (const id of vars.members) {
    if (nodes.has(id)) continue;
    const known = fallback(id);
    if (known !== undefined) nodes.set(id, known);
  }
  return { members: [...vars.members].sort((a, b) => a - b), nodes, source: sourceOf(fields) };
}

export function entries(m: Membership): MemberEntry[] {
  const ids = new Set([...m.nodes.keys(), ...m.members]);
  return [...ids]
    .sort((a, b) => a - b)
    .map((nodeId) => ({
      nodeId,
      role: m.members.includes(nodeId) ? 'voter' : 'follower',
      peer: m.nodes.get(nodeId)?.peer ?? '',
      http: m.nodes.get(nodeId)?.http ?? null,
    }));
}

function sameMembership(a: Membership, b: Membership): boolean {
  return a.members.join(',') === b.members.join(',') && encodeMeta(a.nodes) === encodeMeta(b.nodes);
}

/** True when group `g`'s membership already is `target` (nothing to propose there). */
export function isMembership(current: Membership, target: Membership): boolean {
  return sameMembership(current, target);
}

/** The membership a request asks for, or a 400 with a code saying what is wrong with it. */
export function planChange(current: Membership, req: MemberRequest): Membership {
  const known = current.nodes.has(req.nodeId) || current.members.includes(req.nodeId);
  const members = [...current.members];
  const nodes = new Map(current.nodes);
  switch (req.action) {
    case 'add':
      if (known)
        throw new ServerError(
          'E_MEMBER_EXISTS',
          `node ${req.nodeId} is already a ${members.includes(req.nodeId) ? 'voter' : 'follower'}; remove it first to change its addresses`,
        );
      nodes.set(req.nodeId, req.addresses);
      if (req.role === 'voter') members.push(req.nodeId);
      break;
    case 'promote':
      if (!known)
        throw new ServerError('E_UNKNOWN_MEMBER', `no node ${req.nodeId} in the membership`);
      if (members.includes(req.nodeId))
        throw new ServerError('E_NOT_FOLLOWER', `node ${req.nodeId} is already a voter`);
      members.push(req.nodeId);
      break;
    case 'remove': {
      if (!known)
        throw new ServerError('E_UNKNOWN_MEMBER', `no node ${req.nodeId} in the membership`);
      const left = members.filter((id) => id !== req.nodeId);
      if (left.length === 0)
        throw new ServerError(
          'E_LAST_VOTER',
          `node ${req.nodeId} is the last voter: add and promote another one first`,
        );
      nodes.delete(req.nodeId);
      return { members: left, nodes };
    }
  }
  return { members: members.sort((a, b) => a - b), nodes };
}

const REQUEST_FIELDS: Record<MemberRequest['action'], string[]> = {
  add: ['action', 'nodeId', 'role', 'peer', 'http'],
  promote: ['action', 'nodeId'],
  remove: ['action', 'nodeId'],
};

/** An HTTP origin from `http(s)://host:port` or `host:port` (port 1 … 65535). */
export function parseHttpAddress(name: string, text: string): string {
  const url = /^https?:\/\//.test(text) ? text : `http://${text}`;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ArgumentError(`${name} must be a URL or host:port, got '${text}'`);
  }
  if (parsed.port === '' || parsed.port === '0' || parsed.pathname !== '/' || parsed.search !== '')
    throw new ArgumentError(`${name} must be host:port with a port 1 … 65535, got '${text}'`);
  return parsed.origin;
}

/** A peer address as the membership keeps it; port 0 is refused (nobody can dial it). */
export function parsePeerAddress(name: string, text: string): PeerAddress {
  const a = parseAddress(name, text);
  if (a.port === 0) throw new ArgumentError(`${name} needs a port 1 … 65535, got '${text}'`);
  return a;
}

/** Parses a POST /admin/members body; every fault is a 400 with its own code. */
export function parseMemberRequest(body: unknown): MemberRequest {
  if (!Buffer.isBuffer(body) || body.length === 0)
    throw new ServerError('E_BAD_REQUEST', 'the body must be a JSON object: {"action": …}');
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new ServerError('E_BAD_REQUEST', `the body is not JSON: ${(error as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new ServerError('E_BAD_REQUEST', 'the body must be a JSON object');
  const o = v as Record<string, unknown>;
  const action = o['action'];
  if (action !== 'add' && action !== 'promote' && action !== 'remove')
    throw new ServerError(
      'E_BAD_REQUEST',
      `action must be "add", "promote" or "remove", got ${JSON.stringify(action)}`,
    );
  for (const key of Object.keys(o))
    if (!REQUEST_FIELDS[action].includes(key))
      throw new ServerError('E_BAD_REQUEST', `unknown field '${key}' for "${action}"`);
  const nodeId = o['nodeId'];
  if (typeof nodeId !== 'number' || !Number.isSafeInteger(nodeId) || nodeId <= 0)
    throw new ServerError(
      'E_BAD_NODE_ID',
      `nodeId must be a positive integer, got ${JSON.stringify(nodeId)}`,
    );
  if (action !== 'add') return { action, nodeId };
  const role = o['role'] ?? 'follower';
  if (role !== 'voter' && role !== 'follower')
    throw new ServerError(
      'E_BAD_REQUEST',
      `role must be "voter" or "follower", got ${JSON.stringify(role)}`,
    );
  const { peer, http } = o;
  if (typeof peer !== 'string')
    throw new ServerError('E_BAD_ADDRESS', 'peer (the paxos address, host:port) is required');
  if (typeof http !== 'string')
    throw new ServerError('E_BAD_ADDRESS', 'http (the HTTP API, host:port or URL) is required');
  try {
    return {
      action,
      nodeId,
      role,
      addresses: {
        peer: formatAddress(parsePeerAddress('peer', peer)),
        http: parseHttpAddress('http', http),
      },
    };
  } catch (error) {
    if (error instanceof ArgumentError) throw new ServerError('E_BAD_ADDRESS', error.message);
    throw error;
  }
}
