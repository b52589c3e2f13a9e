// A black-box fault run against real `tspaxos node` processes, in the spirit of Jepsen: three
// nodes whose paxos links each go through a proxy (so a link can be cut one way), concurrent
// clients on a few keys through random nodes, a nemesis on a seeded schedule; then everything is
// healed, every node must converge (same instance id and lastChecksum), the last values are read
// through every node, and the history is checked per key for linearizability.
import { SeededRandomSource } from '@tspaxos/core';
import { waitFor } from '../helpers';
import { consistentReadBarriersOf, ProxiedCluster, statusOf } from './cluster';
import { HttpClient, runClient, runOp, type Workload } from './client';
import {
  checkKeys,
  describeOp,
  excerpt,
  instanceOrderAnomalies,
  leaseOwnWriteAnomalies,
  plainReadAnomalies,
  type KeyVerdict,
  type Op,
  type ReadMode,
} from './history';
import { DEFAULT_TIMES, FAULT_KINDS, Nemesis, type Fault, type FaultKind } from './nemesis';
import type { LinkCounters } from './proxy';

export interface JepsenOptions {
  /** Faults and clients run at least this long (longer until every fault kind ran once). */
  seconds: number;
  seed: number;
  clients?: number;
  keys?: number;
  /** --master-lease-ms of every node; a pause lasts longer than this. */
  leaseMs?: number;
  /** Keep the nodes' data directories (their path is in the report). */
  keepData?: boolean;
  /**
   * What lease reads are held to. 'linearizable' (the default, what apps/node/README.md promises
   * since issue 18 forwards every write to the master): per key against every node's writes.
   * 'own-writes' (the weaker promise before it): a lease read reflects every write the serving
   * node acknowledged before the read began, and returns only applied values.
   */
  leaseReads?: 'own-writes' | 'linearizable';
  /** Progress lines (faults as they happen). */
  log?: (line: string) => void;
}

/** Defaults of a run (ours: 3 keys keep 8 clients colliding; 2 s lease as test/master.test.ts). */
export const DEFAULT_CLIENTS = 8;
export const DEFAULT_KEYS = 3;
export const DEFAULT_LEASE_MS = 2000;
/** A run goes on past `seconds` only until every fault kind ran, at most this many times `seconds`. */
const MAX_RUN_FACTOR = 3;
/** Deadlines after the heal (ours: a loaded 2-core machine). */
const CONVERGE_TIMEOUT_MS = 90_000;
const FINAL_READ_TIMEOUT_MS = 60_000;
const NODE_STOP_TIMEOUT_MS = 20_000;

export interface OutcomeCounts {
  ok: number;
  fail: number;
  unknown: number;
}

export interface JepsenReport {
  seed: number;
  seconds: number;
  /** How long clients and faults ran. */
  ranMs: number;
  ops: { write: OutcomeCounts } & Record<ReadMode, OutcomeCounts>;
  faults: Record<FaultKind, number>;
  faultLog: Fault[];
  terminateTimeouts: number;
  links: Record<string, LinkCounters>;
  converged: boolean;
  /** Each node's instance id and lastChecksum after the heal. */
  finalStatus: { nodeId: number; instanceId: number; lastChecksum: number }[];
  /** Per key: the value every node returned for a plain read after convergence (all equal). */
  finalValues: Record<string, (string | null)[]>;
  verdicts: { consistent: KeyVerdict[]; lease: KeyVerdict[] };
  plainAnomalies: string[];
  /** Writes and consistent reads answered at an instance chosen before they began. */
  instanceAnomalies: string[];
  leaseReads: 'own-writes' | 'linearizable';
  /** Lease reads below a write their own node acknowledged before they began. */
  leaseAnomalies: string[];
  /**
   * How `?consistent=true` reads ran, per node since its last start (read after the final
   * consistent reads): quorum read rounds, fallback barriers, and barriers of `consistent=barrier`.
   */
  readPath: {
    nodeId: number;
    reads: number;
    rounds: number;
    fallbacks: number;
    barriers: number;
  }[];
  /** 500s and other answers nothing explains, and every node's /status taskErrors. */
  unexpected: string[];
  /** Every failed check, readable, with history excerpts. Empty: the run passed. */
  problems: string[];
  history: Op[];
  dataDir: string;
}

