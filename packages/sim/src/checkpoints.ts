// Checkpoints in the simulator (issue 11): every node has a MemoryFiles disk (a crash loses unsynced
// bytes and names) holding its recorder's checkpoint and its staging directory; the recorder
// writes checkpoints now and then; in a share of seeds nodes compact their logs during the fault
// phase, so a node kept down long (or two of them, or one whose state-machine directory was lost)
// must copy a peer's checkpoint and then learn the rest from the log. Transfers and installs are
// cut short in checkpoint-cuts.ts; a loaded checkpoint is checked by checkers/checkpoint.ts (the
// `checkpoint` invariant).
import { SeededRandomSource } from '@tspaxos/core';
import { type CheckpointFiles, INSTALL_META_KEY, MemoryFiles } from '@tspaxos/checkpoint';
import type { LogStore } from '@tspaxos/storage';
import { type Network } from '@tspaxos/transport';
import { CheckpointCuts } from './checkpoint-cuts';
import {
  type CheckpointSimPort,
  type CheckpointSimNode,
  SIM_CHECKPOINT_OPTIONS,
} from './checkpoint-port';
import { CheckpointChecker } from './checkers/checkpoint';
import { type RecorderEntries, RecordingStateMachine } from './recorder';

/** Share of seeds in which nodes compact their logs during the fault phase. */
const COMPACTION_SEED_RATE = 0.6;
/** Gap between two compactions (ms, uniform), and the instances each keeps below its checkpoint. */
const COMPACT_GAP_MS: [number, number] = [300, 1000];
const COMPACT_KEEP_MAX = 3;
/** Gap between two rounds of checkpoint writes (ms, uniform); each node writes with this chance. */
const CHECKPOINT_WRITE_GAP_MS: [number, number] = [400, 1200];
const CHECKPOINT_WRITE_RATE = 0.5;
/** In a compaction seed: chance of one node losing its state-machine directory, and how long it stays down. */
const SM_STATE_LOST_RATE = 0.6;
const SM_STATE_LOST_DOWN_MS: [number, number] = [1500, 3000];
/** In a 5-node compaction seed with a long-down node: chance that node 2 is kept down with it. */
const SECOND_LONG_DOWN_RATE = 0.7;

const never = new Promise<never>(() => {});

export class CheckpointSim {
  readonly disks = new Map<number, MemoryFiles>();
  private readonly rng: SeededRandomSource;
  private readonly compactionSeed: boolean;
  /** Recorders of the live incarnations: `${node}/${group}` → machine. */
  private readonly recorders = new Map<
    string,
    { incarnation: number; sm: RecordingStateMachine }
  >();
  /** Cuts, corruption and the scripted install crash (checkpoint-cuts.ts). */
  private readonly cuts: CheckpointCuts;
  /** The checkpoint invariant (checkers/checkpoint.ts). */
  private readonly checker: CheckpointChecker;

