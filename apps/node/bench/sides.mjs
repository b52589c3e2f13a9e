// The two servers of the side-by-side cells behind one shape, so every cell runs the same code
// against both: tspaxos (3 `tspaxos node` processes, --groups 1) and etcd (3 members, through
// its JSON gateway). A side's `put`/`get` take a keep-alive client (http-client.mjs) and the
// index of the node to send to.
import { startEtcd } from './etcd-cluster.mjs';
import { endpoint, httpClient } from './http-client.mjs';
import { TIMELINE } from './knobs.mjs';
import { sleep, startCluster, startNode, statusOf, waitForMaster } from './tspaxos-cluster.mjs';

/** Polls `probe()` (which may throw while a node starts) until it is true; throws at the deadline. */
export async function until(probe, what, deadlineMs = 120_000) {
  const end = performance.now() + deadlineMs;
  for (;;) {
    try {
      if (await probe()) return;
    } catch {
      // not up yet
    }
    if (performance.now() > end) throw new Error(`timed out after ${deadlineMs} ms: ${what}`);
    await sleep(20);
  }
}

/** tspaxos with its defaults but the extra flags given. */
export async function tspaxosSide(extra = []) {
  const c = await startCluster(1, extra);
  const targets = c.urls.map(endpoint);
  const down = new Set();
  const metricsClient = httpClient(1);
  let restarted;
  return {
    name: 'tspaxos',
    leader: () =>
      waitForMaster(
        c,
        [0, 1, 2].filter((i) => !down.has(i)),
      ),
    put: (client, i, key, value) =>
      client.request(targets[i], `/kv/${key}`, { method: 'PUT', body: value }),
    get: (client, i, key, mode) =>
      client.request(
        targets[i],
        `/kv/${key}?consistent=${mode === 'linearizable' ? 'true' : mode === 'barrier' ? 'barrier' : 'lease'}`,
      ),
    pid: (i) => c.nodes[i].child.pid,
    /**
     * Node i's consistent reads, the quorum read rounds (?consistent=true) and the barriers
     * (?consistent=barrier) that served them (its /metrics).
     */
    async readCounts(i) {
      const res = await metricsClient.request(targets[i], '/metrics');
      const text = res.body.toString();
      const value = (name) =>
        Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1]);
      return {
        reads: value('tspaxos_consistent_reads_total'),
        barriers: value('tspaxos_consistent_read_barriers_total'),
        rounds: value('tspaxos_quorum_read_rounds_total'),
        fallbacks: value('tspaxos_quorum_read_fallbacks_total'),
      };
    },
    /**
     * Polls the /status of nodes `indices` every few ms until stop(); returns every change seen
     * in each one's master view (the lease holder, null when none is live there), its election
     * attempts and the recorded master version, with performance.now() times (the kill cell's
     * timeline, issue 22).
     */
    watchMaster(indices) {
      const events = [];
      const last = new Map();
      let stopped = false;
      const poll = async (i) => {
        while (!stopped) {
          try {
            const s = await statusOf(c.urls[i]);
            const now = performance.now();
            const seen = {
              master: s.master?.nodeId ?? null,
              remainingMs: s.master?.remainingMs ?? null,
              attempts: s.masterElection.counters.attempts,
              version: s.masterElection.recorded?.version ?? null,
            };
            const prev = last.get(i);
            if (
              prev === undefined ||
              prev.master !== seen.master ||
              prev.attempts !== seen.attempts ||
              prev.version !== seen.version
            )
              events.push({ t: now, node: i, ...seen });
            last.set(i, seen);
          } catch {
            // the node is gone or busy: the next poll tells
          }
          await sleep(5);
        }
      };
      const loops = indices.map(poll);
      return async () => {
        stopped = true;
        await Promise.all(loops);
        return events;
      };
    },
    /**
     * The paxos forwarding counters of /status summed over the 3 nodes, and the most instances
     * any node has applied (the spread cell's frames, apply waits and values per instance).
     */
    async forwardCounts() {
      const sum = { instances: 0 };
      for (const url of c.urls) {
        const res = await metricsClient.request(endpoint(url), '/status');
        const status = JSON.parse(res.body.toString());
        for (const [k, v] of Object.entries(status.forwarding ?? {})) sum[k] = (sum[k] ?? 0) + v;
        sum.instances = Math.max(sum.instances, status.groups[0].instanceId);
        for (const k of ['batchWaits', 'batchWaitsFilled'])
          sum[k] = (sum[k] ?? 0) + (status.groups[0].counters?.[k] ?? 0);
      }
      return sum;
    },
    /** What node i has applied: its now instance id. */
    progress: async (i) => (await statusOf(c.urls[i])).instanceId,
    async kill(i) {
      down.add(i);
      c.nodes[i].child.kill('SIGKILL');
      await c.nodes[i].exited;
    },
    restart(i) {
      const t0 = performance.now();
      const lines = [];
      c.nodes[i] = startNode(
        c.argsOf(i + 1),
        TIMELINE ? (line) => lines.push([performance.now() - t0, line]) : undefined,
      );
      restarted = { node: i + 1, lines };
      down.delete(i);
    },
    /** BENCH_NODE_TIMELINE: the last restarted node's start, from its log lines, to caught up. */
    printRestartTimeline(caughtUpMs) {
      if (restarted === undefined || !TIMELINE) return;
      console.log(restartTimeline(restarted, caughtUpMs));
    },
    stop: () => {
      metricsClient.close();
      return c.stop();
    },
  };
}