function counts(history: Op[], pick: (op: Op) => boolean): OutcomeCounts {
  const out = { ok: 0, fail: 0, unknown: 0 };
  for (const op of history) if (pick(op) && op.outcome !== undefined) out[op.outcome]++;
  return out;
}

export async function runJepsen(options: JepsenOptions): Promise<JepsenReport> {
  const log = options.log ?? (() => {});
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const rng = new SeededRandomSource(options.seed);
  const ids = [1, 2, 3];
  const keys = Array.from({ length: options.keys ?? DEFAULT_KEYS }, (_, i) => `jepsen-${i}`);
  const started = performance.now();
  const now = () => performance.now() - started;

  const cluster = await ProxiedCluster.create('jepsen', ids, [
    '--master-lease-ms',
    String(leaseMs),
  ]);
  const { nodes, links, dataDir } = cluster;
  const restart = (id: number) => cluster.start(id);
  const clients = new Map(ids.map((id) => [id, new HttpClient(nodes.get(id)!.httpUrl)]));
  const history: Op[] = [];
  const unexpected: string[] = [];
  const workload: Workload = { keys, nodes: clients, history, unexpected, now };

  const paused = new Set<number>();
  const nemesis = new Nemesis(
    {
      nodeIds: ids,
      links,
      now,
      async stop(id, signal) {
        const node = nodes.get(id)!;
        const exit = node.kill(signal);
        const timer = new Promise<'late'>((r) => setTimeout(() => r('late'), NODE_STOP_TIMEOUT_MS));
        if ((await Promise.race([exit, timer])) !== 'late') return { forced: false };
        await node.kill('SIGKILL');
        return { forced: true };
      },
      restart,
      signal(id, signal) {
        if (signal === 'SIGSTOP') paused.add(id);
        else paused.delete(id);
        nodes.get(id)!.child!.kill(signal);
      },
      async master() {
        for (const id of ids) {
          if (paused.has(id) || !nodes.get(id)!.running) continue;
          const s = await statusOf(nodes.get(id)!.httpUrl).catch(() => undefined);
          if (s?.master) return s.master.nodeId;
        }
        return undefined;
      },
    },
    new SeededRandomSource(rng.int(0x7fffffff)),
    { leaseMs, ...DEFAULT_TIMES },
  );

  const problems: string[] = [];
  let ranMs = 0;
  let converged = false;
  let finalStatus: JepsenReport['finalStatus'] = [];
  const readPath: JepsenReport['readPath'] = [];
  const finalValues: Record<string, (string | null)[]> = {};
  try {
    await cluster.startAll();
    log(
      `[jepsen] seed ${options.seed}: 3 nodes up, ${links.links.size} link proxies, data ${dataDir}`,
    );

    // Clients and faults until the time is up and every fault kind ran (within a hard cap).
    const runStart = now();
    const capMs = options.seconds * 1000 * MAX_RUN_FACTOR;
    let stopping = false;
    const stop = () =>
      stopping ||
      (now() - runStart >= options.seconds * 1000 && nemesis.coveredAll) ||
      now() - runStart >= capMs;
    const faultsLogged = { n: 0 };
    const progress = setInterval(() => {
      for (; faultsLogged.n < nemesis.faults.length; faultsLogged.n++) {
        const f = nemesis.faults[faultsLogged.n]!;
        log(`[jepsen] ${(f.startMs / 1000).toFixed(1)} s: ${f.kind} node ${f.node}`);
      }
    }, 500);
    const clientRuns = Array.from({ length: options.clients ?? DEFAULT_CLIENTS }, (_, c) =>
      runClient(workload, c, new SeededRandomSource(rng.int(0x7fffffff)), stop),
    );
    try {
      await nemesis.run(stop);
      stopping = true;
      await Promise.all(clientRuns);
    } finally {
      stopping = true;
      clearInterval(progress);
    }
    ranMs = now() - runStart;

    // Heal: every link, every paused node, every stopped node.
    links.healAll();
    for (const id of paused) nodes.get(id)!.child!.kill('SIGCONT');
    paused.clear();
    for (const id of ids) if (!nodes.get(id)!.running) await restart(id);
    log(`[jepsen] healed after ${(ranMs / 1000).toFixed(1)} s, ${history.length} ops`);

    // Convergence: the same instance id and lastChecksum on every node.
    try {
      finalStatus = await waitFor(
        'every node at the same instance id and lastChecksum',
        async () => {
          const all = await Promise.all(ids.map((id) => statusOf(nodes.get(id)!.httpUrl)));
          const first = all[0]!;
          const same = all.every(
            (s) => s.instanceId === first.instanceId && s.lastChecksum === first.lastChecksum,
          );
          return same ? all : undefined;
        },
        CONVERGE_TIMEOUT_MS,
        200,
      );
      converged = true;
    } catch (error) {
      problems.push(`no convergence after the heal: ${(error as Error).message}`);
      finalStatus = await Promise.all(ids.map((id) => statusOf(nodes.get(id)!.httpUrl)));
    }
    finalStatus = finalStatus.map((s) => ({
      nodeId: s.nodeId,
      instanceId: s.instanceId,
      lastChecksum: s.lastChecksum,
    }));

    // Every key read through every node: a consistent read (in the history, so the checker
    // decides whether every acknowledged write is there or superseded), then plain reads, which
    // after the barrier must agree on every node.
    for (const key of keys) {
      for (const id of ids) {
        await waitFor(
          `a final consistent read of ${key} on node ${id}`,
          async () =>
            (await runOp(workload, 100, id, key, 'read', 'consistent', null, true)).outcome ===
            'ok',
          FINAL_READ_TIMEOUT_MS,
          200,
        );
      }
      const plain: Op[] = [];
      for (const id of ids)
        plain.push(await runOp(workload, 100, id, key, 'read', 'plain', null, true));
      finalValues[key] = plain.map((op) => op.value);
      if (plain.some((op) => op.outcome !== 'ok' || op.value !== plain[0]!.value))
        problems.push(
          `nodes disagree on ${key} after the heal: ${plain.map(describeOp).join('; ')}`,
        );
    }
    for (const id of ids) {
      const url = nodes.get(id)!.httpUrl;
      const s = await statusOf(url);
      for (const e of s.taskErrors)
        unexpected.push(`node ${id} task error ${e.code}: ${e.message}`);
      const { reads, rounds, fallbacks } = s.quorumReads;
      readPath.push({
        nodeId: id,
        reads,
        rounds,
        fallbacks,
        barriers: await consistentReadBarriersOf(url),
      });
    }
  } finally {
    for (const c of clients.values()) c.close();
    await cluster.close(options.keepData);
  }

  const verdicts = {
    consistent: checkKeys(history, keys, ['consistent']),
    lease: checkKeys(history, keys, ['lease']),
  };
  const leaseReads = options.leaseReads ?? 'linearizable';
  for (const [mode, list] of Object.entries(verdicts)) {
    if (mode === 'lease' && leaseReads === 'own-writes') continue;
    for (const v of list) {
      if (v.verdict.result === 'linearizable') continue;
      problems.push(explain(history, nemesis.faults, mode, v));
    }
  }
  const plainAnomalies = plainReadAnomalies(history);
  problems.push(...plainAnomalies.slice(0, 10));
  const instanceAnomalies = instanceOrderAnomalies(history);
  problems.push(...instanceAnomalies.slice(0, 10));
  const leaseAnomalies = leaseOwnWriteAnomalies(history);
  problems.push(...leaseAnomalies.slice(0, 10));
  problems.push(...unexpected);
  const links_ = Object.fromEntries(
    [...links.links].map(([name, link]) => [name, { ...link.counters }]),
  );
  for (const [name, c] of Object.entries(links_)) {
    if (c.bytesForwarded === 0) problems.push(`link ${name} forwarded no bytes`);
  }
  return {
    seed: options.seed,
    seconds: options.seconds,
    ranMs,
    ops: {
      write: counts(history, (o) => o.kind === 'write'),
      consistent: counts(history, (o) => o.mode === 'consistent' && !o.final),
      lease: counts(history, (o) => o.mode === 'lease'),
      plain: counts(history, (o) => o.mode === 'plain' && !o.final),
    },
    faults: { ...nemesis.counts },
    faultLog: nemesis.faults,
    terminateTimeouts: nemesis.terminateTimeouts,
    links: links_,
    converged,
    finalStatus,
    finalValues,
    verdicts,
    plainAnomalies,
    instanceAnomalies,
    leaseReads,
    leaseAnomalies,
    readPath,
    unexpected,
    problems,
    history,
    dataDir,
  };
}

