// The dashboard in a real browser (Debian's chromium, driven by playwright-core): a cluster takes
// writes, node 3 is SIGKILLed, misses writes, restarts; the page shows it down, then lagging /
// catching up (a progress bar while it runs, the finished catch-up after), then every node
// equal. Screenshots go to test-output/.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Cluster,
  group0Status,
  NodeProcess,
  startCluster,
  waitFor,
  waitQueuedFramesExpired,
  writeKeys,
} from './helpers';

const CHROMIUM = '/usr/bin/chromium';
const OUTPUT = fileURLToPath(new URL('../test-output/', import.meta.url));
/**
 * Slow catch-up streams (instances/s) so the page can watch one happen: node 3 misses
 * MISSED_WRITES instances, so its catch-up lasts ~MISSED_WRITES / CATCH_UP_RATE = 10 s, many polls
 * even on a loaded machine (unthrottled, the learner fetches 500 instances in milliseconds and a
 * poll may never see the catch-up).
 */
const CATCH_UP_RATE = 50;
const MISSED_WRITES = 500;
const CATCH_UP_BATCH = 10;
/** Poll interval of the page (its /status requests time out after twice this). */
const POLL_MS = 500;
/** Waits for what the page shows: generous, CI runs every package's tests at once on 2 cores. */
const PAGE_WAIT_MS = 90_000;

