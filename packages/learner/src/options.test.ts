// Learner options are checked at construction (E_BAD_ARGUMENT naming the field and its range):
// `sendRateInstancesPerSec: 0` re-armed a 0 ms timer forever, and `senderAckLead + 1 <
// receiverAckLead` meant the receiver never acked.
import { describe, expect, it } from 'vitest';
import { LearnerError } from './errors';
import type { LearnerPort } from './port';
import { Learner } from './learner';
import { DEFAULT_LEARNER_OPTIONS, type LearnerOptions, resolveLearnerOptions } from './options';

const host = {} as LearnerPort; // never reached: the options are refused first

describe('learner options', () => {
  it('resolves the defaults and partial input', () => {
    expect(resolveLearnerOptions()).toEqual(DEFAULT_LEARNER_OPTIONS);
    expect(resolveLearnerOptions({ senderAckLead: 3, receiverAckLead: 4 })).toMatchObject({
      senderAckLead: 3,
      receiverAckLead: 4,
      askforLearnIntervalMs: 2500,
    });
  });

  it.each<[Record<string, unknown>, string]>([
    [
      { sendRateInstancesPerSec: 0 },
      'learner option sendRateInstancesPerSec must be an integer in 1 … 9007199254740991, got 0',
    ],
    [{ askforLearnIntervalMs: Number.NaN }, 'askforLearnIntervalMs must be an integer in 1 …'],
    [{ askforLearnJitterMs: -1 }, 'askforLearnJitterMs must be an integer in 0 …'],
    [{ senderAckLead: 2.5 }, 'senderAckLead must be an integer in 1 …'],
    [{ senderAckTimeoutMs: Infinity }, 'senderAckTimeoutMs must be an integer in 1 …'],
    [
      { receiverAckLead: '4' },
      'receiverAckLead must be an integer in 1 … 9007199254740991, got "4"',
    ],
    [
      { senderAckLead: 2, receiverAckLead: 4 },
      'receiverAckLead (4) must be at most senderAckLead + 1 (3)',
    ],
    [{ receiverAckLeed: 4 }, 'unknown learner option receiverAckLeed'],
  ])('refuses %j at construction', (options, message) => {
    let refused: unknown;
    try {
      new Learner(host, options as Partial<LearnerOptions>);
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(LearnerError);
    expect((refused as LearnerError).code).toBe('E_BAD_ARGUMENT');
    expect((refused as LearnerError).message).toContain(message);
  });
});
