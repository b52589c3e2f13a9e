import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrameBytes, encodeHello, type Message, paxosMsg } from './index';
import { WRITE_AT_ONCE_BYTES } from './options';
import { TcpNetwork, type TcpNetworkOptions } from './tcp';

const started: TcpNetwork[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((n) => n.close()));
});

async function node(
  nodeId: number,
  peers: TcpNetworkOptions['peers'] = {},
  extra: Partial<TcpNetworkOptions> = {},
) {
  const n = new TcpNetwork({
    nodeId,
    clusterId: 'test',
    listen: { host: '127.0.0.1', port: 0 },
    peers,
    ...extra,
  });
  started.push(n);
  const addr = await n.start();
  return { n, addr };
}

const msg = (i: number, value = new Uint8Array(0)): Message => ({
  kind: 'paxos',
  msg: paxosMsg({ msgType: 6, instanceId: i, nodeId: 1, value }),
});

function until(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () =>
      cond()
        ? resolve()
        : Date.now() - t0 > timeoutMs
          ? reject(new Error('timed out'))
          : setTimeout(tick, 5);
    tick();
  });
}

/** A loopback port that was free a moment ago and has no listener: dialing it is refused. */
async function portNobodyListensOn(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

describe('TcpNetwork', () => {
  it('delivers 100,000 messages in order between two nodes on loopback', async () => {
    const b = await node(2);
    // No age limit here: on a loaded CI machine the 5 s default could drop frames (by design).
    const a = await node(1, { 2: b.addr }, { queueMaxAgeMs: 600_000 });
    b.n.addPeer(1, { host: '127.0.0.1', port: 1 });
    const got: number[] = [];
    b.n.onMessage((from, group, m) => {
      expect(from).toBe(1);
      expect(group).toBe(3);
      if (m.kind === 'paxos') got.push(m.msg.instanceId);
    });
    for (let i = 0; i < 100_000; i++) a.n.send(2, 3, msg(i));
    await until(() => got.length === 100_000, 90_000);
    expect(a.n.counters().drops).toEqual({});
    expect(got.every((v, i) => v === i)).toBe(true);
    expect(a.n.counters().framesSent).toBe(100_000);
  }, 120_000);

  it('keeps order and bytes when small frames are concatenated around large ones', async () => {
    // Small frames leave in concatenated writes, frames over 16 KiB as chunk lists by reference:
    // interleave both, with values whose bytes say where they belong.
    const b = await node(2);
    const a = await node(1, { 2: b.addr }, { queueMaxAgeMs: 600_000 });
    const sizes = [0, 1, 100, 20_000, 100, 70_000, 3, 16_000, 16_500, 200_000];
    const valueOf = (i: number) =>
      Uint8Array.from({ length: sizes[i % sizes.length]! }, (_, k) => (i * 31 + k) & 0xff);
    const got: Message[] = [];
    b.n.onMessage((_from, _group, m) => got.push(m));
    const total = 2_000;
    for (let i = 0; i < total; i++) a.n.send(2, 0, msg(i, valueOf(i)));
    await until(() => got.length === total, 60_000);
    got.forEach((m, i) => {
      if (m.kind !== 'paxos') throw new Error('not a paxos message');
      expect(m.msg.instanceId).toBe(i);
      expect(Buffer.from(m.msg.value).equals(Buffer.from(valueOf(i)))).toBe(true);
    });
    expect(a.n.counters().framesSent).toBe(total);
    // Read into frame buffers and slabs: the values held above were not overwritten meanwhile.
    expect(b.n.counters().inPlaceConnections).toBe(1);
  }, 90_000);

  it('lends long frames: a released one is read into again, one still held never is', async () => {
    const b = await node(2, {}, { poisonReleasedFrames: true });
    const a = await node(1, { 2: b.addr }, { queueMaxAgeMs: 600_000 });
    const valueOf = (i: number) =>
      Uint8Array.from({ length: 300_000 + (i % 5) * 1000 }, (_, k) => (i * 7 + k) & 0xff);
    const total = 60;
    const held: { i: number; value: Uint8Array }[] = [];
    let lentCount = 0;
    let checked = 0;
    b.n.onMessage((_from, _group, m, lent) => {
      if (m.kind !== 'paxos') throw new Error('not a paxos message');
      const i = m.msg.instanceId;
      // Its bytes are right when it arrives: no frame in use was read into.
      expect(Buffer.from(m.msg.value).equals(Buffer.from(valueOf(i)))).toBe(true);
      checked++;
      if (lent === undefined) return;
      lentCount++;
      // Every fourth message is kept and never released; the others are released at once.
      if (i % 4 === 0) held.push({ i, value: m.msg.value });
      else lent.release();
    });
    for (let i = 0; i < total; i++) a.n.send(2, 0, msg(i, valueOf(i)));
    await until(() => checked === total, 60_000);
    expect(lentCount).toBe(total);
    const pool = b.n.counters().receivePool;
    expect(pool.released).toBe(total - held.length);
    expect(pool.reused).toBeGreaterThan(total / 2);
    expect(pool.reused + pool.allocated).toBe(total);
    // The frames never released kept their bytes while the others were reused.
    for (const h of held) expect(Buffer.from(h.value).equals(Buffer.from(valueOf(h.i)))).toBe(true);
  }, 90_000);

  it('writes a frame of WRITE_AT_ONCE_BYTES or more during send(), the frames queued before it first', async () => {
    const b = await node(2);
    const a = await node(1, { 2: b.addr }, { queueMaxAgeMs: 600_000 });
    const got: number[] = [];
    b.n.onMessage((_from, _group, m) => {
      if (m.kind === 'paxos') got.push(m.msg.instanceId);
    });
    a.n.send(2, 0, msg(0));
    await until(() => got.length === 1); // connected
    a.n.send(2, 0, msg(1, new Uint8Array(100)));
    expect(a.n.counters().framesSent).toBe(1); // a small frame waits for the next turn
    a.n.send(2, 0, msg(2, new Uint8Array(WRITE_AT_ONCE_BYTES)));
    expect(a.n.counters().framesSent).toBe(3); // written now, the small one before it
    a.n.send(2, 0, msg(3, new Uint8Array(100)));
    expect(a.n.counters().framesSent).toBe(3);
    await until(() => got.length === 4);
    expect(got).toEqual([0, 1, 2, 3]);
  });

  it('reconnects after the peer restarts and delivers what was sent meanwhile; reachable() follows', async () => {
    const b1 = await node(2);
    const port = b1.addr.port;
    const events: string[] = [];
    const a = await node(
      1,
      { 2: b1.addr },
      {
        reconnectMinMs: 10,
        reconnectMaxMs: 50,
        // All 99 frames sent while it is down are kept (the default keeps the newest 64).
        downQueueMaxFrames: 1000,
        onEvent: (event) => events.push(event),
      },
    );
    const got: number[] = [];
    b1.n.onMessage((_f, _g, m) => m.kind === 'paxos' && got.push(m.msg.instanceId));
    expect(a.n.reachable(2)).toBe(true); // nothing tried yet: not known to be down
    for (let i = 0; i < 100; i++) a.n.send(2, 0, msg(i));
    await until(() => got.length === 100);
    await b1.n.close();
    await until(() => events.includes('disconnected')); // a saw its connection close
    expect(a.n.reachable(2)).toBe(false);
    a.n.send(2, 0, msg(100)); // may be written into the dying connection: lost, as TCP loses it
    const b2 = new TcpNetwork({
      nodeId: 2,
      clusterId: 'test',
      listen: { host: '127.0.0.1', port },
    });
    started.push(b2);
    b2.onMessage((_f, _g, m) => m.kind === 'paxos' && got.push(m.msg.instanceId));
    await b2.start();
    for (let i = 101; i < 200; i++) a.n.send(2, 0, msg(i));
    await until(() => got.includes(199));
    expect(a.n.reachable(2)).toBe(true);
    const after = got.filter((v) => v > 100);
    expect(after).toEqual(Array.from({ length: 99 }, (_, i) => 101 + i));
    expect(a.n.counters().reconnects).toBeGreaterThan(0);
  }, 30_000);

  it('an inbound connection from a restarted peer ends the reconnect backoff to it', async () => {
    const b1 = await node(2);
    const port = b1.addr.port;
    // A long backoff: 2–6 s before the next attempt, unless the peer's own connection cuts it.
    const a = await node(1, { 2: b1.addr }, { reconnectMinMs: 4000, reconnectMaxMs: 8000 });
    const got: number[] = [];
    b1.n.onMessage((_f, _g, m) => m.kind === 'paxos' && got.push(m.msg.instanceId));
    a.n.send(2, 0, msg(0));
    await until(() => got.length === 1);
    await b1.n.close();
    // Sends into the dying socket are lost; once it is gone a send is refused: the backoff starts.
    await until(() => {
      a.n.send(2, 0, msg(1));
      return a.n.counters().reconnects > 0;
    });
    const b2 = new TcpNetwork({
      nodeId: 2,
      clusterId: 'test',
      listen: { host: '127.0.0.1', port },
      peers: { 1: a.addr },
    });
    started.push(b2);
    b2.onMessage((_f, _g, m) => m.kind === 'paxos' && got.push(m.msg.instanceId));
    await b2.start();
    const t0 = Date.now();
    b2.send(1, 0, msg(50)); // b2 says hello to a: a learns that 2 is back
    a.n.send(2, 0, msg(2));
    await until(() => got.includes(2), 1500);
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(a.n.counters().backoffResets).toBe(1);
  }, 30_000);

  it('bounds the outbound queue in bytes, dropping the oldest and counting it', async () => {
    // Nobody listens on this port: every frame waits in the queue.
    const deadPort = await portNobodyListensOn();
    const a = await node(
      1,
      { 2: { host: '127.0.0.1', port: deadPort } },
      { queueMaxBytes: 10_000, maxFrameBytes: 10_000, reconnectMinMs: 1000 },
    );
    for (let i = 0; i < 100; i++) a.n.send(2, 0, msg(i, new Uint8Array(500)));
    const drops = a.n.counters().drops;
    expect(drops['E_QUEUE_FULL']).toBeGreaterThan(70);
    a.n.send(99, 0, msg(0));
    expect(a.n.counters().drops['E_UNKNOWN_NODE']).toBe(1);
  });

  it('keeps only the newest downQueueMaxBytes for a peer known down, counting the rest E_PEER_DOWN', async () => {
    const deadPort = await portNobodyListensOn();
    const a = await node(
      1,
      { 2: { host: '127.0.0.1', port: deadPort } },
      { downQueueMaxBytes: 20_000, reconnectMinMs: 60_000, reconnectMaxMs: 60_000 },
    );
    a.n.send(2, 0, msg(0, new Uint8Array(1000))); // dials; the refusal makes the peer down
    await until(() => !a.n.reachable(2));
    const frame = a.n.queuedBytes(2);
    for (let i = 1; i <= 100; i++) a.n.send(2, 0, msg(i, new Uint8Array(1000)));
    // Up to the bound, never past it: the 200 MiB queue bound of a reachable peer would hold all.
    expect(a.n.queuedBytes(2)).toBeLessThanOrEqual(20_000);
    expect(a.n.queuedBytes(2)).toBeGreaterThan(20_000 - frame);
    const kept = Math.round(a.n.queuedBytes(2) / frame);
    expect(a.n.counters().drops).toEqual({ E_PEER_DOWN: 101 - kept });
    // A frame larger than the bound is not queued at all.
    a.n.send(2, 0, msg(200, new Uint8Array(30_000)));
    expect(a.n.counters().drops['E_PEER_DOWN']).toBe(102 - kept);
  });

  it('keeps only the newest downQueueMaxFrames for a peer known down, however small', async () => {
    const deadPort = await portNobodyListensOn();
    const a = await node(
      1,
      { 2: { host: '127.0.0.1', port: deadPort } },
      { downQueueMaxFrames: 10, reconnectMinMs: 60_000, reconnectMaxMs: 60_000 },
    );
    a.n.send(2, 0, msg(0)); // dials; the refusal makes the peer down
    await until(() => !a.n.reachable(2));
    const frame = a.n.queuedBytes(2);
    for (let i = 1; i <= 100; i++) a.n.send(2, 0, msg(i));
    // 10 frames of a few dozen bytes: far under downQueueMaxBytes, bounded by their count.
    expect(a.n.queuedBytes(2)).toBe(10 * frame);
    expect(a.n.counters().drops).toEqual({ E_PEER_DOWN: 101 - 10 });
  });

  it('forgets a follower whose connections stay closed for followerForgetMs, and bounds how many it knows', async () => {
    const b = await node(2, {}, { followerForgetMs: 100, maxFollowers: 1 });
    const got: number[] = [];
    b.n.onMessage((from) => got.push(from));
    const f = await node(9, { 2: b.addr });
    f.n.send(2, 0, msg(1));
    await until(() => got.length === 1);
    expect(b.n.peers()).toContain(9);
    const back: number[] = [];
    f.n.onMessage((from) => back.push(from));
    b.n.send(9, 0, msg(2)); // reachable through the address its hello announced
    await until(() => back.length === 1);
    // While it is known, the table is full: another follower's hello is refused and counted.
    const other = await node(8, { 2: b.addr });
    other.n.send(2, 0, msg(3));
    await until(() => (b.n.counters().drops['E_TOO_MANY_PEERS'] ?? 0) >= 1);
    expect(b.n.peers()).not.toContain(8);
    // Gone: its connection closes, and followerForgetMs later its address and queue are freed.
    await f.n.close();
    await until(() => b.n.counters().followersForgotten === 1);
    expect(b.n.peers()).not.toContain(9);
    b.n.send(9, 0, msg(4));
    expect(b.n.counters().drops['E_UNKNOWN_NODE']).toBe(1);
    expect(b.n.queuedBytes(9)).toBe(0);
  });

  it('keeps a follower that reconnects before it is forgotten, and peers given to addPeer', async () => {
    const b = await node(2, {}, { followerForgetMs: 200 });
    b.n.addPeer(7, { host: '127.0.0.1', port: 1 }); // out of band: kept until removePeer
    const got: number[] = [];
    b.n.onMessage((from) => got.push(from));
    const first = await node(9, { 2: b.addr });
    first.n.send(2, 0, msg(1));
    await until(() => got.length === 1);
    await first.n.close();
    const again = await node(9, { 2: b.addr });
    const back: number[] = [];
    again.n.onMessage((from) => back.push(from));
    again.n.send(2, 0, msg(2));
    await until(() => got.length === 2);
    // Connected again: known, reachable at its new address, whatever the first close started.
    b.n.send(9, 0, msg(3));
    await until(() => back.length === 1);
    expect(b.n.peers().sort()).toEqual([7, 9]);
    // Its last connection closes: forgotten once; the added peer stays until removePeer.
    await again.n.close();
    await until(() => b.n.counters().followersForgotten === 1);
    expect(b.n.peers()).toEqual([7]);
    b.n.removePeer(7);
    expect(b.n.peers()).toEqual([]);
  });

  it('a peer removed with refuse is cut off both ways until addPeer: no follower comeback', async () => {
    const a = await node(1);
    const b = await node(2, { 1: a.addr });
    a.n.addPeer(2, b.addr);
    const atA: number[] = [];
    const atB: number[] = [];
    a.n.onMessage((_from, _g, m) =>
      atA.push((m as { msg: { instanceId: number } }).msg.instanceId),
    );
    b.n.onMessage(() => atB.push(1));
    b.n.send(1, 0, msg(1));
    a.n.send(2, 0, msg(2));
    await until(() => atA.length === 1 && atB.length === 1);
    // Node 2 left the membership: node 1 forgets it and refuses it, its open connection included.
    a.n.removePeer(2, { refuse: true });
    expect(a.n.peers()).toEqual([]);
    a.n.send(2, 0, msg(3));
    expect(a.n.counters().drops['E_UNKNOWN_NODE']).toBe(1);
    // Node 2 does not know yet and keeps sending (it reconnects on its next send once it sees
    // the close): refused at every hello, nothing delivered.
    let sent = 10;
    await until(() => {
      b.n.send(1, 0, msg(sent++));
      return (a.n.counters().drops['E_REMOVED_NODE'] ?? 0) >= 1;
    });
    expect(atA).toEqual([1]);
    expect(a.n.peers()).toEqual([]); // its hello did not make it a follower
    // Added again (a new membership): it gets through.
    a.n.addPeer(2, b.addr);
    await until(() => {
      b.n.send(1, 0, msg(sent++));
      return atA.length > 1;
    }, 20_000);
    expect(atA.slice(1).every((i) => i >= 10)).toBe(true);
  });

  it('lets nothing through from another cluster or without a hello, and counts it', async () => {
    const b = await node(2, { 1: { host: '127.0.0.1', port: 1 } }, { acceptFollowers: false });
    const got: Message[] = [];
    b.n.onMessage((_f, _g, m) => got.push(m));
    const stranger = new TcpNetwork({
      nodeId: 1,
      clusterId: 'other',
      listen: { host: '127.0.0.1', port: 0 },
      peers: { 2: b.addr },
    });
    started.push(stranger);
    await stranger.start();
    stranger.send(2, 0, msg(1));
    const unknown = await node(7, { 2: b.addr }); // right cluster, unknown node, followers refused
    unknown.n.send(2, 0, msg(2));
    // A raw socket sending a message frame without saying hello first.
    const raw = net.connect(b.addr.port, '127.0.0.1');
    await new Promise((r) => raw.once('connect', r));
    raw.write(encodeFrameBytes(0, msg(3)));
    await until(() => {
      const d = b.n.counters().drops;
      return (
        (d['E_WRONG_CLUSTER'] ?? 0) >= 1 &&
        (d['E_UNKNOWN_NODE'] ?? 0) >= 1 &&
        (d['E_NO_HANDSHAKE'] ?? 0) >= 1
      );
    });
    raw.destroy();
    expect(got).toHaveLength(0);
  });

  it('accepts a follower that is not in the peer list and can reach it back', async () => {
    const leader = await node(1);
    const follower = await node(9, { 1: leader.addr });
    const atLeader: number[] = [];
    const atFollower: number[] = [];
    leader.n.onMessage((from) => atLeader.push(from));
    follower.n.onMessage((from) => atFollower.push(from));
    follower.n.send(1, 0, msg(1));
    await until(() => atLeader.length === 1);
    leader.n.send(9, 0, msg(2)); // via the address the follower announced in its hello
    await until(() => atFollower.length === 1);
    expect(atLeader).toEqual([9]);
    expect(atFollower).toEqual([1]);
  });

  it('survives garbage on a connection: the stream is cut, the process is fine', async () => {
    const b = await node(2, { 1: { host: '127.0.0.1', port: 1 } });
    const raw = net.connect(b.addr.port, '127.0.0.1');
    const closed = new Promise((r) => raw.once('close', r));
    raw.on('error', () => {});
    await new Promise((r) => raw.once('connect', r));
    raw.write(
      encodeHello({ clusterId: 'test', nodeId: 1, listenHost: '127.0.0.1', listenPort: 1 }),
    );
    const got: Message[] = [];
    b.n.onMessage((_f, _g, m) => got.push(m));
    const bad = encodeFrameBytes(0, msg(1));
    bad[bad.length - 1]! ^= 0xff; // CRC broken: frame dropped, stream still aligned
    raw.write(bad);
    // The same for a frame read in place (longer than a receive slab), then a good one.
    const badLong = encodeFrameBytes(0, msg(2, new Uint8Array(300_000).fill(5)));
    badLong[badLong.length - 1]! ^= 0xff;
    raw.write(badLong);
    raw.write(encodeFrameBytes(0, msg(3, new Uint8Array(300_000).fill(6))));
    await until(() => got.length === 1);
    const huge = Buffer.alloc(8);
    huge.writeUInt32LE(0xfffffff0, 0); // a length prefix beyond the maximum: connection cut
    raw.write(huge);
    await until(
      () =>
        (b.n.counters().drops['E_BAD_CRC'] ?? 0) === 2 &&
        (b.n.counters().drops['E_FRAME_TOO_LARGE'] ?? 0) === 1,
    );
    await closed; // the node cut the connection
    const m = got[0]!;
    if (m.kind !== 'paxos') throw new Error('not a paxos message');
    expect(m.msg.instanceId).toBe(3);
    expect(m.msg.value.every((x) => x === 6)).toBe(true);
    expect(b.n.counters().inPlaceConnections).toBe(1); // the reads went into frame buffers
  });

  it('with mutual TLS, only holders of a cluster certificate get in', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tspaxos-tls-'));
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    ssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '1',
      '-subj',
      '/CN=tspaxos-test-ca',
    );
    for (const name of ['a', 'b', 'rogue']) {
      ssl(
        'req',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.csr`,
        '-subj',
        `/CN=${name}`,
      );
    }
    for (const name of ['a', 'b']) {
      ssl(
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-out',
        `${name}.pem`,
        '-days',
        '1',
      );
    }
    ssl(
      'x509',
      '-req',
      '-in',
      'rogue.csr',
      '-signkey',
      'rogue.key',
      '-out',
      'rogue.pem',
      '-days',
      '1',
    ); // self-signed
    const read = (f: string) => readFileSync(join(dir, f));
    const tlsOf = (name: string) => ({
      ca: read('ca.pem'),
      cert: read(`${name}.pem`),
      key: read(`${name}.key`),
    });
    const b = await node(2, {}, { tls: tlsOf('b') });
    const got: number[] = [];
    b.n.onMessage((from) => got.push(from));
    const a = await node(1, { 2: b.addr }, { tls: tlsOf('a') });
    const rogue = await node(3, { 2: b.addr }, { tls: tlsOf('rogue') });
    const plain = await node(4, { 2: b.addr });
    a.n.send(2, 0, msg(1));
    rogue.n.send(2, 0, msg(2));
    plain.n.send(2, 0, msg(3));
    await until(() => got.length === 1 && (b.n.counters().drops['tls-rejected'] ?? 0) >= 2);
    expect(got).toEqual([1]);
    expect(b.n.counters().inPlaceConnections).toBe(0); // TLS: from Node's read buffers
    rmSync(dir, { recursive: true, force: true });
  }, 30_000);
});
