// Parsers for the command-line values of design.md §6. Each throws ArgumentError with a one-line
// message; the CLI turns it into `error: …` and exit code 2.
import type { PeerAddress } from './stack';

export class ArgumentError extends Error {
  override readonly name = 'ArgumentError';
  readonly code = 'E_BAD_ARGUMENT';
}

/** A positive integer within [min, max]. */
export function parseIntIn(name: string, text: string, min: number, max: number): number {
  if (!/^\d+$/.test(text)) throw new ArgumentError(`${name} must be an integer, got '${text}'`);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new ArgumentError(`${name} must be ${min} … ${max}, got ${text}`);
  return n;
}

/** `host:port` (port 0 allowed: the OS picks one). IPv6 hosts go in brackets: `[::1]:7101`. */
export function parseAddress(name: string, text: string): PeerAddress {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text);
  if (m === null) throw new ArgumentError(`${name} must be host:port, got '${text}'`);
  const port = Number(m[2]);
  if (port > 65535) throw new ArgumentError(`${name}: port ${port} is above 65535`);
  const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
  return { host, port };
}

/** `1=h:p,2=h:p,…`: node ids are positive safe integers, each given once. */
export function parseIdMap<T>(
  name: string,
  text: string,
  parseValue: (name: string, text: string) => T,
): Map<number, T> {
  const out = new Map<number, T>();
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new ArgumentError(`${name} must be id=host:port,…, got '${part}'`);
    const id = parseIntIn(`${name} node id`, part.slice(0, eq), 1, Number.MAX_SAFE_INTEGER);
    if (out.has(id)) throw new ArgumentError(`${name} names node ${id} twice`);
    out.set(id, parseValue(`${name} node ${id}`, part.slice(eq + 1)));
  }
  return out;
}

export function parseCluster(text: string): Map<number, PeerAddress> {
  return parseIdMap('--cluster', text, parseAddress);
}

/** `1=http://h:p,…` or `1=h:p,…`: where each member's HTTP API is (for /status members and the dashboard). */
export function parseHttpPeers(text: string): Map<number, string> {
  return parseIdMap('--http-peers', text, (name, value) => {
    const url =
      value.startsWith('http://') || value.startsWith('https://') ? value : `http://${value}`;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ArgumentError(`${name} must be a URL or host:port, got '${value}'`);
    }
    return parsed.origin;
  });
}

/** `--join`: a member's HTTP API, `http(s)://host:port` or `host:port`; its origin. */
export function parseJoinUrl(text: string): string {
  const url = /^https?:\/\//.test(text) ? text : `http://${text}`;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ArgumentError(`--join must be a member's HTTP URL or host:port, got '${text}'`);
  }
  if (parsed.pathname !== '/' || parsed.search !== '')
    throw new ArgumentError(`--join takes the member's origin only (no path), got '${text}'`);
  return parsed.origin;
}

export function formatAddress(a: PeerAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
