// `@tspaxos/paxos/node`: the embedder's entry for a Node process. createNode takes who the
// members are and where they listen (one list: ids and addresses together), a data directory
// and the state machine, and builds the rest: a TcpNetwork for the members, a SqliteLogStore in
// dataDir, the real clock and randomness. The main entry `@tspaxos/paxos` loads no Node built-in
// (design.md §1); this one does.
import type { CheckpointFiles, CheckpointOptions } from '@tspaxos/checkpoint';
import type { LogStore } from '@tspaxos/storage';
import { SqliteLogStore } from '@tspaxos/storage/sqlite';
import type { Network } from '@tspaxos/transport';
import { type PeerAddress, TcpNetwork, type TlsOptions } from '@tspaxos/transport/tcp';
import { PaxosError } from '../errors';
import { type Machines, type NodeHandle, nodeHandle } from '../facade';
import type { MasterVariables } from '../master-variables';
import type { Logger } from '@tspaxos/core';
import { type NodeOptions, startNode } from '../node';
import type { PaxosOptionsInput } from '../options';
import type { StateMachine } from '../state-machine';
import { parseAddress } from './address';
import { realRandom, realScheduler } from './real-scheduler';

export { realRandom, realScheduler } from './real-scheduler';
// Everything of the main entry, so that a Node program needs only this one.
export * from '../index';
export type { PeerAddress, TlsOptions } from '@tspaxos/transport/tcp';

/** A voting member: its node id and the address its paxos traffic goes to. */
export interface Member {
  id: number;
  /** `'host:port'` (`'[::1]:7000'` for IPv6) or `{ host, port }`. */
  address: string | PeerAddress;
}

/**
 * createNode's options. The paxos tuning options (PaxosOptionsInput: proposeTimeoutMs,
 * masterLeaseMs, learner, …) sit at the top level beside these.
 */
export interface CreateNodeOptionsBase extends PaxosOptionsInput {
  nodeId: number;
  /** Names the cluster: a peer of another cluster is refused at the TCP hello. */
  clusterId: string;
  /** The voting members of every group at its first start (the log keeps later changes). */
  members: readonly Member[];
  /** Where the log lives (a SqliteLogStore, created if missing). Or give `store`. */
  dataDir?: string;
  /** A log of your own instead of `dataDir`; the node does not close it. */
  store?: LogStore;
  /** A network of your own instead of the TcpNetwork built from `members`; not closed either. */
  network?: Network;
  /** Where this node listens (default: its own member address; needed by a follower). */
  listen?: string | PeerAddress;
  /** Peer TLS for the TcpNetwork (mutual: each side checks the other against `ca`). */
  tls?: TlsOptions;
  /** How many groups (default 1): `node.group(0 … groups - 1)`. */
  groups?: number;
  /** Follow this voting member: learn every value, never vote or propose. */
  followTo?: number;
  /** Run master elections (leases) in every group, or in the groups the function picks. */
  masterElection?: boolean | ((group: number) => boolean);
  onMasterChange?: (group: number, master: MasterVariables) => void;
  logger?: Logger;
  /** Checkpoint transfer and compaction (see the README, "Checkpoints"). */
  checkpoint?: {
    files: CheckpointFiles;
    dir: string;
    options?: Partial<CheckpointOptions>;
    autoCompact?: boolean;
  };
}

/** One state machine (per group when a function): proposals go to it without naming it. */
export interface CreateNodeOptionsSingle extends CreateNodeOptionsBase {
  stateMachine: StateMachine | ((group: number) => StateMachine);
  stateMachines?: never;
}

/** Several state machines: every proposal names its `smId`. */
export interface CreateNodeOptionsSeveral extends CreateNodeOptionsBase {
  stateMachines: readonly StateMachine[] | ((group: number) => readonly StateMachine[]);
  stateMachine?: never;
}

export type CreateNodeOptions = CreateNodeOptionsSingle | CreateNodeOptionsSeveral;

/** The keys createNode takes besides the paxos options (which go to resolveOptions, checked). */
const OWN_KEYS = new Set<string>([
  'nodeId',
  'clusterId',
  'members',
  'dataDir',
  'store',
  'network',
  'listen',
  'tls',
  'groups',
  'followTo',
  'masterElection',
  'onMasterChange',
  'logger',
  'checkpoint',
  'stateMachine',
  'stateMachines',
]);

/**
 * Creates a node and starts its groups: with one `stateMachine` proposals need no smId; with
 * `stateMachines` every proposal names one (a type error otherwise). A store or network it
 * opened is closed again if the start fails, and by stop(); one you passed in is never closed.
 */
