// The link proxy on its own: it forwards and counts, a cut closes what is open and refuses what
// comes next, a heal lets new connections through again.
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers';
import { LinkProxy } from './proxy';

describe('LinkProxy', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0)) await c();
  });

  /** A target that records what it receives. */
  async function target(): Promise<{ port: number; received: () => string }> {
    let received = '';
    const sockets = new Set<net.Socket>();
    const server = net.createServer((s) => {
      sockets.add(s);
      s.on('data', (d: Buffer) => (received += d.toString()));
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    cleanup.push(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    });
    return { port: (server.address() as net.AddressInfo).port, received: () => received };
  }

  async function dial(port: number): Promise<{ socket: net.Socket; closed: Promise<void> }> {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.on('error', () => {}); // a cut may reset it: the test looks at 'close'
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    await new Promise<void>((r) => socket.once('connect', () => r()));
    return { socket, closed };
  }

  it('forwards and counts, cuts open and new connections, heals', async () => {
    const t = await target();
    const link = new LinkProxy(1, 2, { host: '127.0.0.1', port: t.port });
    await link.start();
    cleanup.push(() => link.close());

    const first = await dial(link.port);
    first.socket.write('hello');
    await waitFor('hello forwarded', () => t.received() === 'hello', 10_000, 10);
    expect(link.counters.bytesForwarded).toBe(5);
    expect(link.counters.bytesBack).toBe(0);

    link.setCut(true);
    await first.closed;
    expect(link.counters).toMatchObject({ cuts: 1, connectionsCut: 1 });
    const refused = await dial(link.port);
    await refused.closed;
    expect(link.counters.connectionsRefused).toBe(1);

    link.setCut(false);
    const second = await dial(link.port);
    second.socket.write(' again');
    await waitFor('again forwarded', () => t.received() === 'hello again', 10_000, 10);
    expect(link.counters).toMatchObject({ bytesForwarded: 11, connectionsAccepted: 3, cuts: 1 });
    second.socket.destroy();
  });

  it('a target that is down closes the connection and is counted', async () => {
    const t = await target();
    await cleanup.pop()!(); // stop it: its port refuses now
    const link = new LinkProxy(1, 2, { host: '127.0.0.1', port: t.port });
    await link.start();
    cleanup.push(() => link.close());
    const c = await dial(link.port);
    await c.closed;
    expect(link.counters.upstreamErrors).toBe(1);
  });
});
