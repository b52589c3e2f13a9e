// Network namespaces for process tests (issue 19): nodes on hosts of their own, not ports of one
// loopback. Shared by netns.test.ts (a bridge in the test's namespace, which reaches the nodes
// itself) and operations-hosts.test.ts (the guide's 10.0.0.x hosts behind a bridge in a namespace
// of its own: nothing is added to the machine's network, so the guide's addresses cannot clash
// with a real 10.0.0.0/24). Needs root and iproute2.
import { execFileSync } from 'node:child_process';

export function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The error text of a failed `ip` call. */
function stderrOf(error: unknown): string {
  return ((error as { stderr?: string }).stderr ?? String(error)).trim();
}

/**
 * Why namespaces cannot be made here, or undefined when they can (the namespace `probe` is made
 * and deleted).
 */
export function netnsUnavailable(probe: string): string | undefined {
  if (process.platform !== 'linux')
    return `network namespaces are Linux only (${process.platform})`;
  if (process.getuid?.() !== 0) return 'ip netns needs root (run the tests as root)';
  try {
    ip('netns', 'add', probe);
  } catch (error) {
    const e = error as { code?: string };
    return e.code === 'ENOENT'
      ? 'no `ip` command (install iproute2)'
      : `ip netns add failed: ${stderrOf(error)}`;
  }
  ip('netns', 'del', probe);
  return undefined;
}

/**
 * Says why `file`'s tests cannot run: a warning in every run that skips them (the reason, not a
 * silent pass), and on CI an error.
 */
export function reportUnavailable(file: string, reason: string | undefined): void {
  if (reason === undefined) return;
  console.warn(`${file}: SKIPPED, ${reason}`);
  if (process.env['CI']) throw new Error(`${file} cannot run on CI: ${reason}`);
}

/** Whether process `pid` still runs. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code !== 'ESRCH';
  }
}

/** Kills every process still inside namespace `ns` (ip netns pids), then deletes it. */
function deleteNamespace(ns: string): void {
  for (const pid of ip('netns', 'pids', ns).split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch (error) {
      if ((error as { code?: string }).code !== 'ESRCH') throw error;
    }
  }
  ip('netns', 'del', ns);
}

/**
 * An isolated network: one namespace per host (its loopback up, `eth0` with the host's address)
 * and one for the bridge that joins them (`br0`, one veth per host). Namespace names are
 * `${family}-${pid}-…` with the test process's pid, so a later run deletes what a killed run left
 * (its pid gone) and leaves a run in progress alone.
 */
export class IsolatedNetwork {
  private readonly made: string[] = [];
  private constructor(readonly prefix: string) {}

  /** Deletes the namespaces of earlier runs of `family` whose process is gone; returns them. */
  static removeLeftovers(family: string): string[] {
    const pattern = new RegExp(`^${family}-(\\d+)-\\S+`);
    const removed: string[] = [];
    for (const line of ip('netns', 'list').split('\n')) {
      const m = pattern.exec(line);
      if (m === null || alive(Number(m[1]))) continue;
      const ns = m[0];
      deleteNamespace(ns);
      removed.push(ns);
    }
    return removed;
  }

  /** `hosts`: host name → its address with prefix length (`10.0.0.1/24`). */
  static create(family: string, hosts: Record<string, string>): IsolatedNetwork {
    const network = new IsolatedNetwork(`${family}-${process.pid}`);
    const bridgeNs = network.add('bridge');
    ip('-n', bridgeNs, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', bridgeNs, 'link', 'set', 'br0', 'up');
    let i = 0;
    for (const [host, address] of Object.entries(hosts)) {
      const ns = network.add(host);
      const veth = `v${i++}`; // names inside the bridge's namespace: no clash with the machine's
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      ip('-n', bridgeNs, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      ip('-n', bridgeNs, 'link', 'set', veth, 'master', 'br0');
      ip('-n', bridgeNs, 'link', 'set', veth, 'up');
      ip('-n', ns, 'addr', 'add', address, 'dev', 'eth0');
      ip('-n', ns, 'link', 'set', 'eth0', 'up');
    }
    return network;
  }

  private add(name: string): string {
    const ns = this.namespace(name);
    ip('netns', 'add', ns);
    this.made.push(ns);
    return ns;
  }

  namespace(host: string): string {
    return `${this.prefix}-${host}`;
  }

  /** The command prefix that runs a program on `host`. */
  exec(host: string): string[] {
    return ['ip', 'netns', 'exec', this.namespace(host)];
  }

  /**
   * Kills what still runs in the namespaces and deletes them (a veth goes with its namespace);
   * returns what could not be deleted, and the namespaces of this prefix still listed.
   */
  destroy(): { failures: string[]; left: string[] } {
    const failures: string[] = [];
    for (const ns of this.made.splice(0)) {
      try {
        deleteNamespace(ns);
      } catch (error) {
        failures.push(`netns ${ns}: ${stderrOf(error)}`);
      }
    }
    const left = ip('netns', 'list')
      .split('\n')
      .filter((l) => l.startsWith(`${this.prefix}-`));
    return { failures, left };
  }
}
