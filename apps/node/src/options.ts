// Every limit of the reference server, with its unit. None comes from PhxPaxos (which has no
// HTTP server); each comment says why the number is what it is.

/** Largest PUT body: design.md §6 ("raw body ≤ 1 MiB"). Larger bodies get 413. */
export const MAX_BODY_BYTES = 1024 * 1024;
/** Longest key in UTF-8 bytes (ours: keys live in the URL, and a request line stays well under Node's 16 KiB header limit). */
export const MAX_KEY_BYTES = 1024;
/** Longest raw path parameter the router accepts before our own validation answers 400 (ours: above any 10 KiB key, percent-encoded). */
export const MAX_PARAM_CHARS = 64 * 1024;
/** How long a PUT/DELETE/barrier waits to be chosen before 504 E_TIMEOUT (ours; the paxos default is 10 s). */
export const PROPOSE_TIMEOUT_MS = 10_000;
/** How often a node asks each peer's /status for the members view (ours). */
export const MEMBER_POLL_INTERVAL_MS = 1000;
/** Deadline of one members-view request; a peer that does not answer within it is unreachable (ours). */
export const MEMBER_POLL_TIMEOUT_MS = 800;
/** Window of the catch-up rate estimate when the learner does not report catchUp itself (ours). */
export const CATCH_UP_RATE_WINDOW_MS = 2000;
/**
 * How long a graceful stop lets the writes already handed to the proposer be chosen before it
 * stops the node (ours: a few rounds on a loaded machine, well under CHILD_STOP_TIMEOUT_MS); what
 * is left then is answered 504 E_OUTCOME_UNKNOWN.
 */
export const STOP_DRAIN_MS = 3000;
/** Retry-After of a 503 (ours: a stopping node is gone or back within seconds, a full queue drains in ms). */
export const RETRY_AFTER_SECONDS = 1;
/** First paxos port of `tspaxos cluster` (node i listens on base + i; HTTP on base + 1000 + i). */
export const DEFAULT_BASE_PORT = 7100;
/** HTTP ports sit this far above the paxos ports in `tspaxos cluster` (design.md §6: 7101 → 8101). */
export const HTTP_PORT_OFFSET = 1000;
/** Largest --nodes of `tspaxos cluster` (ours: a local demo, 2 cores). */
export const MAX_LOCAL_NODES = 9;
/** Largest --groups (the paxos node's own limit is 10,000; one SQLite file per group here). */
export const MAX_GROUPS = 64;
/** The cluster id every node announces in its TCP hello. */
export const CLUSTER_ID = 'tspaxos-kv';
/** State machine id of the key-value store (4 … 2^32−1 are free; 1–3 are PhxPaxos's). */
export const KV_SM_ID = 10;
/** Time `tspaxos cluster` gives its children to stop after SIGTERM before SIGKILL (ours). */
export const CHILD_STOP_TIMEOUT_MS = 10_000;
/** Instances applied past the last KV checkpoint before the next one is written on its own (ours: bounds the replay at restart; 0 turns it off). */
export const DEFAULT_CHECKPOINT_EVERY_INSTANCES = 10_000;
/**
 * Log instances kept below the KV checkpoint when the node compacts on its own: the log is
 * compacted once it holds more than this below the checkpoint (PhxPaxos CAN_DELETE_DELTA,
 * 1,000,000; below 300 the checkpoint package keeps 300, as PhxPaxos's Cleaner does).
 */
export const DEFAULT_KEEP_LOG_INSTANCES = 1_000_000;
/** Smallest --keep-log (PhxPaxos Cleaner::SetHoldPaxosLogCount raises anything lower to 300). */
export const MIN_KEEP_LOG_INSTANCES = 300;
/** Largest --catch-up-batch (ours: a sanity bound; the learner also cuts every batch at 1 MiB of values). */
export const MAX_CATCH_UP_BATCH_INSTANCES = 1_000_000;
/**
 * The master lease when --master-lease-ms is not given (ours; the paxos package's is PhxPaxos's
 * 10 s): etcd's default election timeout, since both bound how long a dead master holds writes
 * up (docs/design.md §6, "Failover").
 */
