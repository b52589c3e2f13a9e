// Checkpoints in the simulator (issue 11): every node has a MemoryFiles disk (a crash loses unsynced
// bytes and names) holding its recorder's checkpoint and its staging directory; the recorder
// writes checkpoints now and then; in a share of seeds nodes compact their logs during the fault
// phase, so a node kept down long (or two of them, or one whose state-machine directory was lost)
// must copy a peer's checkpoint and then learn the rest from the log. Transfers are cut at each
// phase (after BEGIN, mid-chunk, before END, during the load, during the log reset) by a crash
// or a partition and must complete later; chunks are corrupted on the sender's side of the wire
// (below the frame CRC, so only the receiver's chunk CRC can catch them) and must be refused and
// sent again. A loaded checkpoint must equal what the log says (the `checkpoint` invariant).
// Issue 17: the install is also cut around the clearing of its record (the window in which a node
// used to keep stale master variables), and in election seeds a node that comes back from a cut
// install, or has just installed, is partitioned from the peers ahead of it (the lease holder
// first): it must not trust master variables they would have corrected. A scripted run
// (SimOptions.installCrashStep) crashes the receiver at the k-th write of its first install.
import { type CheckpointOptions, type CheckpointFiles, MemoryFiles } from '@tspaxos/checkpoint';
import { crc32 } from '@tspaxos/crc-wasm';
import { INSTALL_META_KEY } from '@tspaxos/checkpoint';
import type { PaxosNode } from '@tspaxos/paxos/internal';
import type { LogStore } from '@tspaxos/storage';
import {
  CheckpointMsgType,
  CheckpointSendFileAckFlag,
  CheckpointSendFileFlag,
  type Message,
  type MemoryNetwork,
  type Network,
  PaxosMsgType,
  SeededRng,
} from '@tspaxos/transport';
import type { EventQueue } from './event-queue';
import { type RecorderEntries, RecordingStateMachine } from './recorder';

/** Coverage keys of this module (added to PATH_KINDS). */
export const CHECKPOINT_PATH_KINDS = [
  'checkpoint-writes',
  'checkpoint-compactions',
  'checkpoint-needs-at-start',
  'checkpoint-asks',
  'checkpoint-transfers-started',
  'checkpoint-transfers-finished',
  'checkpoint-installs',
  'checkpoint-installs-finished-at-start',
  'checkpoint-second-asker-while-sending',
  'checkpoint-chunks-corrupted',
  'checkpoint-corrupt-chunk-refused-then-installed',
  'checkpoint-cut-after-begin',
  'checkpoint-cut-mid-chunk',
  'checkpoint-cut-before-end',
  'checkpoint-cut-during-load',
  'checkpoint-cut-during-reset',
  'checkpoint-cut-before-clear',
  'checkpoint-cut-after-clear',
  'checkpoint-cuts-by-partition',
  'checkpoint-ahead-peers-partitioned',
  'checkpoint-sm-state-lost',
] as const;
export type CheckpointPathKind = (typeof CHECKPOINT_PATH_KINDS)[number];

export type CutPhase =
  | 'after-begin'
  | 'mid-chunk'
  | 'before-end'
  | 'during-load'
  | 'during-reset'
  | 'before-clear'
  | 'after-clear';

/**
 * The checkpoint limits of a simulated node: small chunks so a checkpoint of a few KiB is many
 * frames (mid-chunk cuts, a window that fills), and timeouts in seconds, not minutes, so a cut
 * transfer is retried well within the liveness bound (60 s).
 */
export const SIM_CHECKPOINT_OPTIONS: Partial<CheckpointOptions> = {
  chunkBytes: 256,
  ackLeadChunks: 4,
  ackLeadBytes: 5 * 256,
  ackTimeoutMs: 3000,
  askMajorityWaitMs: 3000,
  checkpointModeIdleMs: 4000,
  askRetryMs: 1000,
  freeSpaceMarginBytes: 1024 * 1024,
  tickIntervalMs: 250,
  cleanerStepRecords: 50,
};

