import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkpointMsg,
  concatChunks,
  decodeFrame,
  decodeHello,
  encodeFrame,
  encodeFrameBytes,
  encodeHello,
  FrameReader,
  MAX_FRAME_BYTES,
  maxPaxosValueBytes,
  type Message,
  PAXOS_FRAME_OVERHEAD_MAX_BYTES,
  paxosMsg,
  PaxosMsgType,
  TransportError,
} from './index';

const id = fc.oneof(fc.nat({ max: 1000 }), fc.maxSafeNat());
const u32 = fc.nat({ max: 0xffffffff });
const bytes = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.uint8Array({ minLength: 17_000, maxLength: 20_000 }),
);

const paxosArb: fc.Arbitrary<Message> = fc
  .record({
    msgType: fc.integer({ min: 1, max: 13 }),
    instanceId: id,
    nodeId: id,
    proposalId: id,
    proposalNodeId: id,
    value: bytes,
    preAcceptId: id,
    preAcceptNodeId: id,
    rejectByPromiseId: id,
    nowInstanceId: id,
    minChosenInstanceId: id,
    lastChecksum: u32,
    flag: u32,
    systemVariables: fc.uint8Array({ maxLength: 32 }),
    masterVariables: fc.uint8Array({ maxLength: 32 }),
  })
  .map((msg) => ({ kind: 'paxos' as const, msg }));

const checkpointArb: fc.Arbitrary<Message> = fc
  .record({
    msgType: fc.integer({ min: 1, max: 2 }),
    nodeId: id,
    flag: fc.integer({ min: 0, max: 3 }),
    uuid: id,
    sequence: id,
    checkpointInstanceId: id,
    checksum: u32,
    filePath: fc.string({ maxLength: 100 }),
    smId: u32,
    offset: id,
    buffer: bytes,
  })
  .map((msg) => ({ kind: 'checkpoint' as const, msg }));

const normal = (m: Message) =>
  JSON.parse(JSON.stringify(m, (_k, v) => (v instanceof Uint8Array ? [...v] : v)));

describe('frame codec', () => {
  it('round-trips every message (property)', () => {
    fc.assert(
      fc.property(fc.oneof(paxosArb, checkpointArb), u32, (message, group) => {
        const decoded = decodeFrame(encodeFrameBytes(group, message));
        expect(decoded.ok).toBe(true);
        if (!decoded.ok) return;
        expect(decoded.value.group).toBe(group);
        expect(normal(decoded.value.message)).toEqual(normal(message));
      }),
      { numRuns: 300 },
    );
  });

  it('passes big byte fields by reference and returns them as views of the frame', () => {
    const value = new Uint8Array(100 * 1024).fill(7);
    const chunks = encodeFrame(3, {
      kind: 'paxos',
      msg: paxosMsg({ msgType: PaxosMsgType.SendLearnValue, value }),
    });
    expect(chunks).toContain(value); // not copied into the frame
    const frame = concatChunks(chunks);
    const decoded = decodeFrame(frame);
    expect(
      decoded.ok &&
        decoded.value.message.kind === 'paxos' &&
        decoded.value.message.msg.value.buffer,
    ).toBe(frame.buffer);
  });

  it('rejects every truncation and every single-bit flip, and never throws', () => {
    const frame = encodeFrameBytes(1, {
      kind: 'paxos',
      msg: paxosMsg({
        msgType: PaxosMsgType.Accept,
        instanceId: 42,
        nodeId: 2,
        proposalId: 7,
        value: new TextEncoder().encode('value'),
      }),
    });
    for (let len = 0; len < frame.length; len++) {
      const r = decodeFrame(frame.subarray(0, len));
      expect(r.ok, `prefix ${len}`).toBe(false);
    }
    for (let bit = 0; bit < frame.length * 8; bit++) {
      const flipped = frame.slice();
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      const r = decodeFrame(flipped);
      expect(r.ok, `bit ${bit}`).toBe(false);
      if (!r.ok) expect(r.error).toBeInstanceOf(TransportError);
    }
  });

  it('turns random bytes into errors, never a throw or a message', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (junk) => {
        const r = decodeFrame(junk);
        return !r.ok;
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses unknown commands, message types, unsafe integers and oversize frames', () => {
    const ok = encodeFrameBytes(0, { kind: 'paxos', msg: paxosMsg({ msgType: 5 }) });
    const unknownType = encodeFrameBytes(0, { kind: 'paxos', msg: paxosMsg({ msgType: 99 }) });
    expect(decodeFrame(ok).ok).toBe(true);
    const r = decodeFrame(unknownType);
    expect(!r.ok && r.error.code).toBe('E_UNKNOWN_MSG_TYPE');
    expect(() =>
      encodeFrame(
        0,
        { kind: 'paxos', msg: paxosMsg({ msgType: 6, value: new Uint8Array(2048) }) },
        1024,
      ),
    ).toThrow(expect.objectContaining({ code: 'E_FRAME_TOO_LARGE' }));
    const big = decodeFrame(
      encodeFrameBytes(0, {
        kind: 'paxos',
        msg: paxosMsg({ msgType: 6, value: new Uint8Array(2048) }),
      }),
      1024,
    );
    expect(!big.ok && big.error.code).toBe('E_FRAME_TOO_LARGE');
    // A checkpoint path that is not a string.
    const badPath = decodeFrame(
      encodeFrameBytes(0, {
        kind: 'checkpoint',
        msg: checkpointMsg({ msgType: 1, filePath: 5 as unknown as string }),
      }),
    );
    expect(!badPath.ok && badPath.error.code).toBe('E_BAD_FIELD');
    // An id above 2^53 from a foreign encoder.
    const unsafe = decodeFrame(
      encodeFrameBytes(0, { kind: 'paxos', msg: paxosMsg({ msgType: 5, instanceId: 2 ** 60 }) }),
    );
    expect(!unsafe.ok && unsafe.error.code).toBe('E_UNSAFE_INTEGER');
  });

  it('encodes and checks the hello', () => {
    const hello = { clusterId: 'c1', nodeId: 3, listenHost: '127.0.0.1', listenPort: 7103 };
    const r = decodeHello(encodeHello(hello));
    expect(r.ok && r.value).toEqual(hello);
    const notHello = decodeHello(
      encodeFrameBytes(0, { kind: 'paxos', msg: paxosMsg({ msgType: 5 }) }),
    );
    expect(!notHello.ok && notHello.error.code).toBe('E_NO_HANDSHAKE');
  });
});

