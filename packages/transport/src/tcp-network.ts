// TcpNetwork: the Network port over node:net (or node:tls with mutual authentication). As in
// PhxPaxos, each node dials one outbound connection per peer for what it sends and accepts
// inbound connections for what it receives. Every connection opens with a hello frame (cluster
// id, node id, listen address): frames on a connection without a good hello never reach the node,
// and a follower that is not in the peer list is reachable through the address it announced.
// One idea, kept in one file though it passes 600 lines (issue 21): the connections' life (dial,
// accept, hello, queue, close) is one mechanism, read top to bottom; the option checks and the
// outbound queue serve only it; the frame format and its reader are codec.ts, frame-reader.ts.
import * as net from 'node:net';
import * as tls from 'node:tls';
import { rangeProblem } from '@tspaxos/crc-wasm';
import { concatChunks, decodeFrame, decodeHello, encodeFrame, encodeHello } from './codec';
import { FramePool, type FramePoolCounters, RECEIVE_POOL_BYTES } from './frame-pool';
import { FrameReader } from './frame-reader';
import type { Message } from './messages';
import {
  HANDSHAKE_TIMEOUT_MS,
  IDLE_TIMEOUT_MS,
  MAX_FRAME_BYTES,
  QUEUE_MAX_AGE_MS,
  QUEUE_MAX_BYTES,
  DOWN_QUEUE_MAX_BYTES,
  DOWN_QUEUE_MAX_FRAMES,
  SOCKET_BUFFER_BYTES,
  WRITE_AT_ONCE_BYTES,
  WRITE_COALESCE_BYTES,
  RECONNECT_JITTER,
  RECONNECT_MAX_MS,
  RECONNECT_MIN_MS,
  FOLLOWER_FORGET_MS,
  MAX_FOLLOWERS,
  MAX_REFUSED_PEERS,
  TCP_OPTION_RANGES,
} from './options';
import { TransportError } from './errors';
import { countDrop, type DropCounters, type MessageHandler, type Network } from './ports';

export interface PeerAddress {
  host: string;
  port: number;
}

export interface TlsOptions {
  /** PEM of the cluster's certificate authority; peers must present a certificate it signed. */
  ca: string | Buffer;
  cert: string | Buffer;
  key: string | Buffer;
}

export interface TcpNetworkOptions {
  nodeId: number;
  clusterId: string;
  /** Where to listen; port 0 picks a free port (see start()). */
  listen: PeerAddress;
  /** Address announced in the hello (default: the bound listen address). */
  advertise?: PeerAddress;
  /** Voting peers by node id. */
  peers?: Map<number, PeerAddress> | Record<number, PeerAddress>;
  /** Let nodes outside `peers` (followers) connect; their hello address becomes a peer. Default true. */
  acceptFollowers?: boolean;
  maxFrameBytes?: number;
  queueMaxBytes?: number;
  /** Bytes queued for a peer known down (DOWN_QUEUE_MAX_BYTES); older frames: E_PEER_DOWN drops. */
  downQueueMaxBytes?: number;
  /** Frames queued for a peer known down (DOWN_QUEUE_MAX_FRAMES); older ones: E_PEER_DOWN drops. */
  downQueueMaxFrames?: number;
  queueMaxAgeMs?: number;
  idleTimeoutMs?: number;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** A follower whose connections all closed is forgotten after this long (FOLLOWER_FORGET_MS). */
  followerForgetMs?: number;
  /** Most followers known at once (MAX_FOLLOWERS); a hello from one more is refused. */
  maxFollowers?: number;
  tls?: TlsOptions;
  /**
   * Most bytes of released receive buffers kept for reuse (RECEIVE_POOL_BYTES; 0: none kept).
   * A long frame's message is handed to the handler with a LentFrame (frame-pool.ts).
   */
  receivePoolBytes?: number;
  /** Tests: overwrite a released frame's bytes (POISON_BYTE), so an early release shows. */
  poisonReleasedFrames?: boolean;
  /** Observability hook: connection events, drops with context (logged once per event). */
  onEvent?: (event: string, fields: Record<string, unknown>) => void;
}