/** Share of seeds in which nodes compact their logs during the fault phase. */
const COMPACTION_SEED_RATE = 0.6;
/** Gap between two compactions (ms, uniform), and the instances each keeps below its checkpoint. */
const COMPACT_GAP_MS: [number, number] = [300, 1000];
const COMPACT_KEEP_MAX = 3;
/** Gap between two rounds of checkpoint writes (ms, uniform); each node writes with this chance. */
const CHECKPOINT_WRITE_GAP_MS: [number, number] = [400, 1200];
const CHECKPOINT_WRITE_RATE = 0.5;
/** Chance that a transfer is cut at each phase (per transfer; per chunk for mid-chunk). */
const CUT_RATE: Record<CutPhase, number> = {
  'after-begin': 0.12,
  'mid-chunk': 0.05,
  'before-end': 0.2,
  'during-load': 0.15,
  'during-reset': 0.15,
  'before-clear': 0.15,
  'after-clear': 0.15,
};
/**
 * Election seeds: chance that a node restarting after a cut install, or one that has just
 * installed, is cut off from the peers ahead of it, for 1–2 leases.
 */
const AHEAD_PARTITION_RATE = 0.5;
/** The scripted install crash restarts the receiver this long after (ms). */
const SCRIPTED_RESTART_MS = 300;
/** Of the network-phase cuts: crash the receiver, crash the sender, or partition the receiver. */
const CUT_CRASH_RECEIVER = 0.4;
const CUT_CRASH_SENDER = 0.25;
/** A node crashed by a cut restarts after this long (ms, uniform); a partition lasts this long. */
const CUT_RESTART_MS: [number, number] = [200, 1500];
const CUT_PARTITION_MS: [number, number] = [500, 2500];
/** Chance that a chunk is corrupted on the sender's side of the wire (fault phase only). */
const CHUNK_CORRUPT_RATE = 0.04;
/** The planted corruption (with the CRC recomputed) hits chunks this often. */
const PLANTED_CHUNK_CORRUPT_RATE = 0.3;
/** In a compaction seed: chance of one node losing its state-machine directory, and how long it stays down. */
const SM_STATE_LOST_RATE = 0.6;
const SM_STATE_LOST_DOWN_MS: [number, number] = [1500, 3000];
/** In a 5-node compaction seed with a long-down node: chance that node 2 is kept down with it. */
const SECOND_LONG_DOWN_RATE = 0.7;

/** What this module needs of a simulated node (simulate.ts's SimNode). */
export interface CheckpointSimNode {
  readonly id: number;
  readonly voting: boolean;
  /** The node's log (read to tell which peers are ahead of it). */
  readonly store: LogStore;
  alive: boolean;
  incarnation: number;
  downUntilMs: number;
  node: PaxosNode | undefined;
  executed: Array<Map<number, string[]>>;
  isLive(incarnation: number): boolean;
}

/** What this module needs of the simulation. */
export interface CheckpointSimHost {
  readonly seed: number;
  readonly queue: EventQueue;
  readonly net: MemoryNetwork;
  readonly nodes: readonly CheckpointSimNode[];
  readonly groups: number;
  readonly faultPhaseMs: number;
  readonly faults: boolean;
  readonly nodeCount: number;
  readonly longDown: boolean;
  readonly membershipChange: boolean;
  /** Pinned: nodes compact during the fault phase (default: drawn in a share of seeds with faults). */
  readonly compaction: boolean | undefined;
  readonly planted: 'checkpointIdTooHigh' | 'checkpointChunkCorruptValidCrc' | undefined;
  /** The master lease of an election seed (undefined: no elections). */
  readonly masterLeaseMs: number | undefined;
  /** Scripted: crash the receiver at this write of its first install (SimOptions). */
  readonly installCrashStep: number | undefined;
  readonly paths: Record<CheckpointPathKind, number>;
  /** group → instance → values chosen there (the first node to execute decides). */
  readonly chosen: ReadonlyArray<Map<number, string[]>>;
  readonly proposed: ReadonlySet<string>;
  inFaultPhase(): boolean;
  /** The node's store refuses writes after an injected fsync failure. */
  storeFailed(n: CheckpointSimNode): boolean;
  crash(n: CheckpointSimNode, why: string): void;
  start(n: CheckpointSimNode): void;
  note(invariant: 'checkpoint' | 'validity' | 'error', message: string): void;
  log(line: string): void;
  /**
   * An install a restart finished (its node crashed inside it): the in-process restart counters
   * that count the others died with the node.
   */
  installFinishedAtStart(n: CheckpointSimNode): void;
}

/** Transfer progress as the receiver's deliveries show it. */
interface SeenTransfer {
  announced: number;
  received: number;
  endSequence: number | undefined;
  cut: boolean;
}

const never = new Promise<never>(() => {});

