// The process tests' own helpers: the ports freePorts picks, and what a node that cannot start
// leaves in the error of the wait for it.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { closeServers, ephemeralPorts, freePorts, listenOn, singleNode, tempDir } from './helpers';

describe('freePorts', () => {
  it('picks distinct ports that no listen on port 0 gets', async () => {
    const ports = await freePorts(6);
    expect(new Set(ports).size).toBe(6);
    const { low, high } = ephemeralPorts();
    for (const p of ports) expect(p < low || p > high, `${p} in [${low}, ${high}]`).toBe(true);
    // The link proxies of test/jepsen listen on port 0 once the ports are picked and released
    // (one proxy took a node's port in about 1 cluster in 200): 200 such listens get none.
    const servers = await Promise.all(Array.from({ length: 200 }, () => listenOn(0)));
    try {
      const taken = servers
        .map((s) => (s.address() as net.AddressInfo).port)
        .filter((p) => ports.includes(p));
      expect(taken).toEqual([]);
    } finally {
      await closeServers(servers);
    }
  });
});

describe('NodeProcess', () => {
  const root = tempDir('helpers');
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('a node that exits at start fails ready() at once, with its exit code and output', async () => {
    const node = await singleNode(path.join(root, 'node-1'));
    const http = Number(new URL(node.httpUrl).port);
    const holder = await listenOn(http);
    try {
      node.start();
      // ready() waits up to 120 s for the `listening` line, past this test's timeout: only the
      // exit ends it in time.
      const error = await node.ready().then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(error?.message).toMatch(/^node 1 ended before listening; node 1 exited with code 1;/);
      expect(error?.message).toContain(
        `tspaxos: error: cannot listen on 127.0.0.1:${http}: the address is in use`,
      );
    } finally {
      await closeServers([holder]);
    }
  });
});