export function createNode(opts: CreateNodeOptionsSingle): Promise<NodeHandle<'single'>>;
export function createNode(opts: CreateNodeOptionsSeveral): Promise<NodeHandle<'several'>>;
export async function createNode(opts: CreateNodeOptions): Promise<NodeHandle<Machines>> {
  if (typeof opts !== 'object' || opts === null)
    throw new PaxosError('E_BAD_ARGUMENT', 'createNode takes an options object');
  if ((opts.store === undefined) === (opts.dataDir === undefined))
    throw new PaxosError('E_BAD_ARGUMENT', 'give exactly one of dataDir and store');
  if ((opts.stateMachine === undefined) === (opts.stateMachines === undefined))
    throw new PaxosError('E_BAD_ARGUMENT', 'give exactly one of stateMachine and stateMachines');
  if (!Array.isArray(opts.members) || opts.members.length === 0)
    throw new PaxosError('E_BAD_ARGUMENT', 'members must list at least one { id, address }');
  const addresses = new Map<number, PeerAddress>();
  for (const [i, member] of opts.members.entries()) {
    if (addresses.has(member?.id))
      throw new PaxosError('E_BAD_ARGUMENT', `members: node ${member.id} is listed twice`);
    addresses.set(member?.id, parseAddress(member?.address, `members[${i}].address`));
  }
  const own = opts.listen ?? addresses.get(opts.nodeId);
  if (opts.network === undefined && own === undefined)
    throw new PaxosError(
      'E_BAD_ARGUMENT',
      `node ${opts.nodeId} is not in members: give its listen address (a follower's)`,
    );
  const machines = (group: number): readonly StateMachine[] => {
    if (opts.stateMachine !== undefined)
      return [
        typeof opts.stateMachine === 'function' ? opts.stateMachine(group) : opts.stateMachine,
      ];
    return typeof opts.stateMachines === 'function'
      ? opts.stateMachines(group)
      : opts.stateMachines!;
  };
  const groups = opts.groups ?? 1;
  // Built once per group: a function given by the caller is called once for each group.
  const perGroup: (readonly StateMachine[])[] = [];
  for (let g = 0; g < (Number.isSafeInteger(groups) && groups > 0 ? groups : 0); g++)
    perGroup.push(machines(g));
  if (perGroup.some((list) => list.length === 0))
    throw new PaxosError('E_BAD_ARGUMENT', 'a group needs at least one state machine');
  const paxosOptions = Object.fromEntries(
    Object.entries(opts).filter(([key]) => !OWN_KEYS.has(key)),
  ) as PaxosOptionsInput;

  const openedStore =
    opts.dataDir !== undefined
      ? SqliteLogStore.open(opts.dataDir, opts.logger !== undefined ? { logger: opts.logger } : {})
      : undefined;
  let openedNetwork: TcpNetwork | undefined;
  try {
    if (opts.network === undefined) {
      const peers = new Map(addresses);
      peers.delete(opts.nodeId);
      openedNetwork = new TcpNetwork({
        nodeId: opts.nodeId,
        clusterId: opts.clusterId,
        listen: parseAddress(own!, 'listen'),
        peers,
        ...(opts.tls !== undefined ? { tls: opts.tls } : {}),
      });
      await openedNetwork.start();
    }
    const nodeOptions: NodeOptions = {
      nodeId: opts.nodeId,
      cluster: [...addresses.keys()],
      groups,
      store: openedStore ?? opts.store!,
      network: openedNetwork ?? opts.network!,
      scheduler: realScheduler(),
      random: realRandom(),
      stateMachines: (g) => perGroup[g]!,
      options: paxosOptions,
      ...(opts.followTo !== undefined ? { followTo: opts.followTo } : {}),
      ...(opts.masterElection !== undefined ? { masterElection: opts.masterElection } : {}),
      ...(opts.onMasterChange !== undefined ? { onMasterChange: opts.onMasterChange } : {}),
      ...(opts.logger !== undefined ? { logger: opts.logger } : {}),
      ...(opts.checkpoint !== undefined ? { checkpoint: opts.checkpoint } : {}),
    };
    const core = await startNode(nodeOptions);
    return nodeHandle(core, {
      ownsStore: openedStore !== undefined,
      ownsNetwork: openedNetwork !== undefined,
      machines: (g) => perGroup[g]!,
      scheduler: nodeOptions.scheduler,
    });
  } catch (error) {
    await openedNetwork?.close();
    await openedStore?.close();
    throw error;
  }
}