export class CheckpointSim {
  readonly disks = new Map<number, MemoryFiles>();
  private readonly rng: SeededRng;
  private readonly compactionSeed: boolean;
  /** Recorders of the live incarnations: `${node}/${group}` → machine. */
  private readonly recorders = new Map<
    string,
    { incarnation: number; sm: RecordingStateMachine }
  >();
  /** Cuts (and refused corrupt chunks) of a node's group not yet followed by an install. */
  private readonly pending = new Map<string, Array<CutPhase | 'corrupt' | 'partition'>>();
  private readonly seen = new Map<string, SeenTransfer>();
  private readonly begun = new Set<string>();
  /** The scripted install crash: the receiver's incarnation counting writes, and how many so far. */
  private scripted: { node: CheckpointSimNode; incarnation: number; writes: number } | undefined;
  private scriptedDone = false;

  constructor(private readonly host: CheckpointSimHost) {
    this.rng = new SeededRng(host.seed ^ 0xc4ec);
    const drawn = host.faults && this.rng.next() < COMPACTION_SEED_RATE;
    this.compactionSeed = host.compaction ?? drawn;
    for (const n of host.nodes) this.disks.set(n.id, new MemoryFiles());
  }

  /** NodeOptions.checkpoint of a node. */
  nodeOptions(n: CheckpointSimNode, incarnation: number) {
    return {
      files: this.fencedFiles(n, incarnation),
      dir: `/n${n.id}/checkpoint`,
      options: SIM_CHECKPOINT_OPTIONS,
      autoCompact: false,
    };
  }

  /** The recorder of a node's group, its checkpoint on the node's disk. */
  recorder(
    n: CheckpointSimNode,
    incarnation: number,
    group: number,
    onExecute: (instanceId: number, value: string) => void,
  ): RecordingStateMachine {
    const disk = this.disks.get(n.id)!;
    const sm = new RecordingStateMachine(onExecute, {
      files: this.fencedFiles(n, incarnation),
      peek: (path) => disk.peek(path),
      dir: `/n${n.id}/sm/g${group}`,
      onLoaded: (cp, entries, how) => this.loaded(n, incarnation, group, cp, entries, how),
      duringLoad: () => this.maybeCut(n, incarnation, group, 'during-load'),
      ...(this.host.planted === 'checkpointIdTooHigh' ? { plantedIdTooHigh: true } : {}),
    });
    this.recorders.set(`${n.id}/${group}`, { incarnation, sm });
    return sm;
  }

  /** A crash: the disk loses what was not synced. */
  onCrash(n: CheckpointSimNode): void {
    this.disks.get(n.id)!.crash();
  }

  /** The node's store, watched for the install's log reset (a cut point). */
  wrapStore(n: CheckpointSimNode, incarnation: number, store: LogStore): LogStore {
    const step = <T>(write: () => Promise<T>): Promise<T> =>
      this.scriptedWrite(n, incarnation) ? never : write();
    return {
      ...store,
      put: (g, r, o) => step(() => store.put(g, r, o)),
      putMany: (g, r, o) => step(() => store.putMany(g, r, o)),
      setMinChosenInstanceId: (g, i) => step(() => store.setMinChosenInstanceId(g, i)),
      setMeta: (group, key, value, opts) =>
        step(() => {
          if (key !== INSTALL_META_KEY || value.length > 0)
            return store.setMeta(group, key, value, opts);
          // The install clears its record: the log reset is done, the in-process restart next.
          if (this.maybeCut(n, incarnation, group, 'before-clear')) return never;
          return store.setMeta(group, key, value, opts).then(() => {
            this.maybeCut(n, incarnation, group, 'after-clear');
          });
        }),
      resetGroup: (group, opts) =>
        step(() => {
          const p = store.resetGroup(group, opts);
          this.maybeCut(n, incarnation, group, 'during-reset');
          return p;
        }),
    };
  }

  /** The node's network, watched for checkpoint frames (cut points, corruption, coverage). */
  wrapNetwork(n: CheckpointSimNode, incarnation: number, network: Network): Network {
    return {
      send: (to, group, message) => network.send(to, group, this.onSend(n, to, group, message)),
      onMessage: (handler) =>
        network.onMessage((from, group, message) => {
          if (n.isLive(incarnation)) this.onDeliver(n, incarnation, from, group, message);
          handler(from, group, message);
        }),
      close: () => network.close(),
    };
  }