export const DEFAULT_MASTER_LEASE_MS = 1000;
/**
 * A write that finds no master it can send to waits for one this many leases at most
 * (master-wait.ts): the dead master's lease in this node's view (up to one), a renewal of it
 * that was in flight when it died and that a survivor's proposer completes (it grants a whole
 * lease from when the survivors apply it, as PhxPaxos's does: one more), and the election's
 * round (half a lease of slack, for a loaded machine).
 */
export const MASTER_WAIT_LEASES = 2.5;
/**
 * And at most this share of its proposal timeout, so the write keeps time for its own round
 * once a master is back.
 */
export const MASTER_WAIT_MAX_OF_TIMEOUT = 0.8;
/** Longest --master-lease-ms (ours: an hour; a master that dies holds reads up for its lease). */
export const MAX_MASTER_LEASE_MS = 3_600_000;
/** Unexpected errors kept in /status `taskErrors` (all are counted in the metric). */
export const TASK_ERRORS_KEPT = 100;
/** Longest Idempotency-Key header value in bytes (issue 18; Stripe takes 255, the IETF draft sets none). */
export const MAX_IDEMPOTENCY_KEY_BYTES = 128;
/** Longest version a precondition may name (a version is `<instance id>` or `<instance id>.<n>`: at most 33 digits and a dot). */
export const MAX_VERSION_BYTES = 40;
/**
 * How long each group's KV state machine keeps an idempotency key, by the proposers' clocks
 * carried in the log (ours: an hour covers any client's retries; Stripe keeps 24 h). At most
 * 2^32 − 1 ms (it travels as a u32 in each write).
 */
export const DEFAULT_IDEMPOTENCY_WINDOW_MS = 3_600_000;
/**
 * Most idempotency keys each group keeps (ours: the bound on the table, about 250 bytes a key on
 * disk, so ~25 MB per group at most); the oldest go first.
 */
export const DEFAULT_IDEMPOTENCY_WINDOW_KEYS = 100_000;
/** Bounds of the flags: the window travels as u32 fields of each write (kv-command.ts). */
export const MAX_IDEMPOTENCY_WINDOW_MS = 0xffff_ffff;
export const MAX_IDEMPOTENCY_WINDOW_KEYS = 0xffff_ffff;
/** Largest `limit` of `GET /kv?prefix=` (the agreed shape of issue 18; default DEFAULT_LIST_LIMIT). */
export const MAX_LIST_LIMIT = 1000;
export const DEFAULT_LIST_LIMIT = 100;
/**
 * A listing page stops once its values reach this many bytes (at least one item), whatever the
 * limit: 1000 values of 1 MiB would be a 1.3 GB answer (ours).
 */
export const MAX_LIST_PAGE_BYTES = 4 * 1024 * 1024;
/** Tries of one membership change when other changes keep taking its version (ours: then 409). */
export const MEMBERSHIP_CHANGE_ATTEMPTS = 3;
/**
 * How long a change waits for this node to learn it is a voter of a group before it answers 503
 * (ours: a node that just joined hears of its own addition at its learner's next AskforLearn,
 * every 2.5 s, when no master lease was live to read the membership from).
 */
export const SELF_MEMBERSHIP_WAIT_MS = 8000;
/** Poll interval of that wait (ours). */
export const SELF_MEMBERSHIP_POLL_MS = 100;
/** How often a node brings its transport to the membership besides after each learned change (ours: also catches one adopted from a peer or a checkpoint). */
export const MEMBERSHIP_SYNC_INTERVAL_MS = 1000;
/** How long `--join` keeps asking the member it was given (ours: a member restarting takes seconds). */
export const JOIN_TIMEOUT_MS = 60_000;
/** Deadline of one request of `--join` to that member (ours). */
export const JOIN_REQUEST_TIMEOUT_MS = 15_000;
/**
 * How long the other nodes still talk to a node removed from the membership before they forget
 * and refuse it (ours: two of the learner's 2.5 s AskforLearn intervals, so it hears of its
 * removal and stops on its own side as well).
 */
export const MEMBER_REMOVAL_GRACE_MS = 5000;
