// Installing a received checkpoint without ever leaving a mix of old and new state (design.md §4;
// PhxPaxos's receiver clears the log at BEGIN and exits after loading, Learner::OnSendCheckpoint_End).
// The order: staged files and a manifest fsynced → a durable install record in the log's meta →
// every machine loads its files (idempotently) → the group's log is reset to start after the
// checkpoint, keeping the acceptor's promise → the record is cleared → staging is removed. At
// start, a record means "finish the install"; staging without one is an unfinished transfer and
// is deleted.
import type { LogStore } from '@tspaxos/storage';
import { CheckpointError } from './errors';
import { type CheckpointFiles, joinPath } from './files';
import type { CheckpointStateMachine } from './state-machine';

/** Meta key of the install record; an empty value means "none". */
export const INSTALL_META_KEY = 'checkpointInstall';
/** Name of the manifest inside a transfer's staging directory. */
export const MANIFEST_NAME = 'MANIFEST';
/**
 * Meta key of the chain anchor: the checksum chain's value at the instance just below the log
 * (`{ instanceId, checksum }`), written by an install, so the chain goes on after it (design.md §2).
 */
export const CHAIN_META_KEY = 'checkpointChain';

/** The checksum chain's value at one instance the log no longer holds (see CHAIN_META_KEY). */
export interface ChainAnchor {
  instanceId: number;
  /** 0: unknown (the sender did not know it either); the chain then restarts at 0. */
  checksum: number;
}

export interface ManifestFile {
  smId: number;
  path: string;
  size: number;
  crc: number;
}

export interface Manifest {
  uuid: number;
  senderNodeId: number;
  checkpointInstanceId: number;
  /** The sender's checksum chain at the checkpoint instance (BEGIN carries it; 0: unknown). */
  chainChecksum: number;
  /**
   * The sender's group state the log's meta keeps outside the checkpoint (the paxos master and
   * system variables with the instance they reflect), opaque here: BEGIN's buffer carries it;
   * '' when the sender sent none. Handed to beforeLogReset at every run of the install.
   */
  groupState?: string;
  files: ManifestFile[];
}

export interface InstallRecord {
  uuid: number;
  checkpointInstanceId: number;
  /** The transfer's staging directory (holds MANIFEST and one sm<id> directory per machine). */
  dir: string;
  /** The acceptor's promise when the install began: kept across the log reset (Paxos safety). */
  promise: { proposalId: number; nodeId: number };
}