  onNodeLog(n: CheckpointSimNode, level: string, event: string): void {
    if (event === 'group-restarted-from-checkpoint' && this.scripted?.node === n) {
      this.host.log(
        `n${n.id} install done after ${this.scripted.writes} writes (scripted: no crash)`,
      );
      this.scripted = undefined;
      this.scriptedDone = true;
    }
    if (event === 'needs-checkpoint' && level === 'error')
      this.host.paths['checkpoint-needs-at-start']++;
    else if (event === 'asked-for-checkpoint') this.host.paths['checkpoint-asks']++;
    else if (event === 'checkpoint-recovered')
      this.host.log(`n${n.id} recovered a checkpoint install at start`);
  }

  /** Checkpoint writes in every seed; compactions and the scenarios that need a checkpoint in a share. */
  schedule(): void {
    this.every(CHECKPOINT_WRITE_GAP_MS, Infinity, () => this.writeCheckpoints());
    if (!this.compactionSeed) return;
    this.every(COMPACT_GAP_MS, this.host.faultPhaseMs, () => this.compactOne());
    const { queue, faultPhaseMs } = this.host;
    if (!this.host.faults) return;
    // Not with a membership change: in a group shrunk to two members, the other one alone cannot
    // choose the values a node that lost its state needs a newer checkpoint of (see README).
    if (this.rng.next() < SM_STATE_LOST_RATE && !this.host.membershipChange) {
      const at = 4000 + this.rng.int(Math.max(1, faultPhaseMs - 13_000));
      queue.at(at, () => this.loseStateMachineDirectory(), 'sm state lost');
    }
    if (this.host.nodeCount === 5 && this.host.longDown && this.rng.next() < SECOND_LONG_DOWN_RATE)
      queue.at(4100, () => this.secondLongDown(), 'second long-down crash');
  }

  // ---- scheduled events ---------------------------------------------------------------------

  private every(gap: [number, number], untilMs: number, fn: () => void): void {
    const { queue } = this.host;
    const next = (): void => {
      const at = queue.nowMs + gap[0] + this.rng.int(gap[1] - gap[0]);
      if (at >= untilMs) return;
      queue.at(
        at,
        () => {
          fn();
          next();
        },
        'checkpoint event',
      );
    };
    next();
  }

  private writeCheckpoints(): void {
    for (const n of this.host.nodes) {
      if (!n.alive || n.node === undefined || this.rng.next() >= CHECKPOINT_WRITE_RATE) continue;
      for (let g = 0; g < this.host.groups; g++) void this.write(n, g);
    }
  }

  /** Writes a node's recorder checkpoint of one group; resolves whether it wrote. */
  private write(n: CheckpointSimNode, group: number): Promise<boolean> {
    const r = this.recorders.get(`${n.id}/${group}`);
    if (r === undefined || !n.isLive(r.incarnation)) return Promise.resolve(false);
    const incarnation = r.incarnation;
    return r.sm.writeCheckpoint().then(
      (wrote) => {
        if (wrote && n.isLive(incarnation)) this.host.paths['checkpoint-writes']++;
        return wrote;
      },
      (error: unknown) => {
        if (n.isLive(incarnation))
          this.host.note(
            'error',
            `n${n.id} group ${group}: checkpoint write failed: ${String(error)}`,
          );
        return false;
      },
    );
  }

  private compactOne(): void {
    const up = this.host.nodes.filter((n) => n.alive && n.node !== undefined && n.voting);
    if (up.length === 0) return;
    const n = up[this.rng.int(up.length)]!;
    const group = this.rng.int(this.host.groups);
    const keep = this.rng.int(COMPACT_KEEP_MAX + 1);
    const incarnation = n.incarnation;
    void this.write(n, group).then((): void => {
      const node = n.node;
      if (!n.isLive(incarnation) || node === undefined) return;
      const before = node.status(group).checkpoint?.minChosenInstanceId ?? 0;
      node.compact(group, { keep }).then(
        ({ minChosenInstanceId }) => {
          if (!n.isLive(incarnation)) return;
          this.host.log(
            `n${n.id} compacted group ${group}: min chosen ${before} → ${minChosenInstanceId}`,
          );
          if (minChosenInstanceId > before) this.host.paths['checkpoint-compactions']++;
        },
        (error: { code?: string; message?: string }) => {
          if (!n.isLive(incarnation)) return;
          // Waiting for a checkpoint itself, or its store refuses writes after an injected fsync failure.
          const expected =
            error.code === 'E_NEEDS_CHECKPOINT' ||
            ((error.code === 'E_STORAGE' || error.code === 'E_IO') && this.host.storeFailed(n));
          if (expected) {
            this.host.log(`n${n.id} compact group ${group} refused: ${error.code}`);
            return;
          }
          this.host.note(
            'error',
            `n${n.id} group ${group}: compact failed: ${error.code}: ${error.message}`,
          );
        },
      );
    });
  }