/** A failed key check, readable: the verdict, the obvious anomalies, the ops and faults around. */
function explain(history: Op[], faults: Fault[], mode: string, v: KeyVerdict): string {
  const lines = [
    `${mode} reads, key ${v.key}: ${v.verdict.result} (${v.verdict.ops} ops, ${v.verdict.steps} steps)`,
  ];
  const verdict = v.verdict;
  if (verdict.result === 'not-linearizable') {
    const stuck = history.find((o) => o.id === verdict.stuckAt.id)!;
    lines.push(
      `  cannot linearize ${describeOp(stuck)} (register was ${verdict.valueThen ?? 'nil'} after ${verdict.linearizedThen} ops)`,
    );
    const from = stuck.invokeMs - 3000;
    const to = stuck.completeMs ?? stuck.invokeMs;
    lines.push('  history around it:');
    lines.push(
      ...excerpt(history, v.key, from, to)
        .slice(-40)
        .map((l) => `    ${l}`),
    );
    const near = faults.filter((f) => f.startMs <= to && (f.endMs ?? Infinity) >= from - 10_000);
    lines.push(
      `  faults around it: ${near.map((f) => `${f.kind} node ${f.node} [${f.startMs.toFixed(0)}, ${f.endMs?.toFixed(0) ?? '…'}] ${f.detail}`).join('; ') || 'none'}`,
    );
  }
  if (v.anomalies.length > 0) {
    lines.push(`  ${v.anomalies.length} obvious anomalies, first ones:`);
    lines.push(...v.anomalies.slice(0, 5).map((a) => `    ${a}`));
  }
  return lines.join('\n');
}

