import { describe, expect, it } from 'vitest';
import { AcknowledgedIdentityChecker } from './acknowledged-identity';

const id = (nodeId: number, sequence: number) => ({ nodeId, incarnation: 7, sequence });

describe('AcknowledgedIdentityChecker', () => {
  it('passes an acknowledgement whose instance carries its identity, before or after it is seen chosen', () => {
    const failures: string[] = [];
    const c = new AcknowledgedIdentityChecker((m) => failures.push(m));
    c.observe({ kind: 'chosen', group: 0, instanceId: 4, identity: id(2, 1), node: 3 });
    c.observe({
      kind: 'acknowledged',
      group: 0,
      instanceId: 4,
      identity: id(2, 1),
      node: 2,
      what: 'a',
    });
    c.observe({
      kind: 'acknowledged',
      group: 0,
      instanceId: 5,
      identity: id(1, 0),
      node: 1,
      what: 'b',
    });
    c.observe({ kind: 'chosen', group: 0, instanceId: 5, identity: id(1, 0), node: 2 });
    c.observe({
      kind: 'acknowledged',
      group: 1,
      instanceId: 5,
      identity: id(1, 1),
      node: 1,
      what: 'c',
    });
    c.finish();
    expect(failures).toEqual([]);
    expect(c.counts).toEqual({ checked: 2, unverified: 1 });
  });

  it('fails an acknowledgement at an instance chosen with equal bytes of another proposal (the issue)', () => {
    const failures: string[] = [];
    const c = new AcknowledgedIdentityChecker((m) => failures.push(m));
    c.observe({ kind: 'chosen', group: 0, instanceId: 4, identity: id(2, 1), node: 2 });
    c.observe({
      kind: 'acknowledged',
      group: 0,
      instanceId: 4,
      identity: id(1, 3),
      node: 1,
      what: 'write "k=v"',
    });
    c.observe({
      kind: 'acknowledged',
      group: 0,
      instanceId: 6,
      identity: id(1, 4),
      node: 1,
      what: 'a barrier',
    });
    c.observe({ kind: 'chosen', group: 0, instanceId: 6, identity: undefined, node: 2 });
    expect(failures).toEqual([
      'write "k=v" was acknowledged by n1 as chosen at group 0 instance 4 with identity (n1, 7, 3), but the value chosen there has (n2, 7, 1)',
      'a barrier was acknowledged by n1 as chosen at group 0 instance 6 with identity (n1, 7, 4), but the value chosen there has no identity',
    ]);
  });
});