  /**
   * A node loses its state machines' directory (a replaced disk under the state, the log kept):
   * where its log was compacted it cannot replay, so it starts with E_NEEDS_CHECKPOINT.
   */
  private loseStateMachineDirectory(): void {
    const { nodes, groups, queue } = this.host;
    const candidates = nodes.filter(
      (n) =>
        n.alive &&
        n.node !== undefined &&
        n.voting &&
        n.downUntilMs < 0 &&
        Array.from({ length: groups }, (_, g) => g).some(
          (g) => (n.node!.status(g).checkpoint?.minChosenInstanceId ?? 0) > 0,
        ),
    );
    if (candidates.length === 0) return;
    const n = candidates[this.rng.int(candidates.length)]!;
    this.host.crash(n, '(its state-machine directory is lost)');
    const disk = this.disks.get(n.id)!;
    const dir = `/n${n.id}/sm`;
    void disk.remove(dir).then(() => disk.fsync(`/n${n.id}`));
    this.host.paths['checkpoint-sm-state-lost']++;
    const upAt =
      queue.nowMs +
      SM_STATE_LOST_DOWN_MS[0] +
      this.rng.int(SM_STATE_LOST_DOWN_MS[1] - SM_STATE_LOST_DOWN_MS[0]);
    n.downUntilMs = upAt;
    queue.at(
      upAt,
      () => {
        n.downUntilMs = -1;
        if (!n.alive) this.host.start(n);
      },
      'sm-state-lost restart',
    );
  }

  /** Node 2 goes down with the long-down node 1 and comes back with it: two askers at once. */
  private secondLongDown(): void {
    const [first, second] = this.host.nodes;
    if (first === undefined || second === undefined || first.downUntilMs < 0) return;
    if (second.downUntilMs >= 0) return;
    const upAt = first.downUntilMs + this.rng.int(300);
    if (second.alive)
      this.host.crash(second, '(kept down with n1: two nodes will ask for a checkpoint)');
    second.downUntilMs = upAt;
    this.host.queue.at(
      Math.min(upAt, this.host.faultPhaseMs - 1),
      () => {
        second.downUntilMs = -1;
        if (!second.alive) this.host.start(second);
      },
      'second long-down restart',
    );
  }

  // ---- cuts, corruption and coverage on the wire -------------------------------------------

  private onSend(n: CheckpointSimNode, to: number, group: number, message: Message): Message {
    if (message.kind !== 'checkpoint') return message;
    const m = message.msg;
    if (m.msgType === CheckpointMsgType.SendFile) {
      if (m.flag === CheckpointSendFileFlag.Begin) {
        const key = `${n.id}/${to}/${group}/${m.uuid}`;
        if (!this.begun.has(key)) {
          this.begun.add(key);
          this.host.paths['checkpoint-transfers-started']++;
        }
      } else if (m.flag === CheckpointSendFileFlag.Ing && m.buffer.length > 0) {
        const planted = this.host.planted === 'checkpointChunkCorruptValidCrc';
        const rate = planted ? PLANTED_CHUNK_CORRUPT_RATE : CHUNK_CORRUPT_RATE;
        if (this.host.faults && this.host.inFaultPhase() && this.rng.next() < rate) {
          const buffer = m.buffer.slice();
          const bit = this.rng.int(buffer.length * 8);
          buffer[bit >> 3]! ^= 1 << (bit & 7);
          this.host.paths['checkpoint-chunks-corrupted']++;
          this.host.log(
            `n${n.id}→n${to} g${group} checkpoint chunk ${m.sequence}: bit ${bit} flipped${planted ? ' (CRC recomputed: planted)' : ''}`,
          );
          return {
            kind: 'checkpoint',
            msg: { ...m, buffer, ...(planted ? { checksum: crc32(buffer) } : {}) },
          };
        }
      }
    } else if (m.msgType === CheckpointMsgType.SendFileAck) {
      // Acks come from the receiver (n).
      const t = this.seen.get(`${n.id}/${group}/${m.uuid}`);
      if (m.flag === CheckpointSendFileAckFlag.Fail && m.filePath === 'bad-crc')
        this.pend(n.id, group, 'corrupt');
      if (
        m.flag === CheckpointSendFileAckFlag.Ok &&
        t !== undefined &&
        m.sequence === t.endSequence
      ) {
        this.host.paths['checkpoint-transfers-finished']++;
        t.endSequence = undefined;
      }
    }
    return message;
  }

