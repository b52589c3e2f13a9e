// The one file that imports the tspaxos packages, so their entry points can move (subpath exports
// such as @tspaxos/paxos/node, @tspaxos/transport/tcp) by editing only here.
import { type NodeOptions, type PaxosNode, startNode } from '@tspaxos/paxos/internal';
import { realRandom, realScheduler } from '@tspaxos/paxos/node';
import { SqliteLogStore } from '@tspaxos/storage/sqlite';

export {
  PaxosNode,
  PaxosError,
  type PaxosErrorCode,
  type ProposeResult,
  defaultPaxosOptions,
  MASTER_LEASE_MIN_MS,
  NO_SM_ID,
  type StateMachine,
  type ExecuteContext,
  type GroupStatus,
  type NodeCounters,
  type ForwardingCounters,
  type QuorumReadCounters,
  type Logger as PaxosLogger,
} from '@tspaxos/paxos/internal';
export { TcpNetwork, type PeerAddress, type TcpCounters } from '@tspaxos/transport/tcp';
export { encodeHello } from '@tspaxos/transport';
export { NodeFiles } from '@tspaxos/checkpoint/fs';

/**
 * The server's node: the lower-level PaxosNode of @tspaxos/paxos/internal (group index per call),
 * on a SQLite log in `dataDir` (closed again if the start fails) and the real clock.
 */
export async function createNode(
  opts: Omit<NodeOptions, 'store' | 'scheduler' | 'random'> & { dataDir: string },
): Promise<PaxosNode> {
  const { dataDir, ...rest } = opts;
  // The open's repairs (a torn tail cut after a crash) go to the server's log.
  const openedAt = performance.now();
  const store = SqliteLogStore.open(
    dataDir,
    rest.logger !== undefined ? { logger: rest.logger } : {},
  );
  // A restarted node's time to caught up starts with this open (issue 22's timeline).
  rest.logger?.('info', 'log-opened', {
    durationMs: Math.round(performance.now() - openedAt),
    ...store.recovery,
  });
  try {
    return await startNode({ ...rest, store, scheduler: realScheduler(), random: realRandom() });
  } catch (error) {
    await store.close();
    throw error;
  }
}
