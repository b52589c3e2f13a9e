// Checkpoint transfers and installs cut short (issues 11 and 17): transfers are cut at each
// phase (after BEGIN, mid-chunk, before END, during the load, during the log reset, around the
// clearing of the install record) by a crash or a partition and must complete later; chunks are
// corrupted on the sender's side of the wire (below the frame CRC, so only the receiver's chunk
// CRC can catch them) and must be refused and sent again. In election seeds a node that comes
// back from a cut install, or has just installed, is partitioned from the peers ahead of it (the
// lease holder first). A scripted run (SimOptions.installCrashStep) crashes the receiver at the
// k-th write of its first install. What was cut is kept until the install that follows it.
import type { RandomSource } from '@tspaxos/core';
import { crc32 } from '@tspaxos/crc-wasm';
import {
  CheckpointMsgType,
  CheckpointSendFileAckFlag,
  CheckpointSendFileFlag,
  type Message,
  PaxosMsgType,
} from '@tspaxos/transport';
import type { CheckpointSimPort, CheckpointSimNode } from './checkpoint-port';

export type CutPhase =
  | 'after-begin'
  | 'mid-chunk'
  | 'before-end'
  | 'during-load'
  | 'during-reset'
  | 'before-clear'
  | 'after-clear';

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

/** Transfer progress as the receiver's deliveries show it. */
interface SeenTransfer {
  announced: number;
  received: number;
  endSequence: number | undefined;
  cut: boolean;
}

/** What was cut (or refused as corrupt) before an install: counted once that install is done. */
export type PendingCut = CutPhase | 'corrupt' | 'partition';

export class CheckpointCuts {
  /** Cuts (and refused corrupt chunks) of a node's group not yet followed by an install. */
  private readonly pending = new Map<string, PendingCut[]>();
  private readonly seen = new Map<string, SeenTransfer>();
  private readonly begun = new Set<string>();
  /** The scripted install crash: the receiver's incarnation counting writes, and how many so far. */
  private scripted: { node: CheckpointSimNode; incarnation: number; writes: number } | undefined;
  private scriptedDone = false;

  /** `rng`: the checkpoint simulation's stream, shared (draws interleave in event order). */
  constructor(
    private readonly host: CheckpointSimPort,
    private readonly rng: RandomSource,
  ) {}

  /** A node's log line: the scripted install that finished without its crash. */
  onNodeLog(n: CheckpointSimNode, event: string): void {
    if (event === 'group-restarted-from-checkpoint' && this.scripted?.node === n) {
      this.host.log(
        `n${n.id} install done after ${this.scripted.writes} writes (scripted: no crash)`,
      );
      this.scripted = undefined;
      this.scriptedDone = true;
    }
  }

  /** What was cut before the install of a node's group just done (forgotten: counted once). */
  takePending(node: number, group: number): PendingCut[] {
    const key = `${node}/${group}`;
    const list = this.pending.get(key) ?? [];
    this.pending.delete(key);
    return list;
  }

  onSend(n: CheckpointSimNode, to: number, group: number, message: Message): Message {
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

  onDeliver(
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
        this.host.options.installCrashStep !== undefined &&
        !this.scriptedDone &&
        this.scripted === undefined
      ) {
        this.scripted = { node: n, incarnation, writes: 0 };
        this.host.log(
          `n${n.id} install begins at END (scripted crash at write ${this.host.options.installCrashStep})`,
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
  maybeCut(n: CheckpointSimNode, incarnation: number, group: number, phase: CutPhase): boolean {
    if (!n.isLive(incarnation) || !this.cutAllowed() || this.rng.next() >= CUT_RATE[phase])
      return false;
    if (phase === 'after-clear') {
      // The install is complete (its record is gone): nothing is pending for the next one. The
      // node dies before its in-process restart counts it, so count it as one a restart finishes
      // (the restart starts from it: seed 151 caught a long-down node up this way).
      this.host.paths['checkpoint-cut-after-clear']++;
      this.host.installFinishedAtStart(n);
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
  maybePartitionAhead(n: CheckpointSimNode, why: string, scripted = false): void {
    const leaseMs = this.host.masterLeaseMs;
    if (leaseMs === undefined) return;
    if (!scripted && (!this.cutAllowed() || this.rng.next() >= AHEAD_PARTITION_RATE)) return;
    const { nodes, net, queue } = this.host;
    const { groups } = this.host.topology;
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
  scriptedWrite(n: CheckpointSimNode, incarnation: number): boolean {
    const s = this.scripted;
    if (s === undefined || s.node !== n || s.incarnation !== incarnation) return false;
    if (++s.writes < this.host.options.installCrashStep!) return false;
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

  private pend(node: number, group: number, what: PendingCut): void {
    const key = `${node}/${group}`;
    const list = this.pending.get(key) ?? [];
    list.push(what);
    this.pending.set(key, list);
  }
}