export interface TcpCounters {
  framesSent: number;
  bytesSent: number;
  framesReceived: number;
  bytesReceived: number;
  connectionsOpened: number;
  connectionsAccepted: number;
  reconnects: number;
  /** Followers forgotten after their connections closed (their queued frames: E_PEER_GONE). */
  followersForgotten: number;
  /** Reconnect backoffs cut short because the peer connected to us (it is back up). */
  backoffResets: number;
  /**
   * Accepted connections read straight into frame buffers (FrameReader.readBuffer); the others
   * (TLS, a runtime without the socket handle to take over) copy from Node's read buffers.
   */
  inPlaceConnections: number;
  /** Long frames' buffers: fresh, reused after a release, released (frame-pool.ts). */
  receivePool: FramePoolCounters;
  /** Every frame or connection refused or lost, by reason. */
  drops: DropCounters;
}

interface Queued {
  chunks: Uint8Array[];
  bytes: number;
  atMs: number;
}

class OutboundPeer {
  socket: net.Socket | undefined;
  ready = false;
  blocked = false;
  queue: Queued[] = [];
  head = 0;
  queuedBytes = 0;
  backoffMs: number;
  reconnectTimer: NodeJS.Timeout | undefined;
  flushScheduled = false;
  /** The last connection failed or broke and none has opened since (reachable() reads it). */
  down = false;
  /** The open socket is being closed by us for idleness: its close says nothing of the peer. */
  closingIdle = false;

  constructor(
    readonly nodeId: number,
    public address: PeerAddress,
    minBackoffMs: number,
  ) {
    this.backoffMs = minBackoffMs;
  }

  get length(): number {
    return this.queue.length - this.head;
  }

  peek(): Queued | undefined {
    return this.head < this.queue.length ? this.queue[this.head] : undefined;
  }

  shift(): Queued | undefined {
    if (this.head >= this.queue.length) return undefined;
    const item = this.queue[this.head]!;
    this.queue[this.head] = undefined as never;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.queuedBytes -= item.bytes;
    return item;
  }
}

/** Option fields a TcpNetwork knows (anything else is a typo, refused). */
const TCP_OPTION_FIELDS = new Set([
  ...Object.keys(TCP_OPTION_RANGES),
  'clusterId',
  'listen',
  'advertise',
  'peers',
  'acceptFollowers',
  'tls',
  'poisonReleasedFrames',
  'onEvent',
]);

function badOption(message: string): TransportError {
  return new TransportError('E_BAD_ARGUMENT', `TcpNetwork option ${message}`);
}

function checkAddress(name: string, address: unknown, minPort: number): void {
  const a = address as Partial<PeerAddress> | undefined;
  if (typeof a !== 'object' || a === null || typeof a.host !== 'string' || a.host === '')
    throw badOption(`${name} must be { host: non-empty string, port }`);
  const problem = rangeProblem(a.port, { min: minPort, max: 65_535 });
  if (problem !== undefined) throw badOption(`${name}.port ${problem}`);
}

/** Every field in range, at construction (E_BAD_ARGUMENT names the field and its range). */
function checkTcpNetworkOptions(options: TcpNetworkOptions): void {
  for (const key of Object.keys(options)) {
    if (!TCP_OPTION_FIELDS.has(key))
      throw badOption(`${key} is unknown (known: ${[...TCP_OPTION_FIELDS].join(', ')})`);
  }
  for (const [key, range] of Object.entries(TCP_OPTION_RANGES)) {
    const value = (options as unknown as Record<string, unknown>)[key];
    if (value === undefined && key !== 'nodeId') continue;
    const problem = rangeProblem(value, range);
    if (problem !== undefined) throw badOption(`${key} ${problem}`);
  }
  if (typeof options.clusterId !== 'string' || options.clusterId === '')
    throw badOption('clusterId must be a non-empty string');
  checkAddress('listen', options.listen, 0);
  if (options.advertise !== undefined) checkAddress('advertise', options.advertise, 1);
  const peers =
    options.peers instanceof Map ? [...options.peers] : Object.entries(options.peers ?? {});
  for (const [id, address] of peers) {
    const problem = rangeProblem(Number(id), TCP_OPTION_RANGES.nodeId);
    if (problem !== undefined) throw badOption(`peers: node id ${problem}`);
    checkAddress(`peers[${String(id)}]`, address, 1);
  }
  const frame = options.maxFrameBytes ?? MAX_FRAME_BYTES;
  const queue = options.queueMaxBytes ?? QUEUE_MAX_BYTES;
  if (queue < frame)
    throw badOption(`queueMaxBytes (${queue}) must be at least maxFrameBytes (${frame})`);
  const minMs = options.reconnectMinMs ?? RECONNECT_MIN_MS;
  const maxMs = options.reconnectMaxMs ?? RECONNECT_MAX_MS;
  if (maxMs < minMs)
    throw badOption(`reconnectMaxMs (${maxMs}) must be at least reconnectMinMs (${minMs})`);
}