/** The report as the CLI and the test print it. */
export function formatReport(r: JepsenReport): string {
  const oc = (c: OutcomeCounts) => `${c.ok} ok / ${c.fail} fail / ${c.unknown} unknown`;
  const verdict = (list: KeyVerdict[]) =>
    list.map((v) => `${v.key} ${v.verdict.result} (${v.verdict.ops} ops)`).join(', ');
  const bytes = Object.values(r.links).reduce((s, c) => s + c.bytesForwarded, 0);
  const cuts = Object.values(r.links).reduce(
    (s, c) => s + c.connectionsCut + c.connectionsRefused,
    0,
  );
  return [
    `jepsen: seed ${r.seed}, ran ${(r.ranMs / 1000).toFixed(1)} s (asked ${r.seconds} s)`,
    `ops: writes ${oc(r.ops.write)}; consistent reads ${oc(r.ops.consistent)}; lease reads ${oc(r.ops.lease)}; plain reads ${oc(r.ops.plain)}`,
    `faults: ${FAULT_KINDS.map((k) => `${k} ${r.faults[k]}`).join(', ')}${r.terminateTimeouts ? ` (${r.terminateTimeouts} SIGTERMs needed a SIGKILL)` : ''}`,
    `links: ${Object.keys(r.links).length} proxies forwarded ${(bytes / 1024).toFixed(0)} KiB; ${cuts} connections cut or refused`,
    `after the heal: ${r.converged ? 'converged' : 'NOT converged'} ${r.finalStatus.map((s) => `n${s.nodeId}@${s.instanceId}/${s.lastChecksum}`).join(' ')}`,
    `verdicts: consistent reads: ${verdict(r.verdicts.consistent)}`,
    `          lease reads: ${verdict(r.verdicts.lease)}${r.leaseReads === 'own-writes' ? ` (not required: lease reads are held to their own node's writes, ${r.leaseAnomalies.length} anomalies)` : ''}`,
    `          plain reads: ${r.plainAnomalies.length} never-written values`,
    `          instance order: ${r.instanceAnomalies.length} ops answered at an instance chosen before they began`,
    `consistent reads since each node's last start: ${r.readPath.map((n) => `n${n.nodeId} ${n.reads} reads / ${n.rounds} rounds / ${n.fallbacks} fallbacks / ${n.barriers} barriers`).join('; ')}`,
    r.problems.length === 0
      ? 'PASS'
      : `FAIL: ${r.problems.length} problems\n${r.problems.join('\n')}`,
  ].join('\n');
}
