import { MemoryLogStore } from '@tspaxos/storage';
import {
  type CheckpointMsg,
  CheckpointMsgType,
  CheckpointSendFileFlag,
  checkpointMsg,
} from '@tspaxos/transport';
import { describe, expect, it } from 'vitest';
import { CheckpointManager, type CheckpointManagerPort } from './manager';
import { MemoryFiles } from './memory-files';
import { resolveCheckpointOptions } from './options';
import type { CheckpointStateMachine } from './state-machine';

function manager(
  machines: CheckpointStateMachine[] = [{ smId: 4, getCheckpointInstanceId: () => 9 }],
) {
  const clock = { ms: 0, instanceId: 0 };
  const asked: number[] = [];
  const sent: CheckpointMsg[] = [];
  const store = new MemoryLogStore();
  const port: CheckpointManagerPort = {
    nodeId: 1,
    group: 0,
    files: new MemoryFiles(),
    store,
    machines,
    stagingRoot: '/d/staging',
    now: () => clock.ms,
    random: () => 0.5,
    sendCheckpoint: (_to, m) => sent.push(m),
    sendAskforCheckpoint: (to) => asked.push(to),
    peers: () => [2, 3, 4, 5],
    majority: () => 3,
    nowInstanceId: () => clock.instanceId,
    minInstallableInstanceId: () => 0,
    promiseBallot: () => ({ proposalId: 0, nodeId: 0 }),
    applyForCheckpoint: () => true,
  };
  const options = resolveCheckpointOptions({
    askRetryMs: 100,
    checkpointModeIdleMs: 1000,
    holdCount: 10, // raised to PhxPaxos's minimum of 300 for automatic compaction
    cleanerStepRecords: 40,
  });
  return { m: new CheckpointManager(port, options), clock, asked, sent, store, options };
}

