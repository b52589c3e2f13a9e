// Every option is checked at construction: E_BAD_ARGUMENT naming the field and its range, never
// a network that runs with NaN limits or drops every frame.
import { describe, expect, it } from 'vitest';
import { SeededRandomSource } from '@tspaxos/core';
import { MemoryNetwork, type TransportError } from './index';
import { TcpNetwork, type TcpNetworkOptions } from './tcp';

const base: TcpNetworkOptions = {
  nodeId: 1,
  clusterId: 'c',
  listen: { host: '127.0.0.1', port: 0 },
};

function refusal(make: () => unknown): { code: string; message: string } {
  try {
    make();
  } catch (error) {
    const e = error as TransportError;
    return { code: e.code, message: e.message };
  }
  throw new Error('expected a refusal');
}

describe('TcpNetwork options', () => {
  it('accepts the defaults and a full valid set', () => {
    expect(() => new TcpNetwork(base)).not.toThrow();
    expect(
      () =>
        new TcpNetwork({
          ...base,
          peers: { 2: { host: 'h', port: 7102 } },
          maxFrameBytes: 1 << 20,
          queueMaxBytes: 1 << 20,
          reconnectMinMs: 10,
          reconnectMaxMs: 10,
        }),
    ).not.toThrow();
  });

  it.each<[Partial<TcpNetworkOptions> & Record<string, unknown>, RegExp]>([
    [{ nodeId: 0 }, /nodeId must be an integer in 1 … 9007199254740991, got 0/],
    [{ nodeId: 1.5 }, /nodeId must be an integer in 1 …/],
    [{ maxFrameBytes: Number.NaN }, /maxFrameBytes must be an integer in 1024 … 68157440, got NaN/],
    [{ maxFrameBytes: 100 * 1024 * 1024 }, /maxFrameBytes must be an integer in 1024 … 68157440/],
    [{ queueMaxBytes: -1 }, /queueMaxBytes must be an integer in 1 …/],
    [{ queueMaxBytes: 1024 }, /queueMaxBytes \(1024\) must be at least maxFrameBytes \(10485760\)/],
    [{ queueMaxAgeMs: 0 }, /queueMaxAgeMs must be an integer in 1 …/],
    [{ idleTimeoutMs: Infinity }, /idleTimeoutMs must be an integer in 1 … \d+, got Infinity/],
    [{ reconnectMinMs: 0 }, /reconnectMinMs must be an integer in 1 …/],
    [{ reconnectMinMs: 100, reconnectMaxMs: 50 }, /reconnectMaxMs \(50\) must be at least/],
    [{ clusterId: '' }, /clusterId must be a non-empty string/],
    [
      { listen: { host: '127.0.0.1', port: 70_000 } },
      /listen.port must be an integer in 0 … 65535/,
    ],
    [{ peers: { 0: { host: 'h', port: 1 } } }, /peers: node id must be an integer in 1 …/],
    [{ peers: { 2: { host: 'h', port: 0 } } }, /peers\[2\]\.port must be an integer in 1 … 65535/],
    [{ downQueueMaxFrames: -1 }, /downQueueMaxFrames must be an integer in 0 …/],
    [{ receivePoolBytes: -1 }, /receivePoolBytes must be an integer in 0 …/],
    [{ receivePoolBytes: 1.5 }, /receivePoolBytes must be an integer in 0 …/],
    [{ maxFrameByte: 1 }, /maxFrameByte is unknown/],
  ])('refuses %j', (extra, expected) => {
    const r = refusal(() => new TcpNetwork({ ...base, ...extra } as TcpNetworkOptions));
    expect(r.code).toBe('E_BAD_ARGUMENT');
    expect(r.message).toMatch(expected);
  });
});

describe('MemoryNetwork options', () => {
  const net = new MemoryNetwork({ rng: new SeededRandomSource(1) });

  it.each<[Record<string, unknown>, RegExp]>([
    [{ dropRate: 1.5 }, /dropRate must be a number in 0 … 1, got 1.5/],
    [{ duplicateRate: Number.NaN }, /duplicateRate must be a number in 0 … 1, got NaN/],
    [{ reorderRate: -0.1 }, /reorderRate must be a number in 0 … 1/],
    [{ delayMs: [5, 1] }, /delayMs must be \[min, max\] with 0 ≤ min ≤ max ms, got \[5,1\]/],
    [{ delayMs: [-1, 1] }, /delayMs must be \[min, max\]/],
    [{ dropRat: 0.1 }, /unknown MemoryNetwork link option dropRat/],
  ])('refuses the link %j', (link, expected) => {
    for (const set of [() => net.setDefaultLink(link), () => net.setLink(1, 2, link)]) {
      const r = refusal(set);
      expect(r.code).toBe('E_BAD_ARGUMENT');
      expect(r.message).toMatch(expected);
    }
  });

  it('refuses a missing rng and accepts a valid link', () => {
    expect(refusal(() => new MemoryNetwork({} as never)).code).toBe('E_BAD_ARGUMENT');
    expect(() => net.setLink(1, 2, { dropRate: 0, delayMs: [0, 3], reorderRate: 1 })).not.toThrow();
  });
});