describe('FrameReader', () => {
  it('reassembles frames from any split of the stream', () => {
    const frames = Array.from({ length: 20 }, (_, i) =>
      encodeFrameBytes(i, {
        kind: 'paxos',
        msg: paxosMsg({ msgType: 6, instanceId: i, value: new Uint8Array(i * 37) }),
      }),
    );
    const stream = concatChunks(frames);
    fc.assert(
      fc.property(fc.array(fc.nat({ max: stream.length }), { maxLength: 30 }), (cuts) => {
        const points = [...new Set([0, ...cuts, stream.length])].sort((a, b) => a - b);
        const reader = new FrameReader();
        const out: number[] = [];
        for (let i = 1; i < points.length; i++) {
          const r = reader.push(stream.slice(points[i - 1], points[i]));
          if (r.error) return false;
          for (const f of r.frames) {
            const d = decodeFrame(f);
            if (!d.ok) return false;
            out.push(d.value.group);
          }
        }
        return out.join() === frames.map((_, i) => i).join();
      }),
    );
  });

  it('refuses a length prefix over the maximum before buffering the frame', () => {
    const reader = new FrameReader(1024);
    const header = new Uint8Array(8);
    new DataView(header.buffer).setUint32(0, 10_000_000, true);
    const r = reader.push(header);
    expect(r.frames).toEqual([]);
    expect(r.error?.code).toBe('E_FRAME_TOO_LARGE');
  });
});

describe('PAXOS_FRAME_OVERHEAD_MAX_BYTES', () => {
  // Every scalar at its widest (a float64 in msgpack): the overhead bound must still hold.
  const widest = (value: Uint8Array): Message => ({
    kind: 'paxos',
    msg: paxosMsg({
      msgType: PaxosMsgType.Accept,
      instanceId: Number.MAX_SAFE_INTEGER,
      nodeId: Number.MAX_SAFE_INTEGER,
      proposalId: Number.MAX_SAFE_INTEGER,
      proposalNodeId: Number.MAX_SAFE_INTEGER,
      preAcceptId: Number.MAX_SAFE_INTEGER,
      preAcceptNodeId: Number.MAX_SAFE_INTEGER,
      rejectByPromiseId: Number.MAX_SAFE_INTEGER,
      nowInstanceId: Number.MAX_SAFE_INTEGER,
      minChosenInstanceId: Number.MAX_SAFE_INTEGER,
      lastChecksum: 0xffffffff,
      flag: 0xffffffff,
      value,
    }),
  });

  it('bounds the widest paxos frame: the largest value fits, within 16 B of the limit', () => {
    const max = maxPaxosValueBytes(64 * 1024);
    const frame = encodeFrameBytes(0xffffffff, widest(new Uint8Array(max)), 64 * 1024);
    expect(frame.length).toBeLessThanOrEqual(64 * 1024);
    expect(frame.length).toBeGreaterThanOrEqual(64 * 1024 - 16); // msgType, checksum, flag are u32s
    expect(decodeFrame(frame, 64 * 1024).ok).toBe(true);
    expect(maxPaxosValueBytes()).toBe(MAX_FRAME_BYTES - PAXOS_FRAME_OVERHEAD_MAX_BYTES);
  });
});