/** The milestones of a restart (ms from spawn, as the bench received the node's log lines). */
function restartTimeline({ node, lines }, caughtUpMs) {
  const seen = new Map();
  for (const [at, line] of lines) {
    let j;
    try {
      j = JSON.parse(line);
    } catch {
      continue; // not a log line
    }
    if (!seen.has(j.msg)) seen.set(j.msg, { at, ...j });
  }
  const step = (msg, what, detail = () => '') => {
    const e = seen.get(msg);
    return e === undefined ? `${what} —` : `${what} ${Math.round(e.at)}${detail(e)}`;
  };
  return [
    `restart timeline of node ${node} (ms from spawn):`,
    step('data-dir', 'first log line', (e) =>
      e.startMs === undefined
        ? ''
        : ` (process clock: Node bootstrapped ${e.startMs.nodeBootstrap}, modules loaded ${e.startMs.modulesLoaded}, this line ${e.startMs.dataDir})`,
    ),
    step(
      'log-opened',
      'log open',
      (e) => ` (${e.durationMs} ms, ${e.replayedRecords} records replayed)`,
    ),
    step(
      'group-started',
      'group started',
      (e) => ` (replayed ${e.replayedInstances} instances in ${e.replayMs} ms)`,
    ),
    step('listening', 'HTTP listening'),
    step('peer-connected', 'first peer connected'),
    step('catch-up-started', 'catch-up started', (e) => ` (${e.instances} instances)`),
    step(
      'catch-up-finished',
      'catch-up finished',
      (e) => ` (${e.instances} instances in ${e.durationMs} ms)`,
    ),
    `status caught up ${Math.round(caughtUpMs)}`,
  ].join('\n  ');
}

const b64 = (s) => Buffer.from(s).toString('base64');

export async function etcdSide() {
  const c = await startEtcd();
  const targets = c.urls.map(endpoint);
  const down = new Set();
  // The put body's value part is encoded once per value (the client's work is not what we time).
  const encoded = new Map();
  const valueB64 = (value) => {
    let v = encoded.get(value);
    if (v === undefined) encoded.set(value, (v = value.toString('base64')));
    return v;
  };
  const json = (o) => Buffer.from(JSON.stringify(o));
  return {
    name: 'etcd',
    leader: async () => {
      for (;;) {
        const i = await c.leader();
        if (!down.has(i)) return i; // a killed leader may still be named by a survivor for a while
        await sleep(20);
      }
    },
    put: (client, i, key, value) =>
      client.request(targets[i], '/v3/kv/put', {
        method: 'POST',
        body: Buffer.from(`{"key":"${b64(key)}","value":"${valueB64(value)}"}`),
      }),
    get: (client, i, key, mode) =>
      client.request(targets[i], '/v3/kv/range', {
        method: 'POST',
        // etcd has one linearizable read (its ReadIndex): the barrier cell runs it too.
        body: json(
          mode === 'linearizable' || mode === 'barrier'
            ? { key: b64(key) }
            : { key: b64(key), serializable: true },
        ),
      }),
    pid: (i) => c.members[i].child.pid,
    /** What member i has applied: its store revision (a serializable read answers locally). */
    progress: (i) => c.revision(i),
    async kill(i) {
      down.add(i);
      c.members[i].child.kill('SIGKILL');
      await c.members[i].exited;
    },
    restart(i) {
      c.restart(i);
      down.delete(i);
    },
    stop: () => c.stop(),
  };
}
