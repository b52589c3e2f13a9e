// The clients of a fault run: each sends one request at a time to a random node (keep-alive
// http.Agent per node) and records its invocation and completion in the shared history, with an
// outcome read off the answer as the README's HTTP API defines it.
import * as http from 'node:http';
import type { RandomSource } from '@tspaxos/core';
import type { Op, Outcome, ReadMode } from './history';

/** A client waits this long for an answer (ours: above the server's 10 s propose timeout, so its 504 comes first). */
export const CLIENT_TIMEOUT_MS = 12_000;

/** A client's pause after a refused connection (ours: the node is down for a second or more). */
const REFUSED_PAUSE_MS = 100;

/** Consistent reads of a key right after a write to it was answered 503 (ours: a few, as it may be chosen a moment later). */
const FOLLOW_UP_READS = 3;

export interface Answer {
  status: number;
  body: string;
  /** x-tspaxos-instance-id: the instance the answer reflects (README, HTTP API). */
  instanceId: number | undefined;
}

/** What a socket error tells: refused before anything was sent, or a request that may have run. */
export class RequestError extends Error {
  constructor(
    readonly code: string,
    readonly definite: boolean,
  ) {
    super(code);
  }
}

/** One keep-alive agent per node; requests with a deadline. */
export class HttpClient {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  constructor(readonly baseUrl: string) {}

  request(method: string, path: string, body?: string): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        `${this.baseUrl}${path}`,
        {
          method,
          agent: this.agent,
          headers: body === undefined ? {} : { 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const header = res.headers['x-tspaxos-instance-id'];
            resolve({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks).toString(),
              instanceId: typeof header === 'string' ? Number(header) : undefined,
            });
          });
          res.on('error', (e: NodeJS.ErrnoException) =>
            reject(new RequestError(e.code ?? e.message, false)),
          );
        },
      );
      req.setTimeout(CLIENT_TIMEOUT_MS, () =>
        req.destroy(new RequestError('E_CLIENT_TIMEOUT', false)),
      );
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e instanceof RequestError) return reject(e);
        // Refused: no connection, so the request was never sent. Anything else (a reset, a
        // hang-up) may come after the server took the request.
        reject(new RequestError(e.code ?? e.message, e.code === 'ECONNREFUSED'));
      });
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** The error code of an error body, or the status alone. */
function detailOf(answer: Answer): string {
  try {
    const parsed = JSON.parse(answer.body) as { error?: { code?: string } };
    return `${answer.status} ${parsed.error?.code ?? ''}`.trim();
  } catch {
    return String(answer.status);
  }
}

/**
 * A write's outcome: 200 ok; 4xx and 503 a definite "not applied" (README: 503 = stopping, queue
 * full, group stopped); 504 and anything else outcome-unknown. 5xx other than 503/504 is
 * unexpected (a server bug) and reported as such.
 */
export function writeOutcome(status: number): Outcome {
  if (status === 200) return 'ok';
  if ((status >= 400 && status < 500) || status === 503) return 'fail';
  return 'unknown';
}

/** A read's: 200/404 ok (a value or nil); 409 (not the master, a follower) and 503 fail; else unknown. */
export function readOutcome(status: number): Outcome {
  if (status === 200 || status === 404) return 'ok';
  if ((status >= 400 && status < 500) || status === 503) return 'fail';
  return 'unknown';
}

export interface Workload {
  keys: string[];
  /** Node ids and their clients. */
  nodes: Map<number, HttpClient>;
  history: Op[];
  /** Answers no outcome rule expects (500s …): each a server bug. */
  unexpected: string[];
  /** Milliseconds since the run began (the history's clock). */
  now(): number;
}

let opIds = 0;

/** Runs one operation and records it. */
export async function runOp(
  w: Workload,
  client: number,
  node: number,
  key: string,
  kind: 'write' | 'read',
  mode: ReadMode | undefined,
  value: string | null,
  final = false,
): Promise<Op> {
  const op: Op = { id: opIds++, client, node, key, kind, value, invokeMs: w.now() };
  if (mode !== undefined) op.mode = mode;
  if (final) op.final = true;
  w.history.push(op);
  const http = w.nodes.get(node)!;
  const path = `/kv/${encodeURIComponent(key)}`;
  try {
    const answer =
      kind === 'write'
        ? await http.request('PUT', path, value!)
        : await http.request(
            'GET',
            mode === 'plain'
              ? path
              : `${path}?consistent=${mode === 'consistent' ? 'true' : 'lease'}`,
          );
    op.completeMs = w.now();
    op.outcome = kind === 'write' ? writeOutcome(answer.status) : readOutcome(answer.status);
    if (answer.status !== 200) op.detail = detailOf(answer);
    if (op.outcome === 'ok' && answer.instanceId !== undefined) op.instanceId = answer.instanceId;
    if (kind === 'read') op.value = answer.status === 200 ? answer.body : null;
    if (answer.status >= 500 && answer.status !== 503 && answer.status !== 504)
      w.unexpected.push(`${kind} ${key} on node ${node}: ${answer.status} ${answer.body}`);
  } catch (error) {
    if (!(error instanceof RequestError)) throw error;
    op.completeMs = w.now();
    op.outcome = error.definite ? 'fail' : 'unknown';
    op.detail = error.code;
    if (kind === 'read') op.value = null;
  }
  return op;
}

export interface ClientMix {
  /** Shares of writes, consistent, lease and plain reads (they add up to 1). */
  write: number;
  consistent: number;
  lease: number;
  plain: number;
}

/** Barriers are a third of the ops: a lone barrier's bytes are all alike (issue 17 finding 1). */
export const DEFAULT_MIX: ClientMix = { write: 0.35, consistent: 0.3, lease: 0.15, plain: 0.2 };

/** One client: random ops on random keys through random nodes until `stop()` says so. */
export async function runClient(
  w: Workload,
  client: number,
  rng: RandomSource,
  stop: () => boolean,
  mix: ClientMix = DEFAULT_MIX,
): Promise<void> {
  const nodeIds = [...w.nodes.keys()];
  /** Consistent reads owed to a key whose write was answered 503 (through other nodes). */
  const followUps: { key: string; notNode: number }[] = [];
  for (let seq = 0; !stop(); seq++) {
    let key = w.keys[rng.int(w.keys.length)]!;
    let node = nodeIds[rng.int(nodeIds.length)]!;
    const x = rng.next();
    let op: Op;
    const followUp = followUps.shift();
    if (followUp !== undefined) {
      // A 503 must mean "not applied" (issue 17 finding 8): read the key back at once, before
      // another write hides the value if it was applied after all.
      key = followUp.key;
      const others = nodeIds.filter((id) => id !== followUp.notNode);
      node = others[rng.int(others.length)]!;
      op = await runOp(w, client, node, key, 'read', 'consistent', null);
    } else if (x < mix.write)
      op = await runOp(w, client, node, key, 'write', undefined, `c${client}-${seq}`);
    else if (x < mix.write + mix.consistent)
      op = await runOp(w, client, node, key, 'read', 'consistent', null);
    else if (x < mix.write + mix.consistent + mix.lease)
      op = await runOp(w, client, node, key, 'read', 'lease', null);
    else op = await runOp(w, client, node, key, 'read', 'plain', null);
    if (op.kind === 'write' && op.detail?.startsWith('503') === true) {
      for (let i = 0; i < FOLLOW_UP_READS; i++) followUps.push({ key, notNode: node });
    }
    // A node that is down refuses at once: do not spin on it.
    if (op.detail === 'ECONNREFUSED') await new Promise((r) => setTimeout(r, REFUSED_PAUSE_MS));
  }
}
