import { crc32, KNOWN_CRC_MIN_BYTES, knownCrc, rememberCrc } from '@tspaxos/crc-wasm';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import {
  checkpointMsg,
  concatChunks,
  decodeFrame,
  decodeHello,
  encodeFrame,
  encodeFrameBytes,
  encodeHello,
  ForwardFlag,
  forwardMsg,
  ForwardMsgType,
  FrameReader,
  MAX_FRAME_BYTES,
  maxPaxosValueBytes,
  type Message,
  PAXOS_FRAME_OVERHEAD_MAX_BYTES,
  paxosMsg,
  PaxosMsgType,
  TransportError,
} from './index';
import { RECEIVE_SLAB_BYTES } from './options';

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
    batch: fc.constant([]),
  })
  .map((msg) => ({ kind: 'paxos' as const, msg }));

const batchArb: fc.Arbitrary<Message> = fc
  .record({
    instanceId: fc.nat({ max: 2 ** 40 }),
    nodeId: id,
    lastChecksum: u32,
    batch: fc.array(
      fc.record({ proposalId: id, proposalNodeId: id, checksum: u32, value: bytes }),
      { minLength: 1, maxLength: 40 },
    ),
  })
  .map((f) => ({
    kind: 'paxos' as const,
    msg: paxosMsg({ msgType: PaxosMsgType.SendLearnValue, flag: 1, ...f }),
  }));

/** A frame with the given scalars and byte fields, laid out and sealed as the codec does. */
function rawFrame(scalars: unknown[], fields: Uint8Array[]): Uint8Array {
  const header = new Packr({ useRecords: false }).pack(scalars);
  const n = 16 + header.length + 4 + 4 * fields.length + fields.reduce((a, f) => a + f.length, 0);
  const out = new Uint8Array(n + 4);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, n, true);
  out[4] = 1;
  out[5] = 1;
  dv.setUint32(12, header.length, true);
  out.set(header, 16);
  let at = 16 + header.length;
  dv.setUint32(at, fields.length, true);
  at += 4;
  for (const f of fields) {
    dv.setUint32(at, f.length, true);
    at += 4;
  }
  for (const f of fields) {
    out.set(f, at);
    at += f.length;
  }
  dv.setUint32(at, crc32(out.subarray(4, at)), true);
  return out;
}

const scalars = (msgType: number, instanceId = 0) => [
  msgType,
  instanceId,
  1,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
];

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

const forwardArb: fc.Arbitrary<Message> = fc
  .record({
    msgType: fc.integer({ min: 1, max: 6 }),
    requestId: id,
    nodeId: id,
    smId: u32,
    timeoutMs: id,
    flag: u32,
    instanceId: id,
    batchIndex: id,
    identityNodeId: id,
    identityIncarnation: u32,
    identitySequence: id,
    errorCode: fc.string({ maxLength: 64 }),
    errorMessage: fc.string({ maxLength: 200 }),
    value: bytes,
    result: fc.uint8Array({ maxLength: 64 }),
  })
  .map((msg) => ({ kind: 'forward' as const, msg }));

const normal = (m: Message) =>
  JSON.parse(JSON.stringify(m, (_k, v) => (v instanceof Uint8Array ? [...v] : v)));

