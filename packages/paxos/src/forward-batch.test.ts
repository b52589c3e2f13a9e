// The batched forwarding frame's entries (forward-batch.ts): a round trip keeps every field, and
// every malformed batch decodes to undefined (the caller counts a drop), never throws.
import { forwardMsg, ForwardMsgType } from '@tspaxos/transport';
import { describe, expect, it } from 'vitest';
import {
  decodeForwardBatch,
  encodeForwardBatch,
  FORWARD_BATCH_MAX_ENTRIES,
  ForwardManyFlag,
} from './forward-batch';

const request = (i: number) =>
  forwardMsg({
    msgType: ForwardMsgType.ForwardPropose,
    nodeId: 2,
    requestId: 2 ** 51 + i,
    smId: 10,
    flag: 1,
    timeoutMs: 9999,
    value: new TextEncoder().encode(`value ${i}`),
  });

const reply = (i: number) =>
  forwardMsg({
    msgType: ForwardMsgType.ForwardReply,
    nodeId: 3,
    requestId: i,
    instanceId: 2 ** 40 + i,
    batchIndex: i + 1,
    identityNodeId: 3,
    identityIncarnation: 0xffffffff,
    identitySequence: 2 ** 52,
    errorCode: i % 2 === 0 ? '' : 'E_NOT_MASTER',
    errorMessage: i % 2 === 0 ? '' : 'node 3 does not hold the lease — ünïcode',
    flag: i % 2 === 0 ? 0 : 2,
    result: new Uint8Array([i, 1, 2]),
  });

describe('forward batch', () => {
  it('round-trips requests and replies field for field', () => {
    const requests = [0, 1, 2].map(request);
    expect(
      decodeForwardBatch(encodeForwardBatch(requests), ForwardMsgType.ForwardPropose, 2),
    ).toEqual(requests);
    const replies = [0, 1, 2, 3].map(reply);
    expect(decodeForwardBatch(encodeForwardBatch(replies), ForwardMsgType.ForwardReply, 3)).toEqual(
      replies,
    );
  });

  it('decodes a batch lying inside a larger buffer (a view of a received frame)', () => {
    const bytes = encodeForwardBatch([request(1), request(2)]);
    const frame = new Uint8Array(bytes.length + 13);
    frame.set(bytes, 7);
    const view = frame.subarray(7, 7 + bytes.length);
    expect(decodeForwardBatch(view, ForwardMsgType.ForwardPropose, 2)).toEqual([
      request(1),
      request(2),
    ]);
  });

  it('refuses every truncation, a trailing byte, no entries, too many, a nested batch flag', () => {
    const bytes = encodeForwardBatch([reply(0), reply(1)]);
    let refused = 0;
    for (let n = 0; n < bytes.length; n++)
      if (decodeForwardBatch(bytes.subarray(0, n), ForwardMsgType.ForwardReply, 3) === undefined)
        refused++;
    expect(refused).toBe(bytes.length);
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    expect(decodeForwardBatch(longer, ForwardMsgType.ForwardReply, 3)).toBeUndefined();
    expect(decodeForwardBatch(new Uint8Array(4), ForwardMsgType.ForwardReply, 3)).toBeUndefined();
    const many = encodeForwardBatch([reply(0)]);
    new DataView(many.buffer).setUint32(0, FORWARD_BATCH_MAX_ENTRIES + 1, true);
    expect(decodeForwardBatch(many, ForwardMsgType.ForwardReply, 3)).toBeUndefined();
    const nested = encodeForwardBatch([{ ...request(0), flag: ForwardManyFlag }]);
    expect(decodeForwardBatch(nested, ForwardMsgType.ForwardPropose, 2)).toBeUndefined();
  });

  it('refuses a string that is not UTF-8 or longer than its limit', () => {
    const bad = encodeForwardBatch([{ ...reply(1), errorCode: 'E_XX' }]);
    // errorCode's bytes follow the count, the entry's 3 u32 and 6 u64 fields and its u32 length.
    const at = 4 + 3 * 4 + 6 * 8 + 4;
    expect(new TextDecoder().decode(bad.subarray(at, at + 4))).toBe('E_XX');
    bad[at] = 0xff;
    expect(decodeForwardBatch(bad, ForwardMsgType.ForwardReply, 3)).toBeUndefined();
    const long = encodeForwardBatch([{ ...reply(1), errorCode: 'E'.repeat(65) }]);
    expect(decodeForwardBatch(long, ForwardMsgType.ForwardReply, 3)).toBeUndefined();
  });
});
