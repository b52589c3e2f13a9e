// Every limit of the transport, with PhxPaxos's defaults (src/config/inside_options.cpp).

/** Largest frame accepted or sent: 10 MiB (PhxPaxos MaxBufferSize, normal mode). */
export const MAX_FRAME_BYTES = 10 * 1024 * 1024;
/** Largest frame in large-value mode: 50 MiB (PhxPaxos MaxBufferSize, large buffer mode). */
export const MAX_FRAME_BYTES_LARGE = 50 * 1024 * 1024;
/**
 * The largest maxFrameBytes any network accepts (ours: values up to 64 MiB end to end, past
 * PhxPaxos's 50 MiB large-value mode, plus 1 MiB of frame headroom).
 */
export const MAX_FRAME_BYTES_CEILING = 65 * 1024 * 1024;
/** Bytes queued per outbound peer before the oldest frames are dropped (PhxPaxos: 200 MiB). */
export const QUEUE_MAX_BYTES = 200 * 1024 * 1024;
/**
 * Bytes queued for a peer while it is known down (its last connection failed or broke and none has
 * opened since): the newest frames are kept, older ones dropped as E_PEER_DOWN (ours, issue 22).
 * A down peer learns what it missed from its peers' learners when it is back; 200 MiB of frames
 * queued for it held every value proposed in the last 5 s alive (a 100 KiB propose with one node
 * down: ~1,500 values, their memory never reused, ~30 % more CPU per instance on the proposer).
 */
export const DOWN_QUEUE_MAX_BYTES = 4 * 1024 * 1024;
/**
 * Frames queued for a peer while it is known down, however small (ours, issue 22): the newest are
 * kept. A node back from an outage handles what was queued for it before anything else, and
 * each Accept among it costs a synced write: 4 MiB of ~3 KiB Accepts (25 small writes each) was
 * ~800 instances voted on one at a time, ~1 s before its learner's batched stream could start
 * (a restarted follower's catch-up, BENCHMARKS.md). 64 keeps the last few instances' messages, for
 * a peer that was only cut off for a moment.
 */
export const DOWN_QUEUE_MAX_FRAMES = 64;
/** Frames older than this are dropped instead of sent (PhxPaxos TcpOutQueueDropTimeMs: 5000). */
export const QUEUE_MAX_AGE_MS = 5000;
/** An idle connection is closed after this long (PhxPaxos TcpConnectionNonActiveTimeout: 60 s). */
export const IDLE_TIMEOUT_MS = 60_000;
/** Reconnect backoff: first delay, cap, and jitter fraction (ours). */
export const RECONNECT_MIN_MS = 50;
export const RECONNECT_MAX_MS = 5000;
export const RECONNECT_JITTER = 0.5;
/** A new connection must say hello within this long (ours). */
export const HANDSHAKE_TIMEOUT_MS = 5000;
/** Largest hello frame (ours: it carries ids and an address). */
export const MAX_HELLO_BYTES = 4096;
/** Bytes handed to a socket before waiting for it to drain (ours: ~20 ms of loopback). */
export const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;
/**
 * A connection read with `FrameReader.readBuffer` lands its socket reads back to back in slabs of
 * this many bytes: a frame that spans two reads of one slab is a view, not a copy, and no buffer
 * is allocated per read. Ours: Node's own read size (64 KiB), so a small value that its user
 * keeps (a view of its slab) holds no more memory than a view of Node's read buffer did.
 */
export const RECEIVE_SLAB_BYTES = 64 * 1024;
/** A slab with less room left than this is retired, and the next read goes to a fresh one. */
export const RECEIVE_READ_MIN_BYTES = 16 * 1024;
/** Runs of small queued frames are concatenated into writes of up to this many bytes. */
export const WRITE_COALESCE_BYTES = 64 * 1024;
/**
 * A frame of at least this many bytes is written at once by send(), not at the next
 * setImmediate with the frames queued meanwhile (ours: WRITE_COALESCE_BYTES, where coalescing
 * stops paying). It then leaves before the work that follows in the sender's tick: a proposer's
 * 100 KiB Accept reaches the remote acceptor before the proposer runs its own accept's write
 * (propose of 100 KiB, 2 of 3 nodes: 1.1× values/s here, bench/catchup.mjs in packages/paxos).
 */
export const WRITE_AT_ONCE_BYTES = WRITE_COALESCE_BYTES;
/**
 * A follower (a peer known only from its hello, not from `peers`) whose last inbound connection
 * closed is forgotten after this long: its address, its outbound queue and connection are freed
 * (ours: the idle timeout, 60 s; a live follower keeps its connection open by asking every ~3 s).
 */
export const FOLLOWER_FORGET_MS = IDLE_TIMEOUT_MS;
/** Most followers known at once; a hello from one more is refused (ours). */
export const MAX_FOLLOWERS = 1024;
/** Most removed nodes whose hellos are refused at once (ours: the oldest is let go first). */
export const MAX_REFUSED_PEERS = 1024;
/** Smallest maxFrameBytes a TcpNetwork accepts (ours: room for every message without a value). */
export const MIN_FRAME_BYTES = 1024;

/** The allowed range of each numeric TcpNetwork option (E_BAD_ARGUMENT names field and range). */
export const TCP_OPTION_RANGES = {
  nodeId: { min: 1 },
  maxFrameBytes: { min: MIN_FRAME_BYTES, max: MAX_FRAME_BYTES_CEILING },
  queueMaxBytes: { min: 1 },
  downQueueMaxBytes: { min: 0 },
  downQueueMaxFrames: { min: 0 },
  queueMaxAgeMs: { min: 1 },
  idleTimeoutMs: { min: 1 },
  reconnectMinMs: { min: 1 },
  reconnectMaxMs: { min: 1 },
  followerForgetMs: { min: 1 },
  maxFollowers: { min: 0 },
  receivePoolBytes: { min: 0 },
} as const;

/** The allowed range of a MemoryNetwork link's rates (probabilities) and delays (ms). */
export const LINK_RATE_RANGE = { min: 0, max: 1, integer: false } as const;
export const LINK_DELAY_RANGE = { min: 0, integer: false } as const;
/**
 * Most instances one SendLearnValue batch may carry on the wire (ours: the learner's own limit,
 * LearnerOptions.batchMaxInstances, must not exceed it; a frame also stays under maxFrameBytes).
 */
export const MAX_LEARN_BATCH_INSTANCES = 16_384;
/** Bytes of a batch's table entry: proposalId u64, proposalNodeId u64, checksum u32. */
export const LEARN_BATCH_ENTRY_BYTES = 20;
/** Bytes a frame needs beyond the values it carries (headers, batch table): ours, generous. */
export const FRAME_HEADROOM_BYTES = 1024 * 1024;
/**
 * The frame limit for a node whose largest value is `maxValueBytes` (PaxosOptions.maxValueBytes,
 * up to 64 MiB): give it to TcpNetwork / MemoryNetwork as maxFrameBytes, so the frame limit
 * follows the value limit (PhxPaxos: MaxBufferSize serves both).
 */
export function frameBytesForValues(maxValueBytes: number): number {
  return Math.max(MAX_FRAME_BYTES, maxValueBytes + FRAME_HEADROOM_BYTES);
}