export interface InstallContext {
  group: number;
  files: CheckpointFiles;
  store: LogStore;
  machines: readonly CheckpointStateMachine[];
  /** The group's staging root: every transfer's directory is under it. */
  stagingRoot: string;
  /**
   * The host's own state that the checkpoint makes stale (the paxos master variables), made
   * durable here, after the machines loaded and before the log reset: at every run of the
   * install, so a crash anywhere in it leaves no stale state trusted at the next start.
   * `groupState` is the sender's (Manifest.groupState; '' when none came).
   */
  beforeLogReset?(checkpointInstanceId: number, groupState: string): Promise<void>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function smDir(transferDir: string, smId: number): string {
  return joinPath(transferDir, `sm${smId}`);
}

/** Step 1: every staged file and the manifest durable, names included. */
export async function sealStaging(
  ctx: InstallContext,
  dir: string,
  manifest: Manifest,
): Promise<void> {
  for (const file of manifest.files)
    await ctx.files.fsync(joinPath(smDir(dir, file.smId), file.path));
  const bytes = encoder.encode(JSON.stringify(manifest));
  const tmp = joinPath(dir, `${MANIFEST_NAME}.tmp`);
  await ctx.files.write(tmp, 0, bytes);
  await ctx.files.fsync(tmp);
  await ctx.files.rename(tmp, joinPath(dir, MANIFEST_NAME));
  await ctx.files.fsync(ctx.stagingRoot);
}

/** Step 2: the durable install record; from here on a restart finishes the install. */
export async function writeInstallRecord(
  ctx: InstallContext,
  record: InstallRecord,
): Promise<void> {
  await ctx.store.setMeta(ctx.group, INSTALL_META_KEY, encoder.encode(JSON.stringify(record)), {
    sync: true,
  });
}

export function readInstallRecord(store: LogStore, group: number): InstallRecord | undefined {
  const bytes = store.getMeta(group, INSTALL_META_KEY);
  if (bytes === undefined || bytes.length === 0) return undefined;
  const parsed = parseJson(bytes, 'install record');
  const r = parsed as Partial<InstallRecord>;
  if (
    !isId(r.uuid) ||
    !isId(r.checkpointInstanceId) ||
    typeof r.dir !== 'string' ||
    typeof r.promise !== 'object' ||
    r.promise === null ||
    !isId(r.promise.proposalId) ||
    !isId(r.promise.nodeId)
  ) {
    throw new CheckpointError('E_CORRUPT_MANIFEST', `group ${group}: install record is malformed`);
  }
  return r as InstallRecord;
}

export async function readManifest(files: CheckpointFiles, dir: string): Promise<Manifest> {
  const path = joinPath(dir, MANIFEST_NAME);
  const stat = await files.stat(path);
  if (stat === undefined)
    throw new CheckpointError('E_CORRUPT_MANIFEST', `manifest ${path} is missing`);
  const m = parseJson(await files.read(path, 0, stat.size), 'manifest') as Partial<Manifest>;
  if (
    !isId(m.uuid) ||
    !isId(m.checkpointInstanceId) ||
    !isChecksum(m.chainChecksum) ||
    (m.groupState !== undefined && typeof m.groupState !== 'string') ||
    !Array.isArray(m.files)
  ) {
    throw new CheckpointError('E_CORRUPT_MANIFEST', `manifest ${path} is malformed`);
  }
  for (const f of m.files as unknown[]) {
    const file = f as Partial<ManifestFile>;
    if (!isId(file.smId) || typeof file.path !== 'string' || !isId(file.size) || !isId(file.crc))
      throw new CheckpointError('E_CORRUPT_MANIFEST', `manifest ${path} lists a malformed file`);
  }
  return m as Manifest;
}

/**
 * Steps 3–6, all idempotent so a restart can run them again: load, reset, clear, remove.
 * Returns the instance the group restarts from (checkpoint instance id + 1).
 */
export async function finishInstall(ctx: InstallContext, record: InstallRecord): Promise<number> {
  const { group, files, store } = ctx;
  const manifest = await readManifest(files, record.dir);
  if (
    manifest.uuid !== record.uuid ||
    manifest.checkpointInstanceId !== record.checkpointInstanceId
  )
    throw new CheckpointError(
      'E_CORRUPT_MANIFEST',
      `manifest of ${record.dir} does not match the install record`,
    );
  for (const file of manifest.files) {
    const stat = await files.stat(joinPath(smDir(record.dir, file.smId), file.path));
    if (stat === undefined || stat.size !== file.size) {
      throw new CheckpointError(
        'E_CORRUPT_MANIFEST',
        `staged file sm${file.smId}/${file.path} has ${stat?.size ?? 'no'} bytes, the manifest says ${file.size}`,
      );
    }
  }
  const cp = record.checkpointInstanceId;
  for (const sm of ctx.machines) {
    if (sm.loadCheckpointState === undefined) continue;
    const mine = manifest.files.filter((f) => f.smId === sm.smId).map((f) => f.path);
    try {
      await sm.loadCheckpointState(group, smDir(record.dir, sm.smId), mine, cp);
    } catch (error) {
      throw new CheckpointError(
        'E_LOAD_FAILED',
        `state machine ${sm.smId} failed to load the checkpoint of instance ${cp}: ${String(error)}`,
        { cause: error },
      );
    }
    const after = sm.getCheckpointInstanceId?.(group);
    if (after !== undefined && after < cp) {
      throw new CheckpointError(
        'E_LOAD_FAILED',
        `state machine ${sm.smId} loaded checkpoint ${cp} but reports ${after}`,
      );
    }
  }
  await ctx.beforeLogReset?.(cp, manifest.groupState ?? '');
  // The chain goes on from the sender's value at the checkpoint instance (before the reset: once
  // the log starts at cp + 1, a start reads the chain below it from here).
  const anchor: ChainAnchor = { instanceId: cp, checksum: manifest.chainChecksum };
  await store.setMeta(group, CHAIN_META_KEY, encoder.encode(JSON.stringify(anchor)), {
    sync: true,
  });
  await store.resetGroup(group, { minChosenInstanceId: cp + 1 });
  // The acceptor's promise survives the reset: a record at the first instance after the checkpoint
  // with the promise and nothing accepted (acceptor state as AcceptorState::Load reads it).
  await store.put(
    group,
    {
      instanceId: cp + 1,
      promiseId: record.promise.proposalId,
      promiseNodeId: record.promise.nodeId,
      acceptedId: 0,
      acceptedNodeId: 0,
      value: new Uint8Array(0),
      checksum: 0,
    },
    { sync: true },
  );
  await store.setMeta(group, INSTALL_META_KEY, new Uint8Array(0), { sync: true });
  await files.remove(ctx.stagingRoot);
  await files.fsync(ctx.stagingRoot);
  return cp + 1;
}

export type RecoveryOutcome =
  | { kind: 'installed'; startInstanceId: number }
  | { kind: 'removed-unfinished' }
  | { kind: 'nothing' };

/** At start: finish an install the record says was under way, or delete an unfinished transfer. */
export async function recoverInstall(ctx: InstallContext): Promise<RecoveryOutcome> {
  const record = readInstallRecord(ctx.store, ctx.group);
  if (record !== undefined)
    return { kind: 'installed', startInstanceId: await finishInstall(ctx, record) };
  if ((await ctx.files.stat(ctx.stagingRoot)) !== undefined) {
    await ctx.files.remove(ctx.stagingRoot);
    await ctx.files.fsync(ctx.stagingRoot);
    return { kind: 'removed-unfinished' };
  }
  return { kind: 'nothing' };
}

/** The chain anchor an install left, if any (malformed: E_CORRUPT_MANIFEST). */
export function readChainAnchor(store: LogStore, group: number): ChainAnchor | undefined {
  const bytes = store.getMeta(group, CHAIN_META_KEY);
  if (bytes === undefined || bytes.length === 0) return undefined;
  const a = parseJson(bytes, 'chain anchor') as Partial<ChainAnchor>;
  if (!isId(a.instanceId) || !isChecksum(a.checksum))
    throw new CheckpointError('E_CORRUPT_MANIFEST', `group ${group}: chain anchor is malformed`);
  return { instanceId: a.instanceId, checksum: a.checksum };
}

/**
 * The checksum chain's value at `instanceId` as this node knows it: its record's, else the anchor
 * an install left for exactly that instance, else 0 (unknown).
 */
export function chainChecksumAt(store: LogStore, group: number, instanceId: number): number {
  if (instanceId < 0) return 0;
  const record = store.get(group, instanceId);
  if (record !== undefined) return record.checksum;
  const anchor = readChainAnchor(store, group);
  return anchor?.instanceId === instanceId ? anchor.checksum : 0;
}

function isChecksum(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= 0xffff_ffff;
}

function isId(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    const v = JSON.parse(decoder.decode(bytes)) as unknown;
    if (typeof v !== 'object' || v === null) throw new Error('not an object');
    return v;
  } catch (error) {
    throw new CheckpointError('E_CORRUPT_MANIFEST', `${what} is not valid JSON`, { cause: error });
  }
}