export class TcpNetwork implements Network {
  private readonly opts: Required<
    Omit<TcpNetworkOptions, 'tls' | 'advertise' | 'peers' | 'onEvent'>
  > &
    Pick<TcpNetworkOptions, 'tls' | 'advertise' | 'onEvent'>;
  private readonly addresses = new Map<number, PeerAddress>();
  private readonly voters = new Set<number>();
  private readonly outbound = new Map<number, OutboundPeer>();
  private readonly inbound = new Set<net.Socket>();
  /** The node each inbound connection's hello named (removePeer with refuse closes them). */
  private readonly inboundFrom = new Map<net.Socket, number>();
  /** Nodes removed with `refuse`: their hellos are refused until addPeer (insertion order, bounded). */
  private readonly refused = new Set<number>();
  private server: net.Server | undefined;
  private handler: MessageHandler | undefined;
  private readonly receivePool: FramePool;
  private boundAddress: PeerAddress | undefined;
  private closed = false;
  /** Everything counted here; the receive pool counts itself (FramePool.counters). */
  private readonly stats: Omit<TcpCounters, 'receivePool'> = {
    framesSent: 0,
    bytesSent: 0,
    framesReceived: 0,
    bytesReceived: 0,
    connectionsOpened: 0,
    connectionsAccepted: 0,
    reconnects: 0,
    followersForgotten: 0,
    backoffResets: 0,
    inPlaceConnections: 0,
    drops: {},
  };
  /**
   * Followers (peers known from their hello only): open inbound connections, and the timer that
   * forgets the follower once none has been open for followerForgetMs. Voters and peers given
   * to addPeer() are never forgotten.
   */
  private readonly followers = new Map<
    number,
    { connections: number; forgetTimer: NodeJS.Timeout | undefined }
  >();

  constructor(options: TcpNetworkOptions) {
    checkTcpNetworkOptions(options);
    this.opts = {
      acceptFollowers: true,
      maxFrameBytes: MAX_FRAME_BYTES,
      queueMaxBytes: QUEUE_MAX_BYTES,
      downQueueMaxBytes: DOWN_QUEUE_MAX_BYTES,
      downQueueMaxFrames: DOWN_QUEUE_MAX_FRAMES,
      queueMaxAgeMs: QUEUE_MAX_AGE_MS,
      idleTimeoutMs: IDLE_TIMEOUT_MS,
      reconnectMinMs: RECONNECT_MIN_MS,
      reconnectMaxMs: RECONNECT_MAX_MS,
      followerForgetMs: FOLLOWER_FORGET_MS,
      maxFollowers: MAX_FOLLOWERS,
      receivePoolBytes: RECEIVE_POOL_BYTES,
      poisonReleasedFrames: false,
      ...options,
    } as TcpNetwork['opts'];
    this.receivePool = new FramePool(this.opts.receivePoolBytes, this.opts.poisonReleasedFrames);
    const peers =
      options.peers instanceof Map
        ? options.peers
        : new Map(Object.entries(options.peers ?? {}).map(([k, v]) => [Number(k), v]));
    for (const [id, addr] of peers) {
      if (id === options.nodeId) continue;
      this.addresses.set(id, addr);
      this.voters.add(id);
    }
  }

  /** Largest frame this network sends or accepts. */
  get maxFrameBytes(): number {
    return this.opts.maxFrameBytes;
  }

