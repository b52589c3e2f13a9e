// The lines an operator reads (issue 19): one when a catch-up starts and finishes, when a
// checkpoint transfer starts and ends (sending or receiving), when this node gains or loses a
// group's master lease, and when a peer connects or drops. Catch-ups and peer links come from
// the paxos node's events and the transport's onEvent; checkpoint transfers and the lease from
// each group's status, compared every OPERATOR_LOG_POLL_MS (their times are within that).
import type { Logger as PinoLogger } from 'pino';
import type { GroupStatus } from './stack';

/** How often the group status is compared for transfer and lease changes (ours: cheap, prompt). */
export const OPERATOR_LOG_POLL_MS = 250;

interface Seen {
  isMaster: boolean;
  sendersStarted: number;
  senderEnds: number;
  sendStartedAtMs: number;
  receiving: boolean;
  receiveBegins: number;
  installs: number;
  restarts: number;
  receiveStartedAtMs: number;
  receiveFrom: number | undefined;
  receiveCheckpointInstanceId: number | undefined;
}

function sum(record: Partial<Record<string, number>>): number {
  return Object.values(record).reduce<number>((a, b) => a + (b ?? 0), 0);
}

export class OperatorLog {
  private readonly seen = new Map<number, Seen>();
  /** Peers whose outbound link is open. */
  private readonly connected = new Set<unknown>();
  /** Lines written, by message (tests). */
  readonly counts: Record<string, number> = {};

  constructor(private readonly log: PinoLogger) {}

  private line(msg: string, fields: Record<string, unknown>): void {
    this.counts[msg] = (this.counts[msg] ?? 0) + 1;
    this.log.info(fields, msg);
  }

  catchUpStarted(e: {
    group: number;
    fromNodeId: number;
    beginInstanceId: number;
    targetInstanceId: number;
  }): void {
    this.line('catch-up-started', {
      group: e.group,
      from: e.fromNodeId,
      fromInstanceId: e.beginInstanceId,
      toInstanceId: e.targetInstanceId,
      instances: e.targetInstanceId - e.beginInstanceId,
    });
  }

  caughtUp(e: {
    group: number;
    fromNodeId: number;
    beginInstanceId: number;
    targetInstanceId: number;
    learnedInstances: number;
    learnedBytes: number;
    durationMs: number;
    instancesPerSec: number;
  }): void {
    this.line('catch-up-finished', {
      group: e.group,
      from: e.fromNodeId,
      fromInstanceId: e.beginInstanceId,
      toInstanceId: e.targetInstanceId,
      instances: e.learnedInstances,
      bytes: e.learnedBytes,
      durationMs: Math.round(e.durationMs),
      instancesPerSec: Math.round(e.instancesPerSec),
    });
  }

  /**
   * A transport event: an outbound link to a peer opening, and closing after it was open, are
   * the operator's lines (a connect that fails is `tcp-connection-error`, not a drop).
   */
  tcp(event: string, fields: Record<string, unknown>): void {
    const peer = fields['to'];
    if (event === 'connected') {
      this.connected.add(peer);
      this.line('peer-connected', {
        group: null,
        peer,
        host: fields['host'],
        port: fields['port'],
      });
    } else if (event === 'disconnected') {
      if (this.connected.delete(peer)) this.line('peer-disconnected', { group: null, peer });
    } else this.log.info({ ...fields, group: null }, `tcp-${event}`);
  }

  /** Compares a group's status with the last one seen and writes a line per change. */
  observe(s: GroupStatus, nowMs: number): void {
    const cp = s.checkpoint;
    const next: Seen = {
      isMaster: s.masterElection.isMaster,
      sendersStarted: cp?.counters.sendersStarted ?? 0,
      senderEnds: cp ? sum(cp.counters.senderEnds) : 0,
      sendStartedAtMs: 0,
      receiving: cp?.receiver.phase === 'receiving',
      receiveBegins: cp?.receiver.counters.begins ?? 0,
      installs: cp?.receiver.counters.installs ?? 0,
      restarts: s.counters.checkpointRestarts,
      receiveStartedAtMs: 0,
      receiveFrom: cp?.receiver.senderNodeId,
      receiveCheckpointInstanceId: cp?.receiver.checkpointInstanceId,
    };
    // Before the first look: not master, nothing sent or received (the process just started).
    const prev = this.seen.get(s.group) ?? {
      isMaster: false,
      sendersStarted: 0,
      senderEnds: 0,
      sendStartedAtMs: nowMs,
      receiving: false,
      receiveBegins: 0,
      installs: 0,
      restarts: 0,
      receiveStartedAtMs: nowMs,
      receiveFrom: undefined,
      receiveCheckpointInstanceId: undefined,
    };
    this.seen.set(s.group, next);
    const group = s.group;
    next.sendStartedAtMs = prev.sendStartedAtMs;
    next.receiveStartedAtMs = prev.receiveStartedAtMs;
    if (next.isMaster !== prev.isMaster) {
      if (next.isMaster)
        this.line('master-lease-gained', {
          group,
          version: s.master?.version ?? null,
          leaseRemainingMs: s.master ? Math.max(0, Math.round(s.master.expiresAtMs - nowMs)) : null,
        });
      else this.line('master-lease-lost', { group, masterNodeId: s.master?.nodeId ?? null });
    }
    // A checkpoint install restarts the group's checkpoint manager: its counters start again.
    const base = next.restarts > prev.restarts || next.receiveBegins < prev.receiveBegins;
    const sender = cp?.sender;
    if (next.sendersStarted > prev.sendersStarted) {
      next.sendStartedAtMs = nowMs;
      this.line('checkpoint-send-started', {
        group,
        to: sender?.toNodeId ?? null,
        checkpointInstanceId: sender?.checkpointInstanceId ?? null,
        bytes: sender?.totalBytes ?? null,
      });
    }
    if (next.senderEnds > prev.senderEnds)
      this.line('checkpoint-send-finished', {
        group,
        to: sender?.toNodeId ?? null,
        reason: sender?.endReason ?? null,
        bytes: sender?.sentBytes ?? null,
        durationMs: Math.round(nowMs - next.sendStartedAtMs),
      });
    if (next.receiveBegins > (base ? 0 : prev.receiveBegins)) {
      next.receiveStartedAtMs = nowMs;
      this.line('checkpoint-receive-started', {
        group,
        from: cp?.receiver.senderNodeId ?? null,
        checkpointInstanceId: cp?.receiver.checkpointInstanceId ?? null,
        bytes: cp?.receiver.announcedBytes ?? null,
      });
    }
    const installed = next.restarts > prev.restarts || next.installs > (base ? 0 : prev.installs);
    if (installed || (prev.receiving && !next.receiving))
      this.line('checkpoint-receive-finished', {
        group,
        from: prev.receiveFrom ?? next.receiveFrom ?? null,
        checkpointInstanceId: prev.receiveCheckpointInstanceId ?? null,
        installed,
        instanceId: s.instanceId,
        durationMs: Math.round(nowMs - next.receiveStartedAtMs),
      });
  }
}
