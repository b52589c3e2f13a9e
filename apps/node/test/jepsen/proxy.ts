// A TCP proxy for one directed paxos link (node `from` -> node `to`). The transport dials one
// connection per peer for what it sends and never writes back on it (tcp-network.ts), so all
// traffic from `from` to `to`, and only that, crosses this proxy: cutting it cuts the link one
// way. A cut destroys the open connections and accepts-then-destroys new ones until healed.
// In front of a node's HTTP API, `cutReplies` loses every answer instead: the request reaches the
// node, which acts on it, and the connection is destroyed when the first byte of the reply comes
// back (the client sees a connection cut before the answer: outcome unknown).
import * as net from 'node:net';

export interface LinkCounters {
  /** Bytes forwarded from -> to (the paxos frames), and back (the transport sends none). */
  bytesForwarded: number;
  bytesBack: number;
  connectionsAccepted: number;
  /** Connections destroyed at once because the link was cut. */
  connectionsRefused: number;
  /** Connections destroyed by a cut while open. */
  connectionsCut: number;
  /** The target was down or went away (a killed node): expected under the nemesis. */
  upstreamErrors: number;
  cuts: number;
  /** Replies dropped (and their connections destroyed) while cutReplies was on. */
  repliesCut: number;
}

export class LinkProxy {
  readonly counters: LinkCounters = {
    bytesForwarded: 0,
    bytesBack: 0,
    connectionsAccepted: 0,
    connectionsRefused: 0,
    connectionsCut: 0,
    upstreamErrors: 0,
    cuts: 0,
    repliesCut: 0,
  };
  /** Drops what comes back from the target: see the file's comment. */
  cutReplies = false;
  private server: net.Server | undefined;
  /** Open connections: the node's end and ours to the target. */
  private readonly open = new Set<{ client: net.Socket; upstream: net.Socket }>();
  private isCut = false;
  port = 0;

  constructor(
    readonly from: number,
    readonly to: number,
    private readonly target: { host: string; port: number },
  ) {}

  get cut(): boolean {
    return this.isCut;
  }

  async start(): Promise<number> {
    const server = net.createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.port = (server.address() as net.AddressInfo).port;
    return this.port;
  }

  /** Stops forwarding: every open connection is destroyed, new ones are refused. */
  setCut(cut: boolean): void {
    if (cut && !this.isCut) this.counters.cuts++;
    this.isCut = cut;
    if (!cut) return;
    for (const pair of [...this.open]) {
      this.open.delete(pair);
      this.counters.connectionsCut++;
      pair.client.destroy();
      pair.upstream.destroy();
    }
  }

  async close(): Promise<void> {
    this.setCut(true);
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    this.counters.connectionsAccepted++;
    if (this.isCut) {
      this.counters.connectionsRefused++;
      client.destroy();
      return;
    }
    const upstream = net.connect(this.target);
    // Tracked from the start, so a cut reaches a connection still dialling upstream too.
    const pair = { client, upstream };
    this.open.add(pair);
    const end = () => {
      this.open.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    client.on('close', end);
    upstream.on('error', () => {
      this.counters.upstreamErrors++;
      end();
    });
    upstream.on('close', end);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    this.forward(client, upstream, (n) => (this.counters.bytesForwarded += n));
    this.forward(upstream, client, (n) => (this.counters.bytesBack += n), end);
  }

  /**
   * Copies `from` into `to`, counting bytes, pausing `from` while `to` is full. `endReply`: this
   * is the way back, ended at its first byte while replies are cut.
   */
  private forward(
    from: net.Socket,
    to: net.Socket,
    count: (n: number) => void,
    endReply?: () => void,
  ): void {
    from.on('data', (data: Buffer) => {
      if (this.isCut) return;
      if (endReply !== undefined && this.cutReplies) {
        this.counters.repliesCut++;
        endReply();
        return;
      }
      count(data.length);
      if (!to.write(data)) from.pause();
    });
    to.on('drain', () => from.resume());
  }
}

/** One proxy per ordered pair of distinct nodes. */
export class LinkTable {
  readonly links = new Map<string, LinkProxy>();

  static async start(nodeIds: number[], paxosPortOf: (id: number) => number): Promise<LinkTable> {
    const table = new LinkTable();
    for (const from of nodeIds) {
      for (const to of nodeIds) {
        if (from === to) continue;
        const link = new LinkProxy(from, to, { host: '127.0.0.1', port: paxosPortOf(to) });
        await link.start();
        table.links.set(`${from}->${to}`, link);
      }
    }
    return table;
  }

  get(from: number, to: number): LinkProxy {
    const link = this.links.get(`${from}->${to}`);
    if (link === undefined) throw new Error(`no link ${from}->${to}`);
    return link;
  }

  /** Heals every link. */
  healAll(): void {
    for (const link of this.links.values()) link.setCut(false);
  }

  async close(): Promise<void> {
    await Promise.all([...this.links.values()].map((l) => l.close()));
  }
}