  /** Starts listening; resolves with the bound port (useful with port 0). */
  async start(): Promise<{ host: string; port: number }> {
    const onSocket = (socket: net.Socket): void => this.accept(socket);
    const server = this.opts.tls
      ? tls.createServer(
          { ...this.opts.tls, requestCert: true, rejectUnauthorized: true },
          onSocket,
        )
      : // Paused: an accepted socket is taken over by one that reads into our buffers (accept).
        net.createServer({ pauseOnConnect: true }, onSocket);
    server.on('tlsClientError', (err: Error) => {
      countDrop(this.stats.drops, 'tls-rejected');
      this.emit('tls-rejected', { error: err.message });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.listen.port, this.opts.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address() as net.AddressInfo;
    this.boundAddress = { host: this.opts.listen.host, port: addr.port };
    return this.boundAddress;
  }

  /** Adds or moves a peer (a follower found out of band, a changed address); kept until removePeer. */
  addPeer(nodeId: number, address: PeerAddress): void {
    this.refused.delete(nodeId);
    this.forgetFollowerLater(nodeId, 'never');
    this.followers.delete(nodeId);
    this.setAddress(nodeId, address);
  }

  /**
   * Forgets a peer: its address, queued frames (counted E_PEER_GONE) and connection. With
   * `refuse` (a node removed from the membership) its open inbound connections are closed too and
   * its hellos refused (E_REMOVED_NODE) until addPeer, so it neither reaches this node nor, by
   * reconnecting as a follower would, becomes a peer again.
   */
  removePeer(nodeId: number, opts: { refuse?: boolean } = {}): void {
    if (opts.refuse === true) {
      this.refused.delete(nodeId);
      this.refused.add(nodeId);
      if (this.refused.size > MAX_REFUSED_PEERS)
        this.refused.delete(this.refused.values().next().value!);
      for (const [socket, from] of this.inboundFrom) if (from === nodeId) socket.destroy();
    }
    this.forgetFollowerLater(nodeId, 'never');
    this.followers.delete(nodeId);
    this.voters.delete(nodeId);
    this.addresses.delete(nodeId);
    const peer = this.outbound.get(nodeId);
    if (peer === undefined) return;
    this.outbound.delete(nodeId);
    if (peer.reconnectTimer) clearTimeout(peer.reconnectTimer);
    peer.reconnectTimer = undefined;
    for (let n = peer.length; n > 0; n--) {
      peer.shift();
      countDrop(this.stats.drops, 'E_PEER_GONE');
    }
    const socket = peer.socket;
    peer.socket = undefined;
    socket?.destroy();
  }

  /** Node ids this network can send to now (voters, added peers, followers not yet forgotten). */
  peers(): number[] {
    return [...this.addresses.keys()];
  }

  /** Starts or cancels ('never') the timer that forgets a follower. */
  private forgetFollowerLater(nodeId: number, when: 'now' | 'never'): void {
    const follower = this.followers.get(nodeId);
    if (follower === undefined) return;
    if (follower.forgetTimer) clearTimeout(follower.forgetTimer);
    follower.forgetTimer = undefined;
    if (when === 'never' || this.closed) return;
    follower.forgetTimer = setTimeout(() => {
      follower.forgetTimer = undefined;
      if (follower.connections > 0 || this.followers.get(nodeId) !== follower) return;
      this.removePeer(nodeId);
      this.stats.followersForgotten++;
      this.emit('follower-forgotten', { nodeId });
    }, this.opts.followerForgetMs);
  }

  private setAddress(nodeId: number, address: PeerAddress): void {
    this.addresses.set(nodeId, address);
    const peer = this.outbound.get(nodeId);
    if (peer && (peer.address.host !== address.host || peer.address.port !== address.port)) {
      peer.address = address;
      peer.socket?.destroy();
    }
  }

  onMessage(handler: MessageHandler): void {
    this.handler = handler;
  }

  /**
   * False while the last connection to the peer failed or broke and none has opened since, in
   * either direction (a peer that dials us again is up).
   */
  reachable(to: number): boolean {
    return this.outbound.get(to)?.down !== true;
  }

  /** Bytes queued for a peer and not yet handed to its socket (callers may pace themselves by it). */
  queuedBytes(to: number): number {
    return this.outbound.get(to)?.queuedBytes ?? 0;
  }

  counters(): TcpCounters {
    return {
      ...this.stats,
      receivePool: { ...this.receivePool.counters },
      drops: { ...this.stats.drops },
    };
  }

  send(to: number, group: number, message: Message): void {
    if (this.closed) {
      countDrop(this.stats.drops, 'E_CLOSED');
      return;
    }
    const address = this.addresses.get(to);
    if (address === undefined) {
      countDrop(this.stats.drops, 'E_UNKNOWN_NODE');
      return;
    }
    let chunks: Uint8Array[];
    try {
      chunks = encodeFrame(group, message, this.opts.maxFrameBytes);
    } catch (e) {
      countDrop(this.stats.drops, (e as { code?: string }).code ?? 'encode-failed');
      return;
    }
    let bytes = 0;
    for (const c of chunks) bytes += c.length;
    let peer = this.outbound.get(to);
    if (peer === undefined) {
      peer = new OutboundPeer(to, address, this.opts.reconnectMinMs);
      this.outbound.set(to, peer);
    }
    // Bounded in bytes: the oldest frames go first (they are also the likeliest to be stale). A
    // peer known down gets smaller bounds, in bytes and in frames (DOWN_QUEUE_MAX_BYTES and
    // DOWN_QUEUE_MAX_FRAMES say why).
    const down = peer.down;
    const max = down
      ? Math.min(this.opts.downQueueMaxBytes, this.opts.queueMaxBytes)
      : this.opts.queueMaxBytes;
    const maxFrames = down ? this.opts.downQueueMaxFrames : Number.POSITIVE_INFINITY;
    const reason = down ? 'E_PEER_DOWN' : 'E_QUEUE_FULL';
    if (bytes > max || maxFrames === 0) {
      // It could never fit: the frames queued stay.
      countDrop(this.stats.drops, reason);
      return;
    }
    while ((peer.queuedBytes + bytes > max || peer.length >= maxFrames) && peer.length > 0) {
      peer.shift();
      countDrop(this.stats.drops, reason);
    }
    peer.queue.push({ chunks, bytes, atMs: performance.now() });
    peer.queuedBytes += bytes;
    if (peer.socket === undefined && peer.reconnectTimer === undefined) this.connect(peer);
    else if (bytes >= WRITE_AT_ONCE_BYTES)
      this.flush(peer); // in queue order, the rest included
    else this.scheduleFlush(peer);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const peer of this.outbound.values()) {
      if (peer.reconnectTimer) clearTimeout(peer.reconnectTimer);
      peer.socket?.destroy();
    }
    for (const socket of this.inbound) socket.destroy();
    for (const follower of this.followers.values()) {
      if (follower.forgetTimer) clearTimeout(follower.forgetTimer);
      follower.forgetTimer = undefined;
    }
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private emit(event: string, fields: Record<string, unknown>): void {
    this.opts.onEvent?.(event, { node: this.opts.nodeId, ...fields });
  }

  // ---- outbound ---------------------------------------------------------------------------

  private connect(peer: OutboundPeer): void {
    if (this.closed) return;
    peer.ready = false;
    peer.blocked = false;
    const { host, port } = peer.address;
    const socket = this.opts.tls
      ? tls.connect({
          host,
          port,
          ...this.opts.tls,
          servername: undefined as unknown as string,
          checkServerIdentity: () => undefined,
        })
      : net.connect({ host, port });
    socket.setNoDelay(true);
    peer.socket = socket;
    this.stats.connectionsOpened++;
    socket.once(this.opts.tls ? 'secureConnect' : 'connect', () => {
      const advertise = this.opts.advertise ?? this.boundAddress ?? this.opts.listen;
      socket.write(
        encodeHello({
          clusterId: this.opts.clusterId,
          nodeId: this.opts.nodeId,
          listenHost: advertise.host,
          listenPort: advertise.port,
        }),
      );
      peer.ready = true;
      peer.down = false;
      peer.backoffMs = this.opts.reconnectMinMs;
      socket.setTimeout(this.opts.idleTimeoutMs);
      this.emit('connected', { to: peer.nodeId, host, port });
      this.flush(peer);
    });
    socket.on('timeout', () => {
      if (peer.length > 0) return;
      peer.closingIdle = true; // idle: reconnect lazily on the next send
      socket.destroy();
    });
    socket.on('drain', () => {
      peer.blocked = false;
      this.flush(peer);
    });
    socket.on('data', () => {}); // the server never writes on this direction
    socket.on('error', (err) =>
      this.emit('connection-error', { to: peer.nodeId, error: err.message }),
    );
    socket.on('close', () => {
      if (peer.socket !== socket) return;
      peer.socket = undefined;
      peer.ready = false;
      if (!peer.closingIdle) peer.down = true;
      peer.closingIdle = false;
      this.emit('disconnected', { to: peer.nodeId });
      if (this.closed || peer.length === 0) return;
      const jitter = 1 + (Math.random() * 2 - 1) * RECONNECT_JITTER;
      const delay = Math.min(peer.backoffMs, this.opts.reconnectMaxMs) * jitter;
      peer.backoffMs = Math.min(peer.backoffMs * 2, this.opts.reconnectMaxMs);
      this.stats.reconnects++;
      peer.reconnectTimer = setTimeout(() => {
        peer.reconnectTimer = undefined;
        this.dropExpired(peer);
        if (peer.length > 0) this.connect(peer);
      }, delay);
    });
  }

  private scheduleFlush(peer: OutboundPeer): void {
    if (peer.flushScheduled || !peer.ready) return;
    peer.flushScheduled = true;
    setImmediate(() => {
      peer.flushScheduled = false;
      this.flush(peer);
    });
  }

  private dropExpired(peer: OutboundPeer): void {
    const oldest = performance.now() - this.opts.queueMaxAgeMs;
    while (peer.length > 0 && peer.queue[peer.head]!.atMs < oldest) {
      peer.shift();
      countDrop(this.stats.drops, 'E_QUEUE_EXPIRED');
    }
  }

  /**
   * Writes queued frames in one corked batch until the socket pushes back. Runs of small
   * frames go out concatenated, one write per WRITE_COALESCE_BYTES: a write call costs more
   * than copying a 100 B frame (BASELINES.md: 4.17 M frames/s concatenated vs 2.75 M corked).
   */
  private flush(peer: OutboundPeer): void {
    const socket = peer.socket;
    if (!socket || !peer.ready || peer.blocked) return;
    this.dropExpired(peer);
    if (peer.length === 0) return;
    socket.cork();
    // Back-pressure by the bytes the socket holds, not write()'s return value: that turns false
    // past 16 KiB, and waiting for 'drain' every 16 KiB made 100 B frames 10x slower than raw.
    while (!peer.blocked && peer.length > 0) {
      const item = peer.shift()!;
      let chunks = item.chunks;
      let bytes = item.bytes;
      let frames = 1;
      if (chunks.length === 1) {
        // A run of one-chunk frames leaves as one buffer.
        const run = [chunks[0]!];
        for (
          let next = peer.peek();
          next !== undefined &&
          next.chunks.length === 1 &&
          bytes + next.bytes <= WRITE_COALESCE_BYTES;
          next = peer.peek()
        ) {
          run.push(peer.shift()!.chunks[0]!);
          bytes += next.bytes;
          frames++;
        }
        chunks = [concatChunks(run)];
      }
      for (const chunk of chunks) socket.write(chunk);
      this.stats.framesSent += frames;
      this.stats.bytesSent += bytes;
      if (socket.writableLength >= SOCKET_BUFFER_BYTES) peer.blocked = true;
    }
    socket.uncork();
  }

  /**
   * A peer connected to us, so it is up: stop waiting out the reconnect backoff to it, so what we
   * queued for it (a restarted node's first learned values) leaves within one round trip.
   */
  private peerIsBack(nodeId: number): void {
    const peer = this.outbound.get(nodeId);
    if (peer === undefined) return;
    // Up again: not "known unreachable" while our own connection waits for a send or a backoff.
    peer.down = false;
    peer.backoffMs = this.opts.reconnectMinMs;
    if (peer.reconnectTimer === undefined || peer.socket !== undefined) return;
    clearTimeout(peer.reconnectTimer);
    peer.reconnectTimer = undefined;
    this.stats.backoffResets++;
    this.dropExpired(peer);
    if (peer.length > 0) this.connect(peer);
  }

  // ---- inbound ----------------------------------------------------------------------------

  private accept(accepted: net.Socket): void {
    if (this.closed) {
      accepted.destroy();
      return;
    }
    const reader = new FrameReader(this.opts.maxFrameBytes, this.receivePool);
    const taken =
      this.opts.tls === undefined
        ? readingInto(accepted, reader, (n) => {
            this.stats.bytesReceived += n;
            const { frames, error } = reader.read(n);
            deliver(frames, error);
          })
        : undefined;
    const socket = taken ?? accepted;
    this.inbound.add(socket);
    this.stats.connectionsAccepted++;
    socket.setNoDelay(true);
    socket.setTimeout(HANDSHAKE_TIMEOUT_MS);
    let from: number | undefined;
    const refuse = (reason: string, fields: Record<string, unknown>): void => {
      countDrop(this.stats.drops, reason);
      this.emit('connection-refused', { reason, remote: socket.remoteAddress, ...fields });
      socket.destroy();
    };
    socket.on('timeout', () => {
      if (from === undefined) refuse('E_NO_HANDSHAKE', {});
      else socket.destroy(); // idle
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.inbound.delete(socket);
      this.inboundFrom.delete(socket);
      const follower = from === undefined ? undefined : this.followers.get(from);
      if (follower !== undefined && --follower.connections === 0)
        this.forgetFollowerLater(from!, 'now');
    });
    const deliver = (frames: Uint8Array[], error: TransportError | undefined): void => {
      for (const frame of frames) {
        if (socket.destroyed) return;
        if (from === undefined) {
          const hello = decodeHello(frame);
          if (!hello.ok) return refuse(hello.error.code, { error: hello.error.message });
          const h = hello.value;
          if (h.clusterId !== this.opts.clusterId)
            return refuse('E_WRONG_CLUSTER', { clusterId: h.clusterId, nodeId: h.nodeId });
          if (h.nodeId === this.opts.nodeId || h.nodeId === 0)
            return refuse('E_UNKNOWN_NODE', { nodeId: h.nodeId });
          if (this.refused.has(h.nodeId)) return refuse('E_REMOVED_NODE', { nodeId: h.nodeId });
          if (!this.voters.has(h.nodeId)) {
            if (!this.opts.acceptFollowers) return refuse('E_UNKNOWN_NODE', { nodeId: h.nodeId });
            const isNew = !this.addresses.has(h.nodeId);
            if (isNew && this.followers.size >= this.opts.maxFollowers)
              return refuse('E_TOO_MANY_PEERS', { nodeId: h.nodeId, max: this.opts.maxFollowers });
            let follower = this.followers.get(h.nodeId);
            if (follower === undefined && isNew) {
              follower = { connections: 0, forgetTimer: undefined };
              this.followers.set(h.nodeId, follower);
            }
            if (follower !== undefined) {
              follower.connections++;
              this.forgetFollowerLater(h.nodeId, 'never');
            }
            this.setAddress(h.nodeId, { host: h.listenHost, port: h.listenPort });
            this.emit('follower-connected', {
              nodeId: h.nodeId,
              host: h.listenHost,
              port: h.listenPort,
            });
          }
          from = h.nodeId;
          this.inboundFrom.set(socket, from);
          reader.trustPeer();
          socket.setTimeout(this.opts.idleTimeoutMs);
          this.peerIsBack(h.nodeId);
          continue;
        }
        const decoded = decodeFrame(frame, this.opts.maxFrameBytes);
        if (!decoded.ok) {
          // The length prefix was sound, so the stream stays aligned: drop this frame only.
          countDrop(this.stats.drops, decoded.error.code);
          continue;
        }
        this.stats.framesReceived++;
        try {
          this.handler?.(
            from,
            decoded.value.group,
            decoded.value.message,
            this.receivePool.lend(frame),
          );
        } catch (e) {
          countDrop(this.stats.drops, 'handler-error');
          this.emit('handler-error', { from, error: String(e) });
        }
      }
      if (error !== undefined && !socket.destroyed) refuse(error.code, { error: error.message });
    };
    if (taken !== undefined) {
      this.stats.inPlaceConnections++;
      return;
    }
    socket.on('data', (data: Buffer) => {
      this.stats.bytesReceived += data.length;
      const { frames, error } = reader.push(data);
      deliver(frames, error);
    });
    socket.resume(); // accepted paused (pauseOnConnect)
  }
}

/**
 * An accepted socket taken over by one whose reads land in `reader`'s own buffers (Node's
 * `onread`: the rest of a long frame is read into the frame itself, no copy and no buffer per
 * read; net.Server offers no `onread` for the sockets it accepts). It takes the accepted
 * socket's handle as Node's own net.Server does (lib/net.js onconnection: `new Socket({ handle
 * })`); undefined where this runtime's socket has no such handle (then 'data' events serve).
 * The accepted socket must not have started reading (pauseOnConnect).
 */
function readingInto(
  accepted: net.Socket,
  reader: FrameReader,
  onRead: (n: number) => void,
): net.Socket | undefined {
  const internals = accepted as unknown as { _handle?: { readStart?: unknown } | null };
  const handle = internals._handle;
  if (handle === undefined || handle === null || typeof handle.readStart !== 'function')
    return undefined;
  internals._handle = null;
  const taken = new net.Socket({
    handle,
    readable: true,
    writable: true,
    onread: { buffer: () => reader.readBuffer(), callback: (n: number) => onRead(n) },
  } as net.SocketConstructorOpts);
  accepted.destroy(); // handle-less: closes nothing, only lets the server count it gone
  return taken;
}
