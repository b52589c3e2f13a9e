// Two processes on loopback: this one sends a 64 MiB checkpoint (several files) with
// CheckpointSender on NodeFiles over TcpNetwork; a child process receives it
// (receiver-process.mjs) and is killed with SIGKILL at a random point of the transfer or of the
// install, 10 times. Every restart must start (finishing or discarding what the kill left), and
// at the end the child's state equals the sender's byte for byte. Uses the dist builds.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SeededRandomSource } from '@tspaxos/core';
import { SqliteLogStore } from '@tspaxos/storage/sqlite';
import { CheckpointMsgType, CheckpointSendFileAckFlag, PaxosMsgType } from '@tspaxos/transport';
import { TcpNetwork } from '@tspaxos/transport/tcp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeFiles } from '../src/adapters/fs';
import { resolveCheckpointOptions } from '../src/options';
import { CheckpointSender } from '../src/sender';

const FILES: Record<string, number> = { 'a.bin': 24, 'b/c.bin': 24, 'b/d.bin': 16, 'small.txt': 0 }; // MiB
const ROUNDS = 10;
const CHECKPOINT_ID = 4321;

let dir: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tspaxos-2p-'));
  const rng = new SeededRandomSource(11);
  const files = new NodeFiles();
  for (const [name, mib] of Object.entries(FILES)) {
    const block = new Uint8Array(1024 * 1024);
    for (let i = 0; i < block.length; i++) block[i] = rng.int(256);
    if (mib === 0) await files.write(join(dir, 'src', name), 0, new TextEncoder().encode('tiny'));
    for (let m = 0; m < mib; m++) {
      block[0] = m; // every MiB differs
      await files.write(join(dir, 'src', name), m * block.length, block);
    }
  }
  await files.close();
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

async function sha(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

interface Child {
  process: ChildProcess;
  events: Array<Record<string, unknown>>;
  exited: Promise<number | null>;
}

function startChild(senderPort: number): Child {
  const script = fileURLToPath(new URL('./receiver-process.mjs', import.meta.url));
  const child = spawn(process.execPath, [script, join(dir, 'receiver'), String(senderPort)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const events: Array<Record<string, unknown>> = [];
  createInterface({ input: child.stdout! }).on('line', (line) => events.push(JSON.parse(line)));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { process: child, events, exited };
}

async function until(cond: () => boolean, what: string, ms = 120_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('checkpoint transfer between two processes', () => {
  it('survives SIGKILL of the receiver at random points, then completes byte for byte', async () => {
    const files = new NodeFiles();
    const paths = Object.keys(FILES);
    const options = resolveCheckpointOptions({ ackTimeoutMs: 1000 });
    const machine = {
      smId: 4,
      getCheckpointInstanceId: () => CHECKPOINT_ID,
      getCheckpointState: () => ({ dir: join(dir, 'src'), files: paths }),
    };
    const network = new TcpNetwork({
      nodeId: 1,
      clusterId: 'cp-test',
      listen: { host: '127.0.0.1', port: 0 },
    });
    const { port } = await network.start();
    const rng = new SeededRandomSource(5);
    let sender: CheckpointSender | undefined;
    let acks = 0;
    let killAt = Number.POSITIVE_INFINITY;
    let child: Child | undefined;
    let uuid = 0;
    const totalChunks = Object.values(FILES).reduce((n, mib) => n + Math.max(mib, 1), 0);
    network.onMessage((from, _group, message) => {
      const work = async () => {
        if (message.kind === 'paxos' && message.msg.msgType === PaxosMsgType.AskforCheckpoint) {
          if (sender !== undefined && !sender.isEnded) return; // one at a time
          acks = 0; // the kill point counts the acks of this transfer
          sender = new CheckpointSender(
            {
              nodeId: 1,
              group: 0,
              files,
              machines: [machine],
              send: (to, m) => network.send(to, 0, { kind: 'checkpoint', msg: m }),
            },
            options,
            from,
            ++uuid,
          );
          await sender.start(Date.now());
        } else if (
          message.kind === 'checkpoint' &&
          message.msg.msgType === CheckpointMsgType.SendFileAck
        ) {
          const current = sender;
          await current?.onAck(from, message.msg, Date.now());
          if (
            current !== undefined &&
            message.msg.uuid === current.uuid &&
            message.msg.flag === CheckpointSendFileAckFlag.Ok && // not a stray frame's FAIL
            ++acks === killAt
          ) {
            child?.process.kill('SIGKILL');
          }
        }
      };
      work().catch((error) => {
        throw error; // reaches vitest as an unhandled error: fails the run
      });
    });
    const ticker = setInterval(() => void sender?.tick(Date.now()), 100);
    const recoveries: string[] = [];
    try {
      for (let round = 0; round <= ROUNDS; round++) {
        acks = 0;
        // A kill after BEGIN, among the chunks, at END or during the install (END's ack comes
        // once the install record is durable; load and reset run after it).
        killAt =
          round === 0
            ? 1 // right after BEGIN
            : round === 1
              ? totalChunks + 2 // at END's ack: during the install
              : round < ROUNDS
                ? 1 + rng.int(totalChunks + 2)
                : Number.POSITIVE_INFINITY;
        child = startChild(port);
        await until(() => child!.events.some((e) => e.event === 'ready'), 'the child to start');
        recoveries.push(String(child.events.find((e) => e.event === 'ready')!.recovered));
        if (round < ROUNDS) {
          const installed = () => child!.events.some((e) => e.event === 'installed');
          await Promise.race([child.exited, until(installed, 'the kill or the install')]);
          if (installed()) {
            child.process.kill('SIGKILL'); // killed after the install: the next start finds it done
          }
          await child.exited;
        } else {
          await until(
            () => child!.events.some((e) => e.event === 'installed'),
            'the final transfer',
            120_000,
          );
          child.process.kill('SIGTERM');
          await child.exited;
        }
      }
    } finally {
      clearInterval(ticker);
      await network.close();
    }
    // Every restart started; some found an unfinished transfer to discard.
    console.log(`two-process: restarts found ${recoveries.join(',')}`);
    expect(recoveries).toHaveLength(ROUNDS + 1);
    expect(recoveries.filter((r) => r === 'removed-unfinished').length).toBeGreaterThan(0);
    expect(recoveries).toContain('installed'); // a kill during the install was finished at start
    for (const p of paths)
      expect(await sha(join(dir, 'receiver/live', p))).toBe(await sha(join(dir, 'src', p)));
    expect(await readFile(join(dir, 'receiver/live/CP'), 'utf8')).toBe(String(CHECKPOINT_ID));
    const store = SqliteLogStore.open(join(dir, 'receiver/log'));
    try {
      expect(store.getMinChosenInstanceId(0)).toBe(CHECKPOINT_ID + 1);
      expect(store.getMeta(0, 'checkpointInstall')).toEqual(new Uint8Array(0));
    } finally {
      await store.close();
    }
    const staging = await files.list(join(dir, 'receiver/staging'));
    expect(staging).toEqual([]);
  }, 900_000);
});
