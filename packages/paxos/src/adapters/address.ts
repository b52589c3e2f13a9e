import type { PeerAddress } from '@tspaxos/transport/tcp';
import { PaxosError } from '../errors';

/** `'host:port'` or `'[v6]:port'` into a PeerAddress; E_BAD_ARGUMENT naming `what` otherwise. */
export function parseAddress(address: string | PeerAddress, what: string): PeerAddress {
  if (typeof address === 'object' && address !== null) {
    if (typeof address.host !== 'string' || !Number.isInteger(address.port))
      throw new PaxosError('E_BAD_ARGUMENT', `${what}: { host, port } expected`);
    return { host: address.host, port: address.port };
  }
  const m =
    typeof address === 'string' ? /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(address) : null;
  const port = m ? Number(m[3]) : NaN;
  if (m === null || port > 65535)
    throw new PaxosError(
      'E_BAD_ARGUMENT',
      `${what}: 'host:port' expected, got ${JSON.stringify(address)}`,
    );
  return { host: m[1] ?? m[2]!, port };
}
