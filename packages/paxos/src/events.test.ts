import { describe, expect, it } from 'vitest';
import { NodeEventEmitter } from './events';

describe('NodeEventEmitter', () => {
  it('calls listeners in order, removes them, and lets a throwing listener’s error go up', () => {
    const e = new NodeEventEmitter();
    const got: string[] = [];
    const offA = e.on('learned', (x) => got.push(`a${x.instanceId}`));
    e.on('learned', (x) => got.push(`b${x.instanceId}`));
    e.emit('learned', { group: 0, instanceId: 1, count: 1 });
    offA();
    e.emit('learned', { group: 0, instanceId: 2, count: 1 });
    expect(got).toEqual(['a1', 'b1', 'b2']);
    expect(e.hasListeners('caughtUp')).toBe(false);
    e.on('catchUpStarted', () => {
      throw new Error('listener bug');
    });
    expect(() =>
      e.emit('catchUpStarted', {
        group: 0,
        fromNodeId: 1,
        beginInstanceId: 0,
        targetInstanceId: 5,
      }),
    ).toThrow('listener bug');
  });
});