/** Installs Debian's chromium when it is missing (never a downloaded browser build). */
function ensureChromium(): void {
  if (fs.existsSync(CHROMIUM)) return;
  for (const args of [
    ['update', '-qq'],
    ['install', '-y', '-qq', 'chromium'],
  ]) {
    const r = spawnSync('apt-get', args, { stdio: 'inherit', timeout: 600_000 });
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed (${r.status})`);
  }
}

async function rowState(page: Page, id: number): Promise<string | null> {
  return page
    .getAttribute(`tr[data-node="${id}"]`, 'data-state', { timeout: 1000 })
    .catch(() => null);
}

describe('dashboard', () => {
  let cluster: Cluster | undefined;
  let browser: Browser | undefined;
  const killed: NodeProcess[] = [];

  beforeAll(async () => {
    ensureChromium();
    fs.mkdirSync(OUTPUT, { recursive: true });
    cluster = await startCluster({
      voters: 3,
      name: 'dashboard',
      // A small batch too: the rate limit lets one full batch (default 2,048) through at once.
      extraArgs: () => [
        '--catch-up-rate',
        String(CATCH_UP_RATE),
        '--catch-up-batch',
        String(CATCH_UP_BATCH),
      ],
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
  }, 600_000);

  afterAll(async () => {
    await browser?.close();
    await cluster?.stop();
    // Every node's log lines (node 3's restarted one at debug level), for reading a failure.
    const dir = path.join(OUTPUT, 'dashboard');
    fs.mkdirSync(dir, { recursive: true });
    for (const n of [...(cluster?.nodes ?? []), ...killed])
      fs.writeFileSync(path.join(dir, `node-${n.id}-${n.child?.pid}.log`), n.lines.join('\n'));
  });

  it(
    'shows a killed node down, then lagging and catching up, then all nodes equal',
    { timeout: 400_000 },
    async () => {
      const nodes = cluster!.nodes;
      const page = await browser!.newPage({ viewport: { width: 1200, height: 700 } });
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      await page.goto(`${nodes[0]!.httpUrl}/?interval=${POLL_MS}`);
      await writeKeys(nodes[0]!.httpUrl, 'd', 0, 100, 4);
      await page.waitForSelector('#summary[data-all-equal="true"]', { timeout: PAGE_WAIT_MS });
      expect(await page.locator('tr[data-node]').count()).toBe(3);
      // Master election is on: one row is marked master.
      await page.waitForSelector('tr[data-master="true"]', { timeout: PAGE_WAIT_MS });
      expect(await page.locator('tr[data-master="true"] .master').count()).toBe(1);

      await nodes[2]!.kill('SIGKILL');
      await waitFor(
        'node 3 shown down',
        async () => (await rowState(page, 3)) === 'down',
        PAGE_WAIT_MS,
      );
      // One write at a time: each takes its own instance, so node 3 misses ~that many instances.
      await writeKeys(nodes[0]!.httpUrl, 'd', 100, 2, 1);
      const queuedSince = Date.now();
      await writeKeys(nodes[0]!.httpUrl, 'd', 102, MISSED_WRITES - 2, 1);
      // Restarted sooner, node 3 would learn the writes from the frames its peers queued for it
      // (no catch-up for the page to show): a fast machine writes 500 keys in a few seconds.
      await waitQueuedFramesExpired(queuedSince);

      const atRestart = await group0Status(nodes[0]!.httpUrl);
      killed.push(nodes[2]!);
      // Its learner's events (asks, confirms, stalls) are debug lines: a failure reads them.
      const again = new NodeProcess(
        3,
        [...nodes[2]!.args, '--log-level', 'debug'],
        nodes[2]!.httpUrl,
      );
      nodes[2] = again;
      again.start();
      await waitFor(
        'node 3 shown behind',
        async () => {
          const state = await rowState(page, 3);
          return state === 'lagging' || state === 'catching-up';
        },
        PAGE_WAIT_MS,
      );
      // The bar while the catch-up runs, or the finished catch-up once it is over: a loaded
      // machine may run the whole catch-up between two of the page's polls (CI did, once).
      await waitFor(
        'node 3 catch-up shown',
        async () => {
          const row = page.locator('tr[data-node="3"]');
          if ((await row.locator('.bar, .last-catch-up').count()) > 0) return true;
          const status = await fetch(`${again.httpUrl}/status`)
            .then((r) => r.json() as Promise<{ groups?: { learner?: unknown }[] }>)
            .catch((e: unknown) => String(e));
          throw new Error(
            `node 1 was at instance ${atRestart.instanceId} when node 3 restarted; row: ${await row.innerText({ timeout: 1000 }).catch(() => '?')}; node 3 learner: ${JSON.stringify(typeof status === 'string' ? status : status.groups?.[0]?.learner)}`,
          );
        },
        PAGE_WAIT_MS,
      );
      await page.screenshot({
        path: path.join(OUTPUT, 'dashboard-catching-up.png'),
        fullPage: true,
      });
      await page.waitForSelector('#summary[data-all-equal="true"]', { timeout: PAGE_WAIT_MS });
      await page.screenshot({ path: path.join(OUTPUT, 'dashboard-equal.png'), fullPage: true });

      // What the page saw, in order: node 3 down, then behind while up, then every node equal.
      const history = (await page.evaluate('window.__dashboard.history')) as {
        nodes: Record<
          string,
          {
            state: string;
            lag: number | null;
            up: boolean;
            lastCatchUp: { instances: number; durationMs: number } | null;
          }
        >;
      }[];
      const downAt = history.findIndex((h) => h.nodes['3']?.state === 'down');
      const behindAt = history.findIndex(
        (h, i) => i > downAt && h.nodes['3']?.up && (h.nodes['3']?.lag ?? 0) > 0,
      );
      const equalAt = history.findIndex(
        (h, i) => i > behindAt && Object.values(h.nodes).every((n) => n.state === 'equal'),
      );
      expect(downAt).toBeGreaterThanOrEqual(0);
      expect(behindAt).toBeGreaterThan(downAt);
      expect(equalAt).toBeGreaterThan(behindAt);
      expect(history[behindAt]!.nodes['3']!.lag).toBeGreaterThan(0);
      // The catch-up the page recorded, and node 3's own account of its catch-ups (its
      // catch-up-finished lines): it learned what it missed in one throttled catch-up (so the
      // page could watch it). Lease renewals (4 a second) go on meanwhile, so a catch-up of a
      // few instances may follow it within one poll: the page's last record can be that one.
      const catchingUp = history.filter((h) => h.nodes['3']?.state === 'catching-up').length;
      const recorded = history
        .map((h) => h.nodes['3']?.lastCatchUp)
        .reduce((a, b) => ((b?.instances ?? -1) > (a?.instances ?? -1) ? b : a), undefined);
      const finished = again
        .json()
        .filter((l) => l['msg'] === 'catch-up-finished')
        .map((l) => ({
          instances: l['instances'] as number,
          durationMs: l['durationMs'] as number,
        }));
      const largest = finished.reduce(
        (a, b) => (b.instances > (a?.instances ?? -1) ? b : a),
        finished[0],
      );
      console.log(
        `dashboard: node 3 catching up in ${catchingUp} of ${history.length} polls; recorded ${JSON.stringify(recorded)}; node 3 finished ${JSON.stringify(finished)}`,
      );
      expect(recorded?.instances).toBeGreaterThan(0);
      expect(finished.map((f) => f.instances)).toContain(recorded?.instances);
      expect(largest?.instances).toBeGreaterThanOrEqual(MISSED_WRITES);
      expect(largest?.durationMs).toBeGreaterThanOrEqual(
        ((MISSED_WRITES / CATCH_UP_RATE) * 1000) / 2,
      );
      expect(pageErrors).toEqual([]);
      expect(fs.statSync(path.join(OUTPUT, 'dashboard-catching-up.png')).size).toBeGreaterThan(
        10_000,
      );
    },
  );
});