describe('CheckpointManager', () => {
  it('asks for a checkpoint once a majority said so (PrepareForAskforCheckpoint)', () => {
    const { m, asked } = manager();
    expect(m.prepareForAskforCheckpoint(2)).toBe(false);
    expect(m.prepareForAskforCheckpoint(2)).toBe(false); // the same peer twice counts once
    expect(m.prepareForAskforCheckpoint(3)).toBe(false);
    expect(m.inCheckpointMode).toBe(false);
    expect(m.prepareForAskforCheckpoint(4)).toBe(true);
    expect(asked).toEqual([4]);
    expect(m.inCheckpointMode).toBe(true);
    expect(m.status().counters.modeEntered).toBe(1);
  });

  it('or 60 s after the first one said so', () => {
    const { m, clock, asked, options } = manager();
    expect(m.prepareForAskforCheckpoint(2)).toBe(false);
    clock.ms = options.askMajorityWaitMs;
    expect(m.prepareForAskforCheckpoint(2)).toBe(false);
    clock.ms = options.askMajorityWaitMs + 1;
    expect(m.prepareForAskforCheckpoint(2)).toBe(true);
    expect(asked).toEqual([2]);
  });

  it('ignores SendFile outside checkpoint mode and leaves the mode when a transfer goes quiet', async () => {
    const { m, clock } = manager();
    const begin = checkpointMsg({
      msgType: CheckpointMsgType.SendFile,
      flag: CheckpointSendFileFlag.Begin,
      nodeId: 2,
      uuid: 5,
    });
    expect(await m.handle(2, begin)).toEqual({ kind: 'ignored' });
    expect(m.status().counters.messagesOutsideMode).toBe(1);
    for (const peer of [2, 3, 4]) m.prepareForAskforCheckpoint(peer);
    expect(await m.handle(2, begin)).toEqual({ kind: 'accepted' });
    clock.ms = 999;
    await m.tick();
    expect(m.inCheckpointMode).toBe(true);
    clock.ms = 1000;
    await m.tick();
    expect(m.inCheckpointMode).toBe(false);
    expect(m.status().counters.modeIdleExits).toBe(1);
    expect(m.status().receiver.phase).toBe('idle');
  });

  it('start-up rule: a machine older than the log reports E_NEEDS_CHECKPOINT and asks every peer', async () => {
    const { m, store, asked, clock } = manager([{ smId: 4, getCheckpointInstanceId: () => 3 }]);
    await store.setMinChosenInstanceId(0, 4);
    expect(m.checkStartup()).toBeUndefined(); // checkpoint 3 = min chosen − 1: replayable
    await store.setMinChosenInstanceId(0, 5);
    expect(m.checkStartup()?.code).toBe('E_NEEDS_CHECKPOINT');
    expect(m.status().needsCheckpoint?.code).toBe('E_NEEDS_CHECKPOINT');
    expect(m.inCheckpointMode).toBe(true);
    await m.tick();
    expect(asked).toEqual([2, 3, 4, 5]);
    clock.ms = 50;
    await m.tick();
    expect(asked).toHaveLength(4);
    clock.ms = 10_000; // never leaves the mode on idle while it needs a checkpoint
    await m.tick();
    expect(asked).toHaveLength(8);
    expect(m.inCheckpointMode).toBe(true);
  });

  it('start-up rule: a transfer whose sender went quiet is dropped and the peers asked again', async () => {
    // Found by the simulator: the sender crashed right after BEGIN; the node that needed a
    // checkpoint stayed "receiving" and never asked again.
    const { m, store, asked, clock, options } = manager([
      { smId: 4, getCheckpointInstanceId: () => 3 },
    ]);
    await store.setMinChosenInstanceId(0, 5);
    expect(m.checkStartup()?.code).toBe('E_NEEDS_CHECKPOINT');
    await m.tick();
    expect(asked).toHaveLength(4);
    const begin = checkpointMsg({
      msgType: CheckpointMsgType.SendFile,
      flag: CheckpointSendFileFlag.Begin,
      nodeId: 2,
      uuid: 5,
      checkpointInstanceId: 9,
    });
    expect(await m.handle(2, begin)).toEqual({ kind: 'accepted' });
    clock.ms = options.checkpointModeIdleMs - 1;
    await m.tick();
    expect(asked).toHaveLength(4); // receiving: no new ask yet
    clock.ms = options.checkpointModeIdleMs;
    await m.tick();
    expect(m.status().receiver.phase).toBe('idle');
    expect(m.status().counters.stalledTransfersDropped).toBe(1);
    expect(asked).toHaveLength(8);
    expect(m.inCheckpointMode).toBe(true);
    expect(m.status().needsCheckpoint?.code).toBe('E_NEEDS_CHECKPOINT');
  });

  it('runs one sender at a time and pauses the replayer while it sends', async () => {
    const { m, sent } = manager([
      {
        smId: 4,
        getCheckpointInstanceId: () => 9,
        getCheckpointState: () => ({ dir: '/x', files: [] }),
        executeForCheckpoint: () => true,
      },
    ]);
    await m.onAskforCheckpoint(2);
    await m.onAskforCheckpoint(3);
    expect(m.status().counters.sendersStarted).toBe(1);
    expect(m.status().counters.sendersBusy).toBe(1);
    expect(m.replayer.isPaused).toBe(true);
    expect(sent).toHaveLength(1);
    const ack = checkpointMsg({
      msgType: CheckpointMsgType.SendFileAck,
      nodeId: 2,
      uuid: sent[0]!.uuid,
      flag: 2,
    });
    await m.handle(2, ack);
    expect(m.status().counters.senderEnds).toEqual({ 'fail-ack': 1 });
    // Node 3 asked while node 2 was served: it waited, and is served now.
    expect(m.status().sender).toMatchObject({ toNodeId: 3, phase: 'sending' });
    expect(m.status().counters.sendersStarted).toBe(2);
    expect(m.replayer.isPaused).toBe(true);
  });

  // Issue 17, finding 9c: one asker that went silent held the only sender, and every machine's
  // checkpoint lock (the KV store could not write a checkpoint), for ackTimeoutMs (120 s); a
  // second asker was turned away and had to ask again.
  it('ends a transfer whose receiver went silent after transferIdleTimeoutMs, and serves the asker that waited', async () => {
    const locks: string[] = [];
    const { m, sent, clock, options } = manager([
      {
        smId: 4,
        getCheckpointInstanceId: () => 9,
        getCheckpointState: () => ({ dir: '/x', files: [] }),
        lockCheckpointState: () => void locks.push('lock'),
        unlockCheckpointState: () => void locks.push('unlock'),
        executeForCheckpoint: () => true,
      },
    ]);
    expect(options.transferIdleTimeoutMs).toBe(10_000);
    await m.onAskforCheckpoint(2);
    await m.onAskforCheckpoint(3);
    await m.onAskforCheckpoint(3); // asked again while waiting: queued once
    await m.onAskforCheckpoint(2); // the one being served: nothing to queue
    expect(m.status().waitingAskers).toEqual([3]);
    expect(sent.map((f) => [f.flag, f.uuid])).toEqual([
      [CheckpointSendFileFlag.Begin, sent[0]!.uuid],
    ]);
    clock.ms = options.transferIdleTimeoutMs - 1;
    await m.tick();
    expect(m.status().sender).toMatchObject({ toNodeId: 2, phase: 'sending' });
    clock.ms = options.transferIdleTimeoutMs;
    await m.tick(); // node 2 never acked BEGIN: the sender and the lock are free long before 120 s
    expect(m.status().counters.senderEnds).toEqual({ 'ack-timeout': 1 });
    expect(m.status().sender).toMatchObject({ toNodeId: 3, phase: 'sending' });
    expect(m.status().waitingAskers).toEqual([]);
    expect(locks).toEqual(['lock', 'unlock', 'lock']);
    // The next transfer of this sender has a higher uuid: a receiver tells an older BEGIN apart.
    expect(sent).toHaveLength(2);
    expect(sent[1]!.uuid).toBeGreaterThan(sent[0]!.uuid);
    // Once END is out, its ack may wait for the receiver's fsyncs: ackTimeoutMs applies then.
    const ack = (sequence: number) =>
      checkpointMsg({
        msgType: CheckpointMsgType.SendFileAck,
        nodeId: 3,
        uuid: sent[1]!.uuid,
        flag: 1,
        sequence,
      });
    await m.handle(3, ack(0));
    expect(sent.at(-1)).toMatchObject({ flag: CheckpointSendFileFlag.End, sequence: 1 });
    clock.ms += options.transferIdleTimeoutMs;
    await m.tick();
    expect(m.status().sender).toMatchObject({ toNodeId: 3, phase: 'sending' });
    clock.ms += options.ackTimeoutMs - options.transferIdleTimeoutMs;
    await m.tick();
    expect(m.status().counters.senderEnds).toEqual({ 'ack-timeout': 2 });
    expect(locks).toEqual(['lock', 'unlock', 'lock', 'unlock']);
  });

  it('compacts on its own keeping holdCount (never below 300), in bounded steps per tick', async () => {
    const { m, store, clock } = manager([{ smId: 4, getCheckpointInstanceId: () => 449 }]);
    for (let i = 0; i < 450; i++)
      await store.put(
        0,
        {
          instanceId: i,
          promiseId: 1,
          promiseNodeId: 1,
          acceptedId: 1,
          acceptedNodeId: 1,
          value: new Uint8Array(1),
          checksum: 0,
        },
        { sync: false },
      );
    // Now instance 0: nothing may go yet.
    expect(await m.tick()).toBe(false);
    expect(store.getMinChosenInstanceId(0)).toBe(0);
    clock.instanceId = 450;
    // min(checkpoint 449 + 1, now 450, highest record 449) − 300 = 149, 40 records per tick.
    const steps: boolean[] = [];
    for (let i = 0; i < 10; i++) steps.push(await m.tick());
    expect(store.getMinChosenInstanceId(0)).toBe(149);
    expect(steps.slice(0, 4)).toEqual([true, true, true, true]);
    expect(steps.at(-1)).toBe(false);
    expect(store.get(0, 148)).toBeUndefined();
    expect(store.get(0, 149)).toBeDefined();
    expect(m.status().cleaner.recordsDeleted).toBe(149);
    // Paused: no more deletion, even when the checkpoint moves on.
    m.cleaner.pause();
    await m.tick({ autoCompact: true });
    expect(m.status().cleaner.recordsDeleted).toBe(149);
  });
});
