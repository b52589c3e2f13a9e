import { describe, expect, it } from 'vitest';
import { SeededRandomSource } from '@tspaxos/core';
import { MAX_FRAME_BYTES, MemoryNetwork, paxosMsg } from './index';

function run(seed: number) {
  const net = new MemoryNetwork({ rng: new SeededRandomSource(seed), keepTrace: true });
  const got: string[] = [];
  const nodes = [1, 2, 3].map((id) => {
    const e = net.endpoint(id);
    e.onMessage((from, group, m) =>
      got.push(`${from}>${id} g${group} ${m.kind === 'paxos' ? m.msg.instanceId : -1}`),
    );
    return e;
  });
  net.setDefaultLink({ delayMs: [1, 20] });
  net.setLink(1, 2, { dropRate: 0.2, duplicateRate: 0.2, reorderRate: 0.3 });
  let now = 0;
  for (let i = 0; i < 300; i++) {
    now += 1;
    net.setTime(now);
    nodes[i % 3]!.send(((i + 1) % 3) + 1, 0, {
      kind: 'paxos',
      msg: paxosMsg({ msgType: 6, instanceId: i }),
    });
    if (i === 100) net.partition([[1], [2, 3]]);
    if (i === 200) net.heal();
    net.deliverDue(now);
  }
  while (net.nextDeliveryAt() !== undefined) net.deliverNext(net.nextDeliveryAt()!);
  return { got, trace: net.trace(), digest: net.traceDigest(), drops: net.drops };
}

describe('MemoryNetwork', () => {
  it('gives the same delivery trace for the same seed, byte for byte', () => {
    const a = run(42);
    const b = run(42);
    expect(a.trace).toEqual(b.trace);
    expect(a.digest).toEqual(b.digest);
    expect(a.got.length).toBeGreaterThan(100);
    expect(run(43).digest).not.toEqual(a.digest);
  });

  it('drops, duplicates and partitions as told, and counts it', () => {
    const { drops, got } = run(7);
    expect(drops['link-drop']).toBeGreaterThan(0);
    expect(drops['partition']).toBeGreaterThan(0);
    const dup = new Set<string>();
    let duplicates = 0;
    for (const g of got) {
      if (dup.has(g)) duplicates++;
      else dup.add(g);
    }
    expect(duplicates).toBeGreaterThan(0);
  });

  it('keeps a link in order unless it is told to reorder', () => {
    const net = new MemoryNetwork({ rng: new SeededRandomSource(1) });
    const seen: number[] = [];
    net.endpoint(2).onMessage((_f, _g, m) => m.kind === 'paxos' && seen.push(m.msg.instanceId));
    net.setDefaultLink({ delayMs: [1, 50] });
    for (let i = 0; i < 200; i++)
      net.endpoint(1).send(2, 0, { kind: 'paxos', msg: paxosMsg({ msgType: 6, instanceId: i }) });
    while (net.nextDeliveryAt() !== undefined) net.deliverNext(net.nextDeliveryAt()!);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(seen).toHaveLength(200);
  });

  it('flips bits on the wire when told: the codec rejects every such frame and the drop is counted', () => {
    const net = new MemoryNetwork({ rng: new SeededRandomSource(3) });
    const seen: number[] = [];
    net.endpoint(2).onMessage((_f, _g, m) => m.kind === 'paxos' && seen.push(m.msg.instanceId));
    net.setLink(1, 2, { corruptRate: 0.5 });
    for (let i = 0; i < 400; i++)
      net.endpoint(1).send(2, 0, { kind: 'paxos', msg: paxosMsg({ msgType: 6, instanceId: i }) });
    while (net.nextDeliveryAt() !== undefined) net.deliverNext(net.nextDeliveryAt()!);
    const decoderDrops = Object.entries(net.drops)
      .filter(([reason]) => reason.startsWith('E_'))
      .reduce((sum, [, n]) => sum + n, 0);
    expect(net.corrupted).toBeGreaterThan(100);
    expect(decoderDrops).toBe(net.corrupted);
    expect(seen).toHaveLength(400 - net.corrupted);
  });

  it('cuts one way only until heal()', () => {
    const net = new MemoryNetwork({ rng: new SeededRandomSource(4) });
    const seen: string[] = [];
    for (const id of [1, 2]) net.endpoint(id).onMessage((from) => seen.push(`${from}>${id}`));
    const msg = { kind: 'paxos' as const, msg: paxosMsg({ msgType: 6, instanceId: 1 }) };
    const flush = () => {
      while (net.nextDeliveryAt() !== undefined) net.deliverNext(net.nextDeliveryAt()!);
    };
    net.cutOneWay(1, 2);
    net.endpoint(1).send(2, 0, msg);
    net.endpoint(2).send(1, 0, msg);
    flush();
    expect(seen).toEqual(['2>1']);
    expect(net.drops['partition']).toBe(1);
    net.heal();
    net.endpoint(1).send(2, 0, msg);
    flush();
    expect(seen).toEqual(['2>1', '1>2']);
  });
});

describe('MemoryNetwork send errors', () => {
  it('counts a frame too large to send as a drop (E_FRAME_TOO_LARGE), and throws any other encode error', () => {
    const net = new MemoryNetwork({ rng: new SeededRandomSource(5) });
    const big = paxosMsg({ msgType: 6, instanceId: 1, value: new Uint8Array(MAX_FRAME_BYTES) });
    net.endpoint(1).send(2, 0, { kind: 'paxos', msg: big });
    expect(net.drops['E_FRAME_TOO_LARGE']).toBe(1);
    expect(net.inFlightCount).toBe(0);
    const broken = { kind: 'paxos', msg: null }; // a bug of the caller, not a network condition
    expect(() => net.endpoint(1).send(2, 0, broken as never)).toThrow(TypeError);
  });
});
