// `@tspaxos/paxos/node`: what only a Node process needs. createNode here also takes a `dataDir`
// (the node opens a SqliteLogStore there) and defaults the clock and randomness to the real
// ones. The main entry `@tspaxos/paxos` loads no Node built-in (design.md §1); this one does.
import type { LogStore } from '@tspaxos/storage';
import { SqliteLogStore } from '@tspaxos/storage/sqlite';
import { PaxosError } from '../errors';
import { createNode as createCoreNode, type NodeOptions, type PaxosNode } from '../node';
import type { RandomSource, Scheduler } from '@tspaxos/core';
import { realRandom, realScheduler } from './real-scheduler';

export { realRandom, realScheduler } from './real-scheduler';

export interface NodeEntryOptions extends Omit<NodeOptions, 'store' | 'scheduler' | 'random'> {
  /** The paxos log; or give `dataDir` and the node opens a SqliteLogStore there. */
  store?: LogStore;
  dataDir?: string;
  /** Clock and timers (default: realScheduler()). */
  scheduler?: Scheduler;
  /** Randomness for jitter (default: realRandom()). */
  random?: RandomSource;
}

/**
 * Creates a node and starts its groups, like `createNode` of `@tspaxos/paxos`, with the Node
 * defaults. A store opened here from `dataDir` is closed again if the node fails to start.
 */
export async function createNode(opts: NodeEntryOptions): Promise<PaxosNode> {
  if ((opts.store === undefined) === (opts.dataDir === undefined)) {
    throw new PaxosError('E_BAD_ARGUMENT', 'give exactly one of store and dataDir');
  }
  const { dataDir, ...rest } = opts;
  const opened = dataDir !== undefined ? SqliteLogStore.open(dataDir) : undefined;
  try {
    return await createCoreNode({
      ...rest,
      store: opened ?? opts.store!,
      scheduler: opts.scheduler ?? realScheduler(),
      random: opts.random ?? realRandom(),
    });
  } catch (error) {
    if (opened !== undefined) await opened.close();
    throw error;
  }
}