  private onDeliver(
    n: CheckpointSimNode,
    incarnation: number,
    from: number,
    group: number,
    message: Message,
  ): void {
    if (message.kind === 'paxos') {
      if (message.msg.msgType !== PaxosMsgType.AskforCheckpoint) return;
      const sender = n.node?.status(group).checkpoint?.sender;
      if (sender !== undefined && sender.endReason === undefined && sender.toNodeId !== from)
        this.host.paths['checkpoint-second-asker-while-sending']++;
      return;
    }
    if (message.kind !== 'checkpoint') return; // forwarding to the master: not a transfer
    const m = message.msg;
    if (m.msgType !== CheckpointMsgType.SendFile) return;
    const key = `${n.id}/${group}/${m.uuid}`;
    let t = this.seen.get(key);
    if (m.flag === CheckpointSendFileFlag.Begin) {
      if (t === undefined) {
        t = { announced: m.offset, received: 0, endSequence: undefined, cut: false };
        this.seen.set(key, t);
      }
      this.maybeCutTransfer(n, incarnation, from, group, t, 'after-begin');
    } else if (t === undefined) {
      return;
    } else if (m.flag === CheckpointSendFileFlag.Ing) {
      t.received += m.buffer.length;
      this.maybeCutTransfer(
        n,
        incarnation,
        from,
        group,
        t,
        t.received >= t.announced ? 'before-end' : 'mid-chunk',
      );
    } else if (m.flag === CheckpointSendFileFlag.End) {
      t.endSequence = m.sequence;
      if (
        this.host.installCrashStep !== undefined &&
        !this.scriptedDone &&
        this.scripted === undefined
      ) {
        this.scripted = { node: n, incarnation, writes: 0 };
        this.host.log(
          `n${n.id} install begins at END (scripted crash at write ${this.host.installCrashStep})`,
        );
      }
    }
  }

  /** A network-phase cut, right after the receiver handled the frame: a crash or a partition. */
  private maybeCutTransfer(
    n: CheckpointSimNode,
    incarnation: number,
    from: number,
    group: number,
    t: SeenTransfer,
    phase: CutPhase,
  ): void {
    if (t.cut || !this.cutAllowed() || this.rng.next() >= CUT_RATE[phase]) return;
    t.cut = true;
    const how = this.rng.next();
    const { queue, nodes, net } = this.host;
    queue.at(
      queue.nowMs + 0.01,
      () => {
        if (!n.isLive(incarnation)) return;
        if (how < CUT_CRASH_RECEIVER) {
          this.pend(n.id, group, phase);
          this.crashForCut(n, `(checkpoint transfer cut ${phase})`);
        } else if (how < CUT_CRASH_RECEIVER + CUT_CRASH_SENDER) {
          const sender = nodes.find((s) => s.id === from);
          if (sender === undefined || !sender.alive || sender.downUntilMs >= 0) return;
          this.pend(n.id, group, phase);
          this.crashForCut(sender, `(sender of a checkpoint transfer to n${n.id}, cut ${phase})`);
        } else {
          this.pend(n.id, group, phase);
          this.pend(n.id, group, 'partition');
          const others = nodes.map((o) => o.id).filter((id) => id !== n.id);
          this.host.log(
            `partition [[${n.id}],[${others.join(',')}]] (checkpoint transfer cut ${phase})`,
          );
          net.partition([[n.id], others]);
          queue.at(
            queue.nowMs +
              CUT_PARTITION_MS[0] +
              this.rng.int(CUT_PARTITION_MS[1] - CUT_PARTITION_MS[0]),
            () => {
              this.host.log('heal partition (end of a checkpoint transfer cut)');
              net.heal();
            },
            'checkpoint cut heal',
          );
        }
      },
      `checkpoint cut ${phase}`,
    );
  }

