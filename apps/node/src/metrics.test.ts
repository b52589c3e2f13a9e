// The default metrics' event-loop sampling (EVENT_LOOP_SAMPLE_MS): prom-client is asked for it,
// and the lag histogram it feeds is still on /metrics.
import { describe, expect, it, vi } from 'vitest';
import { createMetrics, EVENT_LOOP_SAMPLE_MS } from './metrics';
import type { NodeStatus } from './status';

const configs = vi.hoisted(() => [] as unknown[]);
vi.mock('prom-client', async (importOriginal) => {
  const real = await importOriginal<typeof import('prom-client')>();
  return {
    ...real,
    collectDefaultMetrics: (config?: Parameters<typeof real.collectDefaultMetrics>[0]) => {
      configs.push(config);
      real.collectDefaultMetrics(config);
    },
  };
});

describe('the default metrics', () => {
  it('sample the event loop every EVENT_LOOP_SAMPLE_MS, not prom-client’s 10 ms', async () => {
    const metrics = createMetrics(7, {
      status: () => ({ groups: [] }) as unknown as NodeStatus,
      queuedBytesByPeer: () => new Map(),
    });
    expect(EVENT_LOOP_SAMPLE_MS).toBeGreaterThan(10);
    expect(configs).toEqual([
      expect.objectContaining({ eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS }),
    ]);
    const lag = await metrics.registry.getSingleMetricAsString('nodejs_eventloop_lag_p99_seconds');
    expect(lag).toMatch(/^nodejs_eventloop_lag_p99_seconds\{node_id="7"\} /m);
  });
});