describe('frame codec', () => {
  it('round-trips every message (property)', () => {
    fc.assert(
      fc.property(fc.oneof(paxosArb, checkpointArb, forwardArb), u32, (message, group) => {
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

  it('refuses every malformed forwarding frame with a code', () => {
    const good = forwardMsg({ msgType: ForwardMsgType.ForwardPropose, requestId: 7, nodeId: 2 });
    const forward = (fields: Partial<typeof good>) =>
      decodeFrame(encodeFrameBytes(0, { kind: 'forward', msg: { ...good, ...fields } }));
    const ok = forward({});
    expect(ok.ok && ok.value.message).toEqual({ kind: 'forward', msg: good });
    const code = (r: ReturnType<typeof decodeFrame>) => (!r.ok ? r.error.code : 'ok');
    expect(code(forward({ msgType: 9 }))).toBe('E_UNKNOWN_MSG_TYPE');
    expect(code(forward({ msgType: ForwardMsgType.QuorumReadIndexReply + 1 }))).toBe(
      'E_UNKNOWN_MSG_TYPE',
    );
    // The quorum read pair (issue 22) decodes, its Accepted flag with it.
    const position = forward({
      msgType: ForwardMsgType.QuorumReadIndexReply,
      instanceId: 41,
      flag: ForwardFlag.Accepted,
    });
    expect(position.ok && position.value.message).toEqual({
      kind: 'forward',
      msg: { ...good, msgType: ForwardMsgType.QuorumReadIndexReply, instanceId: 41, flag: 4 },
    });
    expect(code(forward({ requestId: 2 ** 60 }))).toBe('E_UNSAFE_INTEGER');
    expect(code(forward({ requestId: -1 }))).toBe('E_UNSAFE_INTEGER');
    expect(code(forward({ errorCode: 'x'.repeat(65) }))).toBe('E_BAD_FIELD');
    expect(code(forward({ errorMessage: 5 as unknown as string }))).toBe('E_BAD_FIELD');
    expect(code(forward({ smId: 2 ** 33 }))).toBe('E_BAD_FIELD');
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

describe('SendLearnValue batches', () => {
  it('round-trips batches of small and large values (property)', () => {
    fc.assert(
      fc.property(batchArb, u32, (message, group) => {
        const decoded = decodeFrame(encodeFrameBytes(group, message));
        expect(decoded.ok).toBe(true);
        if (!decoded.ok) return;
        expect(normal(decoded.value.message)).toEqual(normal(message));
      }),
      { numRuns: 60 },
    );
  });

  it('copies small values of a large batch into shared chunks, keeps large ones by reference', () => {
    const big = new Uint8Array(64 * 1024).fill(3);
    const small = Array.from({ length: 300 }, (_, i) => new Uint8Array(100).fill(i));
    const entry = (value: Uint8Array) => ({ proposalId: 1, proposalNodeId: 1, checksum: 9, value });
    const chunks = encodeFrame(0, {
      kind: 'paxos',
      msg: paxosMsg({
        msgType: PaxosMsgType.SendLearnValue,
        batch: [...small.map(entry), entry(big), ...small.map(entry)],
      }),
    });
    expect(chunks).toContain(big);
    // head + (30 KiB of small values in 16 KiB runs) × 2 + big + trailer: far fewer than 602.
    expect(chunks.length).toBeLessThan(10);
  });

  it('hands out the CRC of each large value it checked, and uses a known one on encode', () => {
    const big = (seed: number) =>
      new Uint8Array(KNOWN_CRC_MIN_BYTES + 100).map((_, i) => (i * seed) & 0xff);
    const values = [big(3), new Uint8Array(100).fill(1), big(5), big(7)];
    const entry = (value: Uint8Array) => ({ proposalId: 1, proposalNodeId: 1, checksum: 9, value });
    const message: Message = {
      kind: 'paxos',
      msg: paxosMsg({ msgType: PaxosMsgType.SendLearnValue, batch: values.map(entry) }),
    };
    const frame = encodeFrameBytes(3, message);
    const decoded = decodeFrame(frame);
    expect(decoded.ok).toBe(true);
    if (!decoded.ok || decoded.value.message.kind !== 'paxos') return;
    const got = decoded.value.message.msg.batch.map((e) => e.value);
    expect(got).toEqual(values);
    // Large values: their CRC is known, and right; the small one is not recorded.
    expect(got.map((v) => knownCrc(v))).toEqual([
      crc32(values[0]!),
      undefined,
      crc32(values[2]!),
      crc32(values[3]!),
    ]);
    // A flipped byte in a large value, in the small one, or in a field length: E_BAD_CRC.
    for (const at of [frame.length - 10, frame.length - 3 * values[3]!.length, 40]) {
      const bad = frame.slice();
      bad[at]! ^= 0x10;
      const r = decodeFrame(bad);
      expect(r.ok ? 'ok' : r.error.code).toBe('E_BAD_CRC');
    }
    // Encoding takes a known CRC as it is: a value whose recorded CRC is wrong (planted) makes
    // a frame the peer refuses, never one it accepts with other bytes.
    // (a value large enough that the frame is not coalesced: 20 KiB)
    const planted = new Uint8Array(20 * 1024).fill(11);
    rememberCrc(planted, crc32(planted) ^ 1);
    const r = decodeFrame(
      encodeFrameBytes(3, {
        kind: 'paxos',
        msg: paxosMsg({ msgType: PaxosMsgType.SendLearnValue, batch: [entry(planted)] }),
      }),
    );
    expect(r.ok ? 'ok' : r.error.code).toBe('E_BAD_CRC');
  });

  const table = (entries: number[][]) => {
    const t = new Uint8Array(entries.length * 20);
    const dv = new DataView(t.buffer);
    entries.forEach(([p, n, c], i) => {
      dv.setUint32(i * 20, p!, true);
      dv.setUint32(i * 20 + 4, 0, true);
      dv.setUint32(i * 20 + 8, n!, true);
      dv.setUint32(i * 20 + 16, c!, true);
    });
    return t;
  };
  const E = new Uint8Array(0);

  it('decodes a hand-made batch frame and refuses every malformed one with a code', () => {
    const v = new Uint8Array([1, 2, 3]);
    const good = decodeFrame(rawFrame(scalars(6, 10), [E, E, E, table([[5, 2, 77]]), v]));
    expect(good.ok && good.value.message.kind === 'paxos' && good.value.message.msg.batch).toEqual([
      { proposalId: 5, proposalNodeId: 2, checksum: 77, value: v },
    ]);
    const code = (f: Uint8Array) => {
      const r = decodeFrame(f);
      return r.ok ? 'ok' : r.error.code;
    };
    // Table describes two values, one is there.
    expect(
      code(
        rawFrame(scalars(6), [
          E,
          E,
          E,
          table([
            [1, 1, 1],
            [2, 1, 1],
          ]),
          v,
        ]),
      ),
    ).toBe('E_BAD_FIELD');
    // A table and no value.
    expect(code(rawFrame(scalars(6), [E, E, E, table([])]))).toBe('E_BAD_FIELD');
    // A batch on another message type.
    expect(code(rawFrame(scalars(3), [E, E, E, table([[1, 1, 1]]), v]))).toBe('E_BAD_FIELD');
    // A proposal id above 2^53.
    const unsafe = table([[1, 1, 1]]);
    new DataView(unsafe.buffer).setUint32(4, 0x200000, true);
    expect(code(rawFrame(scalars(6), [E, E, E, unsafe, v]))).toBe('E_UNSAFE_INTEGER');
    // A batch whose last instance id is not a safe integer.
    expect(
      code(
        rawFrame(scalars(6, Number.MAX_SAFE_INTEGER), [
          E,
          E,
          E,
          table([
            [1, 1, 1],
            [1, 1, 1],
          ]),
          v,
          v,
        ]),
      ),
    ).toBe('E_UNSAFE_INTEGER');
    // More byte fields than the largest batch.
    const many = Array.from({ length: 16_384 + 1 }, () => v);
    expect(code(rawFrame(scalars(6), [E, E, E, table(many.map(() => [1, 1, 1])), ...many]))).toBe(
      'E_BAD_FIELD',
    );
  });

  it('refuses to encode a batch on another type or one over the wire limit', () => {
    const entry = { proposalId: 1, proposalNodeId: 1, checksum: 0, value: E };
    expect(() =>
      encodeFrame(0, { kind: 'paxos', msg: paxosMsg({ msgType: 3, batch: [entry] }) }),
    ).toThrow(expect.objectContaining({ code: 'E_BAD_FIELD' }));
    const tooMany = Array.from({ length: 16_385 }, () => entry);
    expect(() =>
      encodeFrame(0, { kind: 'paxos', msg: paxosMsg({ msgType: 6, batch: tooMany }) }),
    ).toThrow(expect.objectContaining({ code: 'E_BAD_FIELD' }));
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

  it('assembles frames longer than a read in place, byte for byte, whatever the reads', () => {
    const sizes = [200_000, 3, 70_000, 0, 65_536, 1_000];
    const values = sizes.map((n, i) =>
      Uint8Array.from({ length: n }, (_, k) => (k * 13 + i) & 0xff),
    );
    const frames = values.map((value, i) =>
      encodeFrameBytes(i, { kind: 'paxos', msg: paxosMsg({ msgType: 6, instanceId: i, value }) }),
    );
    const stream = concatChunks(frames);
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 90_000 }), { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        (reads, trusted) => {
          const reader = new FrameReader();
          if (trusted) reader.trustPeer();
          const got: Uint8Array[] = [];
          for (let at = 0, r = 0; at < stream.length; r++) {
            const n = reads[r % reads.length]!;
            const out = reader.push(stream.slice(at, at + n));
            expect(out.error).toBeUndefined();
            got.push(...out.frames);
            at += n;
          }
          expect(got.length).toBe(frames.length);
          got.forEach((f, i) => {
            const d = decodeFrame(f);
            if (!d.ok || d.value.message.kind !== 'paxos')
              throw new Error(`frame ${i} did not decode`);
            expect(d.value.group).toBe(i);
            expect(Buffer.from(d.value.message.msg.value).equals(Buffer.from(values[i]!))).toBe(
              true,
            );
          });
        },
      ),
      { numRuns: 50 },
    );
  });

  it('allocates a long frame from its length prefix only once the peer is trusted', () => {
    const frame = encodeFrameBytes(0, {
      kind: 'paxos',
      msg: paxosMsg({ msgType: 6, value: new Uint8Array(1024 * 1024) }),
    });
    const stranger = new FrameReader();
    expect(stranger.push(frame.slice(0, 100)).frames).toEqual([]);
    expect(stranger.heldBytes).toBe(100); // only what arrived
    const peer = new FrameReader();
    peer.trustPeer();
    expect(peer.push(frame.slice(0, 100)).frames).toEqual([]);
    expect(peer.heldBytes).toBe(frame.length); // the whole frame, filled as it arrives
    for (const reader of [stranger, peer]) {
      const { frames } = reader.push(frame.slice(100));
      expect(frames.length).toBe(1);
      expect(Buffer.from(frames[0]!).equals(Buffer.from(frame))).toBe(true);
      expect(reader.heldBytes).toBe(0);
    }
  });

  /**
   * Feeds `stream` to `reader` as a socket with `onread` does: each read writes into the buffer
   * readBuffer() gave, at most `reads[r]` bytes (cycling) and never more than that buffer. Each
   * frame returned is checked later against a copy taken when it was returned (aliasing).
   */
  function readAll(reader: FrameReader, stream: Uint8Array, reads: readonly number[]) {
    const got: { frame: Uint8Array; copy: Uint8Array }[] = [];
    for (let at = 0, r = 0; at < stream.length; r++) {
      const into = reader.readBuffer();
      if (into.length === 0) throw new Error('an empty read buffer');
      const n = Math.min(into.length, reads[r % reads.length]!, stream.length - at);
      into.set(stream.subarray(at, at + n));
      at += n;
      const out = reader.read(n);
      if (out.error !== undefined) throw out.error;
      for (const frame of out.frames) got.push({ frame, copy: frame.slice() });
    }
    return got;
  }

  function checkFrames(
    got: { frame: Uint8Array; copy: Uint8Array }[],
    values: readonly Uint8Array[],
  ): void {
    expect(got.length).toBe(values.length);
    got.forEach(({ frame, copy }, i) => {
      // Still the bytes it had when it was handed out: no later read wrote over it.
      expect(Buffer.from(frame).equals(Buffer.from(copy))).toBe(true);
      const d = decodeFrame(frame);
      if (!d.ok || d.value.message.kind !== 'paxos') throw new Error(`frame ${i} did not decode`);
      expect(d.value.group).toBe(i);
      expect(Buffer.from(d.value.message.msg.value).equals(Buffer.from(values[i]!))).toBe(true);
    });
  }

  const patterned = (sizes: readonly number[]) =>
    sizes.map((n, i) => Uint8Array.from({ length: n }, (_, k) => (k * 13 + i) & 0xff));
  const streamOf = (values: readonly Uint8Array[]) =>
    concatChunks(
      values.map((value, i) =>
        encodeFrameBytes(i, {
          kind: 'paxos',
          msg: paxosMsg({ msgType: 6, instanceId: i, value }),
        }),
      ),
    );

  it('reading into its own buffers, a stream split at every byte boundary decodes the same', () => {
    // Small frames: every single cut point of the stream, each as two reads.
    const small = patterned([0, 1, 300, 2_000, 17, 3_000]);
    const stream = streamOf(small);
    for (const trusted of [false, true]) {
      for (let cut = 1; cut < stream.length; cut++) {
        const reader = new FrameReader();
        if (trusted) reader.trustPeer();
        checkFrames(readAll(reader, stream, [cut, stream.length]), small);
      }
    }
    // Long frames too: one byte per read is a cut at every boundary at once.
    const long = patterned([70_000, 3, 300_000, 0, 1_000]);
    for (const trusted of [false, true]) {
      const reader = new FrameReader();
      if (trusted) reader.trustPeer();
      checkFrames(readAll(reader, streamOf(long), [1]), long);
    }
  }, 120_000);

  it('reading into its own buffers: any reads, and no frame handed out is written to later', () => {
    // Sizes around the slab (64 KiB) and the least read (16 KiB), so frames straddle slabs.
    const values = patterned([
      200_000, 3, 70_000, 0, 65_536, 1_000, 15_000, 40, 50_000, 60_000, 5, 300_000, 2, 16_500,
      63_000, 2,
    ]);
    const stream = streamOf(values);
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 100_000 }), { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        (reads, trusted) => {
          const reader = new FrameReader();
          if (trusted) reader.trustPeer();
          checkFrames(readAll(reader, stream, reads), values);
          expect(reader.heldBytes).toBe(0);
        },
      ),
      { numRuns: 40 },
    );
  }, 120_000);

  it('reads the rest of a long frame from a trusted peer into the frame itself', () => {
    const value = new Uint8Array(1024 * 1024).fill(7);
    const frame = encodeFrameBytes(0, { kind: 'paxos', msg: paxosMsg({ msgType: 6, value }) });
    const reader = new FrameReader();
    reader.trustPeer();
    const first = reader.readBuffer();
    first.set(frame.subarray(0, 100));
    expect(reader.read(100).frames).toEqual([]);
    expect(reader.heldBytes).toBe(frame.length);
    const rest = reader.readBuffer(); // the frame's own buffer, from byte 100 on
    expect(rest.length).toBe(frame.length - 100);
    rest.set(frame.subarray(100));
    const { frames } = reader.read(rest.length);
    expect(frames.length).toBe(1);
    expect(frames[0]!.buffer).toBe(rest.buffer);
    expect(Buffer.from(frames[0]!).equals(Buffer.from(frame))).toBe(true);
    expect(decodeFrame(frames[0]!).ok).toBe(true);
    // The next frame's length prefix is read alone, so a long one lands in place from byte 4.
    expect(reader.readBuffer().length).toBe(4);
  });

  it('a short frame between two long ones is read without copying the next long one out of the slab', () => {
    // 100 KiB Accepts with a ProposerSendSuccess between them, the socket giving all it is asked.
    const values = patterned([102_400, 100, 102_400, 100, 102_400, 0, 102_400]);
    const reader = new FrameReader();
    reader.trustPeer();
    checkFrames(readAll(reader, streamOf(values), [1 << 30]), values);
    // The first frame's start (one slab read before any frame was seen: 64 KiB) and the length
    // prefixes only; reading on to the slab's end after each short frame copied 261,797 bytes.
    expect(reader.copiedBytes).toBeLessThan(RECEIVE_SLAB_BYTES + 1024);
  });

  it('a long frame read in place and corrupted in transit fails its CRC', () => {
    const values = patterned([300_000, 50_000]);
    const stream = streamOf(values);
    for (const at of [30, 100_000, 299_000, stream.length - 2]) {
      const bad = stream.slice();
      bad[at]! ^= 0x10;
      for (const reads of [[1 << 20], [7_000], [64_000, 1]]) {
        const reader = new FrameReader();
        reader.trustPeer();
        const got = readAll(reader, bad, reads);
        const codes = got.map(({ frame }) => {
          const d = decodeFrame(frame);
          return d.ok ? 'ok' : d.error.code;
        });
        expect(codes).toContain('E_BAD_CRC');
        expect(codes.filter((c) => c === 'ok').length).toBe(1);
      }
    }
  });

  it('reading into its own buffers, refuses a bad length prefix with its code', () => {
    for (const [length, code] of [
      [10_000_000, 'E_FRAME_TOO_LARGE'],
      [3, 'E_TRUNCATED'],
    ] as const) {
      const reader = new FrameReader(1024);
      reader.trustPeer();
      const into = reader.readBuffer();
      new DataView(into.buffer, into.byteOffset).setUint32(0, length, true);
      const r = reader.read(8);
      expect(r.frames).toEqual([]);
      expect(r.error?.code).toBe(code);
      expect(reader.heldBytes).toBe(0);
    }
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