  /**
   * A local-phase cut (load, reset, around the clearing of the install record): the receiver
   * crashes there. True when it crashed at once (the caller's write must not happen).
   */
  private maybeCut(
    n: CheckpointSimNode,
    incarnation: number,
    group: number,
    phase: CutPhase,
  ): boolean {
    if (!n.isLive(incarnation) || !this.cutAllowed() || this.rng.next() >= CUT_RATE[phase])
      return false;
    if (phase === 'after-clear') {
      // The install is complete (its record is gone): nothing is pending for the next one.
      this.host.paths['checkpoint-cut-after-clear']++;
      this.crashForCut(n, '(checkpoint install cut after its record was cleared)', true);
      return true;
    }
    this.pend(n.id, group, phase);
    if (phase !== 'during-reset') {
      // Now, synchronously: the next file or log operation belongs to a dead incarnation.
      this.crashForCut(n, `(checkpoint install cut ${phase})`, true);
      return true;
    }
    // The reset's write is in flight: crash before its fsync (≥ 0.1 ms) completes.
    this.host.queue.at(
      this.host.queue.nowMs + 0.05,
      () => {
        if (n.isLive(incarnation))
          this.crashForCut(n, '(checkpoint install cut during the log reset)', true);
      },
      'checkpoint cut during-reset',
    );
    return false;
  }

  private cutAllowed(): boolean {
    return this.host.faults && this.host.inFaultPhase();
  }

  /** Crashes a node for a cut; it restarts soon (a receiver maybe cut off from peers ahead). */
  private crashForCut(n: CheckpointSimNode, why: string, receiver = false): void {
    this.host.crash(n, why);
    const { queue } = this.host;
    queue.at(
      queue.nowMs + CUT_RESTART_MS[0] + this.rng.int(CUT_RESTART_MS[1] - CUT_RESTART_MS[0]),
      () => {
        if (n.alive || n.downUntilMs >= 0) return;
        if (receiver) this.maybePartitionAhead(n, 'restarts after a cut install');
        this.host.start(n);
      },
      'restart after a checkpoint cut',
    );
  }

  /**
   * Election seeds: cuts `n` off from the peers ahead of it, the lease holders first, as far as
   * a majority stays on its side (a minority could choose nothing, so no lease either way): the
   * peers that would correct stale master variables on `n` are out of reach for 1–2 leases.
   */
  private maybePartitionAhead(n: CheckpointSimNode, why: string, scripted = false): void {
    const leaseMs = this.host.masterLeaseMs;
    if (leaseMs === undefined) return;
    if (!scripted && (!this.cutAllowed() || this.rng.next() >= AHEAD_PARTITION_RATE)) return;
    const { nodes, groups, net, queue } = this.host;
    const voters = nodes.filter((m) => m.voting);
    const majority = Math.floor(voters.length / 2) + 1;
    const end = (m: CheckpointSimNode, g: number): number => (m.store.maxInstanceId(g) ?? -1) + 1;
    const ahead = voters
      .filter((m) => m !== n && m.alive && m.node !== undefined)
      .map((m) => {
        let lead = 0;
        let holds = false;
        for (let g = 0; g < groups; g++) {
          lead = Math.max(lead, m.node!.instanceId(g) - end(n, g));
          holds ||= m.node!.isMaster(g);
        }
        return { m, lead, holds };
      })
      .filter((a) => a.holds || a.lead > 0)
      .sort((a, b) => Number(b.holds) - Number(a.holds) || b.lead - a.lead)
      .slice(0, voters.length - majority)
      .map((a) => a.m.id);
    if (ahead.length === 0) return;
    const rest = nodes.map((m) => m.id).filter((id) => !ahead.includes(id));
    this.host.paths['checkpoint-ahead-peers-partitioned']++;
    this.host.log(
      `partition [[${rest.join(',')}],[${ahead.join(',')}]] (n${n.id} ${why}: the peers ahead of it are cut off)`,
    );
    net.partition([rest, ahead]);
    queue.at(
      queue.nowMs + leaseMs + this.rng.int(leaseMs),
      () => {
        this.host.log('heal partition (end of an ahead-peer cut)');
        net.heal();
      },
      'ahead-peer cut heal',
    );
  }

  /**
   * The scripted install crash: counts the receiver's writes (log and disk) from the END of its
   * first transfer on, and crashes it at the installCrashStep-th, before that write. True when it
   * crashed (the write must not happen). It restarts cut off from the peers ahead of it.
   */
  private scriptedWrite(n: CheckpointSimNode, incarnation: number): boolean {
    const s = this.scripted;
    if (s === undefined || s.node !== n || s.incarnation !== incarnation) return false;
    if (++s.writes < this.host.installCrashStep!) return false;
    this.scripted = undefined;
    this.scriptedDone = true;
    this.host.log(`n${n.id} install step ${s.writes}: crash (scripted)`);
    this.host.crash(n, `(scripted: at write ${s.writes} of its install)`);
    this.host.queue.at(
      this.host.queue.nowMs + SCRIPTED_RESTART_MS,
      () => {
        this.maybePartitionAhead(n, 'restarts after a crash in its install', true);
        this.host.start(n);
      },
      'scripted restart after an install crash',
    );
    return true;
  }

