// A local 3-member etcd cluster for the side-by-side cells: Debian's `etcd-server` (3.4),
// installed with apt-get when missing and possible (root, apt), else the etcd side is skipped
// with a message. Members on loopback with ports picked free, default flags (fsync on, election
// timeout 1 s), data dirs in a temp dir removed at stop; driven through the HTTP/JSON gateway.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { endpoint, httpClient } from './http-client.mjs';
import { freePorts, sleep, spawnChild } from './tspaxos-cluster.mjs';

const ETCD = 'etcd';

function etcdVersion() {
  try {
    const out = execFileSync(ETCD, ['--version'], { encoding: 'utf8', stdio: 'pipe' });
    return /etcd Version: (\S+)/.exec(out)?.[1] ?? out.split('\n')[0];
  } catch {
    return null;
  }
}

/**
 * The etcd version to bench against, installing Debian's etcd-server when it is missing and
 * this process may (root with apt-get); null, with the reason printed, when there is none.
 */
export function ensureEtcd() {
  const found = etcdVersion();
  if (found !== null) return found;
  if (process.getuid?.() !== 0) {
    console.log('etcd: not installed and not root: the etcd side is skipped');
    return null;
  }
  const apt = (...args) =>
    execFileSync('apt-get', args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  try {
    console.log('etcd: installing etcd-server with apt-get …');
    try {
      apt('install', '-y', '--no-install-recommends', 'etcd-server');
    } catch {
      apt('update'); // no package lists yet
      apt('install', '-y', '--no-install-recommends', 'etcd-server');
    }
  } catch (error) {
    console.log(
      `etcd: apt-get install etcd-server failed, the etcd side is skipped: ${error.message}`,
    );
    return null;
  }
  const installed = etcdVersion();
  if (installed === null) console.log('etcd: installed, but `etcd --version` fails: skipped');
  return installed;
}

const b64 = (s) => Buffer.from(s).toString('base64');

/** Starts 3 members; resolves once every member answers and a leader is elected. */
export async function startEtcd() {
  const ports = await freePorts(6);
  const dir = mkdtempSync(join(tmpdir(), 'etcd-bench-'));
  const peerUrl = (i) => `http://127.0.0.1:${ports[i]}`;
  const urls = [0, 1, 2].map((i) => `http://127.0.0.1:${ports[i + 3]}`);
  const initial = [0, 1, 2].map((i) => `m${i + 1}=${peerUrl(i)}`).join(',');
  const argsOf = (i) => [
    '--name',
    `m${i + 1}`,
    '--data-dir',
    join(dir, `m${i + 1}`),
    '--listen-peer-urls',
    peerUrl(i),
    '--initial-advertise-peer-urls',
    peerUrl(i),
    '--listen-client-urls',
    urls[i],
    '--advertise-client-urls',
    urls[i],
    '--initial-cluster',
    initial,
    '--initial-cluster-token',
    'bench',
    '--initial-cluster-state',
    'new', // ignored on a restart: the data dir holds the membership
  ];
  const client = httpClient(4);
  const start = (i) => {
    // etcd logs every election and compaction to stderr: kept in the temp dir, not printed.
    const log = openSync(join(dir, `m${i + 1}.log`), 'a');
    const member = spawnChild(ETCD, argsOf(i), ['ignore', log, log]);
    closeSync(log);
    return member;
  };
  const post = async (i, path, body) => {
    const res = await client.request(endpoint(urls[i]), path, {
      method: 'POST',
      body: Buffer.from(JSON.stringify(body)),
    });
    if (!res.ok) throw new Error(`etcd ${path}: HTTP ${res.status} ${res.body}`);
    return JSON.parse(res.body.toString());
  };
  const members = [0, 1, 2].map(start);
  const cluster = {
    urls,
    members,
    dir,
    /** The index of the member that says it is the leader (polls through an election). */
    async leader() {
      for (const deadline = performance.now() + 60_000; performance.now() < deadline;) {
        for (const i of [0, 1, 2]) {
          try {
            const s = await post(i, '/v3/maintenance/status', {});
            if (s.leader !== undefined && s.leader === s.header.member_id) return i;
          } catch {
            // not up yet, or killed: ask the next
          }
        }
        await sleep(20);
      }
      throw new Error('etcd: no leader within 60 s');
    },
    /** The revision member i has applied (a serializable read answers from its own state). */
    async revision(i) {
      const r = await post(i, '/v3/kv/range', { key: b64('\0'), serializable: true });
      return Number(r.header.revision);
    },
    restart(i) {
      members[i] = start(i);
      return members[i];
    },
    async stop() {
      for (const m of members) m.child.kill('SIGTERM');
      await Promise.all(members.map((m) => m.exited));
      client.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await cluster.leader();
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}
