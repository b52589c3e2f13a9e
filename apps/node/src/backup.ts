// A backup: a consistent KV checkpoint of every group of one node, in one file (GET /admin/backup
// writes it, `tspaxos restore` turns it into a data directory a node starts from).
//
//   "TSPXBAK1" · u32 header length · header (JSON: BackupHeader) · each group's KV file, in
//   header order · u32 CRC-32 of every byte before it
//
// Each group's file also carries its own CRC-32 and size in the header, so a restore names the
// group that is damaged. A restore reads and checks the whole file before it writes anything.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { KV_FILE, readAppliedInstanceId } from './kv-state-machine';

export const BACKUP_MAGIC = 'TSPXBAK1';
export const BACKUP_FORMAT = 1;
/** Largest header we read (ours: 64 groups of a few fields each fit in far less). */
const MAX_HEADER_BYTES = 1024 * 1024;

export interface BackupGroup {
  group: number;
  /** The instance id the group's KV file reflects: a node restored from it starts after it. */
  checkpointInstanceId: number;
  bytes: number;
  crc32: number;
}

export interface BackupHeader {
  format: number;
  nodeId: number;
  groupCount: number;
  createdAtMs: number;
  groups: BackupGroup[];
}

export class BackupError extends Error {
  override readonly name = 'BackupError';
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** The bytes of a backup (header, files, trailer) as chunks, for a streamed answer. */
export function* backupChunks(
  header: Omit<BackupHeader, 'groups' | 'format'>,
  files: { group: number; checkpointInstanceId: number; bytes: Buffer }[],
): Generator<Buffer> {
  const full: BackupHeader = {
    format: BACKUP_FORMAT,
    ...header,
    groups: files.map((f) => ({
      group: f.group,
      checkpointInstanceId: f.checkpointInstanceId,
      bytes: f.bytes.length,
      crc32: zlib.crc32(f.bytes),
    })),
  };
  const json = Buffer.from(JSON.stringify(full));
  let crc = 0;
  for (const chunk of [
    Buffer.from(BACKUP_MAGIC),
    u32(json.length),
    json,
    ...files.map((f) => f.bytes),
  ]) {
    crc = zlib.crc32(chunk, crc);
    yield chunk;
  }
  yield u32(crc);
}

/** Checks a whole backup; throws BackupError (one line) for anything short, damaged or unknown. */
export function parseBackup(bytes: Buffer): { header: BackupHeader; files: Buffer[] } {
  const magic = Buffer.from(BACKUP_MAGIC);
  if (bytes.length < magic.length + 8 || !bytes.subarray(0, magic.length).equals(magic))
    throw new BackupError('not a tspaxos backup (no TSPXBAK1 header)');
  const body = bytes.subarray(0, bytes.length - 4);
  if (zlib.crc32(body) !== bytes.readUInt32BE(bytes.length - 4))
    throw new BackupError(
      `the backup is damaged or truncated (CRC mismatch over ${bytes.length} bytes)`,
    );
  const headerBytes = bytes.readUInt32BE(magic.length);
  const start = magic.length + 4;
  if (headerBytes > MAX_HEADER_BYTES || start + headerBytes > body.length)
    throw new BackupError(`the backup header length ${headerBytes} runs past the file`);
  let header: BackupHeader;
  try {
    header = JSON.parse(body.subarray(start, start + headerBytes).toString('utf8')) as BackupHeader;
  } catch (error) {
    throw new BackupError(`the backup header is not JSON: ${(error as Error).message}`);
  }
  if (header.format !== BACKUP_FORMAT)
    throw new BackupError(`backup format ${String(header.format)} is not ${BACKUP_FORMAT}`);
  if (!Array.isArray(header.groups) || header.groups.length !== header.groupCount)
    throw new BackupError(
      `the backup header lists ${header.groups?.length} groups of ${header.groupCount}`,
    );
  const files: Buffer[] = [];
  let at = start + headerBytes;
  for (const [i, g] of header.groups.entries()) {
    if (g.group !== i) throw new BackupError(`the backup lists group ${g.group} at position ${i}`);
    const file = body.subarray(at, at + g.bytes);
    if (file.length !== g.bytes) throw new BackupError(`group ${i} is truncated`);
    if (zlib.crc32(file) !== g.crc32) throw new BackupError(`group ${i} is damaged (CRC mismatch)`);
    files.push(file);
    at += g.bytes;
  }
  if (at !== body.length)
    throw new BackupError(`${body.length - at} unexpected bytes after the groups`);
  return { header, files };
}

/**
 * Writes the data directory a node starts from: each group's KV checkpoint, no paxos log (the
 * node starts its log after the checkpoint: paxos restart.ts skipToCheckpoint). The directory
 * must not exist or be empty; it is built beside it and renamed into place, so a failure leaves
 * nothing behind.
 */
export function restoreBackup(bytes: Buffer, dataDir: string): BackupHeader {
  const { header, files } = parseBackup(bytes);
  const target = path.resolve(dataDir);
  if (fs.existsSync(target) && fs.readdirSync(target).length > 0)
    throw new BackupError(`${dataDir} is not empty: restore writes a new data directory`);
  const temp = `${target}.restoring-${process.pid}`;
  fs.rmSync(temp, { recursive: true, force: true });
  try {
    for (const [g, file] of files.entries()) {
      const dir = path.join(temp, `kv-g${g}`, 'checkpoint');
      fs.mkdirSync(dir, { recursive: true });
      const out = path.join(dir, KV_FILE);
      fs.writeFileSync(out, file, { flush: true });
      const found = readAppliedInstanceId(out);
      if (found !== header.groups[g]!.checkpointInstanceId)
        throw new BackupError(
          `group ${g}'s file reflects instance ${found}, the header says ${header.groups[g]!.checkpointInstanceId}`,
        );
    }
    if (fs.existsSync(target)) fs.rmdirSync(target);
    fs.renameSync(temp, target);
  } catch (error) {
    fs.rmSync(temp, { recursive: true, force: true });
    if (error instanceof BackupError) throw error;
    throw new BackupError(`cannot write ${dataDir}: ${(error as Error).message}`);
  }
  return header;
}