  private pend(node: number, group: number, what: CutPhase | 'corrupt' | 'partition'): void {
    const key = `${node}/${group}`;
    const list = this.pending.get(key) ?? [];
    list.push(what);
    this.pending.set(key, list);
  }

  // ---- the checkpoint invariant -------------------------------------------------------------

  /**
   * A recorder's state was replaced by a checkpoint (its own at start, or one installed). The
   * node's executed values become the checkpoint's, and the checkpoint must equal what the log
   * says: every value in it was proposed and chosen at that instance, and every instance up to
   * the checkpoint instance id that any node executed is in it, with the same values.
   */
  private loaded(
    n: CheckpointSimNode,
    incarnation: number,
    group: number,
    cp: number,
    entries: RecorderEntries,
    how: 'disk' | 'install',
  ): void {
    if (!n.isLive(incarnation)) return;
    const chosen = this.host.chosen[group]!;
    const executed = new Map<number, string[]>();
    const bad = (message: string): void =>
      this.host.note('checkpoint', `n${n.id} group ${group} checkpoint ${cp} (${how}): ${message}`);
    for (const [i, values] of entries) {
      if (!Number.isSafeInteger(i) || i > cp || !Array.isArray(values))
        return bad(`entry ${JSON.stringify([i, values])} is not an instance up to the checkpoint`);
      executed.set(i, [...values]);
      for (const v of values)
        if (!this.host.proposed.has(v))
          this.host.note(
            'validity',
            `n${n.id} group ${group} got "${String(v)}" at instance ${i} through a checkpoint, which nobody proposed`,
          );
      const global = chosen.get(i) ?? [];
      for (let k = 0; k < values.length; k++) {
        if (k >= global.length) global.push(values[k]!);
        else if (global[k] !== values[k])
          return bad(
            `instance ${i} item ${k} is "${values[k]}" but "${global[k]}" was chosen there`,
          );
      }
      chosen.set(i, global);
    }
    for (const [i, global] of chosen) {
      if (i > cp) continue;
      const mine = executed.get(i) ?? [];
      if (mine.length !== global.length)
        return bad(
          `instance ${i} holds ${JSON.stringify(mine)} but ${JSON.stringify(global)} was chosen there`,
        );
    }
    n.executed[group] = executed;
    if (how === 'install') {
      if (n.node !== undefined) this.maybePartitionAhead(n, 'has installed a checkpoint');
      this.host.paths['checkpoint-installs']++;
      if (n.node === undefined) {
        this.host.paths['checkpoint-installs-finished-at-start']++;
        this.host.installFinishedAtStart(n);
      }
      this.host.log(`n${n.id} group ${group} installed the checkpoint of instance ${cp}`);
      const key = `${n.id}/${group}`;
      for (const what of this.pending.get(key) ?? []) {
        if (what === 'corrupt')
          this.host.paths['checkpoint-corrupt-chunk-refused-then-installed']++;
        else if (what === 'partition') this.host.paths['checkpoint-cuts-by-partition']++;
        else this.host.paths[`checkpoint-cut-${what}`]++;
      }
      this.pending.delete(key);
    }
  }

  // ---- the disk as one incarnation sees it --------------------------------------------------

  /** Once the incarnation is dead its late tasks neither read nor write the disk (never settle). */
  private fencedFiles(n: CheckpointSimNode, incarnation: number): CheckpointFiles {
    const disk = this.disks.get(n.id)!;
    const live = (): boolean => n.isLive(incarnation);
    return {
      read: (p, o, l) => (live() ? disk.read(p, o, l) : never),
      write: (p, o, b) =>
        live() && !this.scriptedWrite(n, incarnation) ? disk.write(p, o, b) : never,
      fsync: (p) => (live() && !this.scriptedWrite(n, incarnation) ? disk.fsync(p) : never),
      rename: (a, b) => (live() && !this.scriptedWrite(n, incarnation) ? disk.rename(a, b) : never),
      remove: (p) => (live() && !this.scriptedWrite(n, incarnation) ? disk.remove(p) : never),
      list: (p) => (live() ? disk.list(p) : never),
      stat: (p) => (live() ? disk.stat(p) : never),
      freeBytes: (p) => (live() ? disk.freeBytes(p) : never),
      realpath: (p) => (live() ? disk.realpath(p) : never),
    };
  }
}
