export * from './messages';
export { TransportError, type TransportErrorCode } from './errors';
export * from './options';
export {
  encodeFrame,
  encodeFrameBytes,
  decodeFrame,
  encodeHello,
  decodeHello,
  concatChunks,
  allocOwnUnfilled,
  OWN_UNFILLED_MIN_BYTES,
  FRAME_VERSION,
  PAXOS_FRAME_OVERHEAD_MAX_BYTES,
  maxPaxosValueBytes,
  encodeForwardResult,
  decodeForwardResult,
  type Frame,
  type Hello,
  type DecodeResult,
} from './codec';
export { FrameReader } from './frame-reader';
export { type Network, type DropCounters, type MessageHandler } from './ports';
export {
  FramePool,
  type LentFrame,
  type FramePoolCounters,
  POOLED_FRAME_MIN_BYTES,
  RECEIVE_POOL_BYTES,
  POISON_BYTE,
} from './frame-pool';
export { MemoryNetwork, type LinkConfig, type Delivery } from './memory-network';