  constructor(private readonly host: CheckpointSimPort) {
    this.rng = new SeededRandomSource(host.options.seed ^ 0xc4ec);
    const drawn = host.faults && this.rng.next() < COMPACTION_SEED_RATE;
    this.compactionSeed = host.options.compaction ?? drawn;
    for (const n of host.nodes) this.disks.set(n.id, new MemoryFiles());
    this.cuts = new CheckpointCuts(host, this.rng);
    this.checker = new CheckpointChecker(host.chosen, host.proposed, (i, m) => host.note(i, m));
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
      duringLoad: () => this.cuts.maybeCut(n, incarnation, group, 'during-load'),
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
      this.cuts.scriptedWrite(n, incarnation) ? never : write();
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
          if (this.cuts.maybeCut(n, incarnation, group, 'before-clear')) return never;
          return store.setMeta(group, key, value, opts).then(() => {
            this.cuts.maybeCut(n, incarnation, group, 'after-clear');
          });
        }),
      resetGroup: (group, opts) =>
        step(() => {
          const p = store.resetGroup(group, opts);
          this.cuts.maybeCut(n, incarnation, group, 'during-reset');
          return p;
        }),
    };
  }

  /** The node's network, watched for checkpoint frames (cut points, corruption, coverage). */
  wrapNetwork(n: CheckpointSimNode, incarnation: number, network: Network): Network {
    return {
      send: (to, group, message) =>
        network.send(to, group, this.cuts.onSend(n, to, group, message)),
      onMessage: (handler) =>
        network.onMessage((from, group, message) => {
          if (n.isLive(incarnation)) this.cuts.onDeliver(n, incarnation, from, group, message);
          handler(from, group, message);
        }),
      close: () => network.close(),
    };
  }

  onNodeLog(n: CheckpointSimNode, level: string, event: string): void {
    this.cuts.onNodeLog(n, event);
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
    if (this.rng.next() < SM_STATE_LOST_RATE && !this.host.topology.membershipChange) {
      const at = 4000 + this.rng.int(Math.max(1, faultPhaseMs - 13_000));
      queue.at(at, () => this.loseStateMachineDirectory(), 'sm state lost');
    }
    if (
      this.host.topology.nodes === 5 &&
      this.host.topology.longDown &&
      this.rng.next() < SECOND_LONG_DOWN_RATE
    )
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
      for (let g = 0; g < this.host.topology.groups; g++) void this.write(n, g);
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
          this.host.nodeErrors.observe({
            kind: 'checkpoint-write-failed',
            node: n.id,
            group,
            error,
          });
        return false;
      },
    );
  }

  private compactOne(): void {
    const up = this.host.nodes.filter((n) => n.alive && n.node !== undefined && n.voting);
    if (up.length === 0) return;
    const n = up[this.rng.int(up.length)]!;
    const group = this.rng.int(this.host.topology.groups);
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
          this.host.nodeErrors.observe({
            kind: 'compact-failed',
            node: n.id,
            group,
            error,
            storeFailed: this.host.storeFailed(n),
          });
        },
      );
    });
  }

  /**
   * A node loses its state machines' directory (a replaced disk under the state, the log kept):
   * where its log was compacted it cannot replay, so it starts with E_NEEDS_CHECKPOINT.
   */
  private loseStateMachineDirectory(): void {
    const { nodes, queue } = this.host;
    const { groups } = this.host.topology;
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

  // ---- a checkpoint loaded ------------------------------------------------------------------

  /**
   * A recorder's state was replaced by a checkpoint (its own at start, or one installed): it must
   * equal what the log says (checkers/checkpoint.ts), and the node's executed values become its.
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
    const executed = this.checker.observe({ kind: 'loaded', node: n.id, group, cp, entries, how });
    if (executed === undefined) return;
    n.executed[group] = executed;
    if (how === 'install') {
      if (n.node !== undefined) this.cuts.maybePartitionAhead(n, 'has installed a checkpoint');
      this.host.paths['checkpoint-installs']++;
      if (n.node === undefined) {
        this.host.paths['checkpoint-installs-finished-at-start']++;
        this.host.installFinishedAtStart(n);
      }
      this.host.log(`n${n.id} group ${group} installed the checkpoint of instance ${cp}`);
      for (const what of this.cuts.takePending(n.id, group)) {
        if (what === 'corrupt')
          this.host.paths['checkpoint-corrupt-chunk-refused-then-installed']++;
        else if (what === 'partition') this.host.paths['checkpoint-cuts-by-partition']++;
        else this.host.paths[`checkpoint-cut-${what}`]++;
      }
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
        live() && !this.cuts.scriptedWrite(n, incarnation) ? disk.write(p, o, b) : never,
      fsync: (p) => (live() && !this.cuts.scriptedWrite(n, incarnation) ? disk.fsync(p) : never),
      rename: (a, b) =>
        live() && !this.cuts.scriptedWrite(n, incarnation) ? disk.rename(a, b) : never,
      remove: (p) => (live() && !this.cuts.scriptedWrite(n, incarnation) ? disk.remove(p) : never),
      list: (p) => (live() ? disk.list(p) : never),
      stat: (p) => (live() ? disk.stat(p) : never),
      freeBytes: (p) => (live() ? disk.freeBytes(p) : never),
      realpath: (p) => (live() ? disk.realpath(p) : never),
    };
  }
}
