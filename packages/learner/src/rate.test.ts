import { describe, expect, it } from 'vitest';
import { RateWindow } from './rate';

describe('RateWindow', () => {
  it('reports per-second rates over the elapsed time, then over the sliding window', () => {
    const r = new RateWindow(5000);
    r.add(0, 100, 1000);
    r.add(900, 100, 1000);
    expect(r.rates(1000, 0)).toEqual({ instancesPerSec: 200, bytesPerSec: 2000 });
    // 10 s later the old samples have left the 5 s window.
    r.add(10_000, 50, 500);
    expect(r.rates(10_000, 0)).toEqual({ instancesPerSec: 10, bytesPerSec: 100 });
    expect(r.rates(20_000, 0)).toEqual({ instancesPerSec: 0, bytesPerSec: 0 });
  });
});
