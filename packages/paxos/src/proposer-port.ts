// The proposer's port onto its group: the membership, the chain and the ballot the previous
// instance was chosen with (both ride on Prepare/Accept), how it broadcasts and schedules, and
// whom it tells when its value is chosen.
import type { Ballot, Logger } from '@tspaxos/core';
import type { PaxosMsg } from '@tspaxos/transport';
import type { GroupConfig } from './group-config';
import type { IOLoop } from './io-loop';
import { Proposer } from './proposer';

export interface ProposerPortContext {
  readonly config: GroupConfig;
  readonly loop: IOLoop;
  members(): readonly number[];
  /** To every member, this node included (PhxPaxos BroadcastMessage). */
  broadcast(msg: PaxosMsg): void;
  lastChecksum(): number;
  previousChosenBallot(): Ballot;
  /** The proposer's value was chosen: learn it here, then tell the others. */
  proposerChosen(instanceId: number, proposalId: number): void;
  log: Logger;
}

export function createProposer(group: ProposerPortContext): Proposer {
  const { config } = group;
  return new Proposer(
    {
      nodeId: config.nodeId,
      members: () => group.members(),
      broadcast: (msg) => group.broadcast(msg),
      schedule: (delay, fn) => group.loop.schedule(delay, fn),
      random: () => config.random.next(),
      reachable: config.reachable,
      lastChecksum: () => group.lastChecksum(),
      previousChosenBallot: () => group.previousChosenBallot(),
      chosen: (instanceId, proposalId) => group.proposerChosen(instanceId, proposalId),
      event: (name, fields) => group.log('debug', `proposer-${name}`, fields),
    },
    config.options,
    { proposerIgnoresAcceptedValues: config.faults?.proposerIgnoresAcceptedValues ?? false },
  );
}
