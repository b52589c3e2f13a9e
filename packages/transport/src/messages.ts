// The message schema of the learner, checkpoint and Paxos protocols, with PhxPaxos's numbers
// (src/comm/commdef.h and paxos_msg.proto). Every field is always present: numbers default to 0,
// byte fields to an empty array, so handlers never test for undefined.

export const PaxosMsgType = {
  Prepare: 1,
  PrepareReply: 2,
  Accept: 3,
  AcceptReply: 4,
  AskforLearn: 5,
  SendLearnValue: 6,
  ProposerSendSuccess: 7,
  SendNewValue: 8,
  SendNowInstanceID: 9,
  ComfirmAskforLearn: 10,
  SendLearnValueAck: 11,
  AskforCheckpoint: 12,
  OnAskforCheckpoint: 13,
} as const;
export type PaxosMsgTypeNumber = (typeof PaxosMsgType)[keyof typeof PaxosMsgType];

/**
 * Flags: SendLearnValue NeedAck (PhxPaxos); ours: a SendLearnValue_Ack that reports a gap (the
 * receiver got a value ahead of its now instance id, so the sender rewinds: a NACK), and a
 * ComfirmAskforLearn that declines a peer's prepared stream (the asker learns from another).
 */
export const PaxosMsgFlag = {
  SendLearnValueNeedAck: 1,
  AckGap: 2,
  ComfirmDecline: 4,
  /** On AskforLearn (ours): the asker's master state is unknown; answer with the variables. */
  AskMasterVariables: 8,
} as const;

export const CheckpointMsgType = { SendFile: 1, SendFileAck: 2 } as const;
export const CheckpointSendFileFlag = { Begin: 1, Ing: 2, End: 3 } as const;
export const CheckpointSendFileAckFlag = { Ok: 1, Fail: 2 } as const;

/** Frame commands (PhxPaxos MsgCmd_PaxosMsg / MsgCmd_CheckpointMsg; Forward is ours). */
export const FrameCommand = { Paxos: 1, Checkpoint: 2, Forward: 3, Hello: 0x7f } as const;

/**
 * Forwarding to the master (ours; PhxPaxos's phxkv redirects the client instead): a node that is
 * not the master sends a value to propose (ForwardPropose) or asks for the master's read index
 * (ReadIndex, etcd's ReadIndex with the lease instead of a heartbeat round); the master answers
 * each with its reply, matched by requestId. QuorumReadIndex (issue 22) asks any voting member
 * for its acceptor's position; the reply's `instanceId` is the member's now instance id and
 * ForwardFlag.Accepted says its acceptor accepted a value there (paxos quorum-read.ts).
 */
export const ForwardMsgType = {
  ForwardPropose: 1,
  ForwardReply: 2,
  ReadIndex: 3,
  ReadIndexReply: 4,
  QuorumReadIndex: 5,
  QuorumReadIndexReply: 6,
} as const;

export const ForwardFlag = {
  /** ForwardPropose: join the master's batchPropose batches (else propose() alone). */
  Batch: 1,
  /**
   * A reply's error: the value was not chosen and never will be (the master refused it before
   * proposing it, or it lost its instance and was never proposed again): safe to send again.
   */
  NeverChosen: 2,
  /**
   * QuorumReadIndexReply: the member's acceptor has accepted a value at the reply's instanceId
   * (so that instance may be chosen already, though not learned there).
   */
  Accepted: 4,
} as const;

/**
 * One forwarding message. Every field is always present (numbers 0, strings '', bytes empty).
 * `timeoutMs` is what is left of the sender's deadline, relative: the nodes' clocks are not
 * comparable. A reply names either `instanceId` (with the chosen value's identity and the state
 * machine's `result`, msgpack, empty when none or not plain data) or an error code.
 */
export interface ForwardMsg {
  msgType: number;
  requestId: number;
  nodeId: number;
  smId: number;
  timeoutMs: number;
  flag: number;
  instanceId: number;
  /** ForwardReply: position in the chosen batch, plus one (0: not a batch). */
  batchIndex: number;
  /** ForwardReply: the chosen value's identity (value.ts ProposalIdentity). */
  identityNodeId: number;
  identityIncarnation: number;
  identitySequence: number;
  /** Replies: a PaxosError code, '' on success. */
  errorCode: string;
  errorMessage: string;
  /** ForwardPropose: the value. */
  value: Uint8Array;
  /** ForwardReply: the state machine's result (msgpack), empty when none. */
  result: Uint8Array;
}

/**
 * One chosen instance in a batched SendLearnValue (ours; PhxPaxos sends one value per message).
 * Its instance id is the message's instanceId plus its index: the batch is consecutive by
 * construction. `checksum` is the sender's chain checksum of this instance.
 */
export interface LearnedValue {
  proposalId: number;
  proposalNodeId: number;
  checksum: number;
  value: Uint8Array;
}

export interface PaxosMsg {
  msgType: number;
  instanceId: number;
  nodeId: number;
  proposalId: number;
  proposalNodeId: number;
  value: Uint8Array;
  preAcceptId: number;
  preAcceptNodeId: number;
  rejectByPromiseId: number;
  nowInstanceId: number;
  minChosenInstanceId: number;
  lastChecksum: number;
  flag: number;
  systemVariables: Uint8Array;
  masterVariables: Uint8Array;
  /**
   * SendLearnValue only: consecutive instances from instanceId, lastChecksum being the checksum
   * before the first. Empty for every other message and for the seed's one-value form (value,
   * proposalId, proposalNodeId).
   */
  batch: readonly LearnedValue[];
}

export interface CheckpointMsg {
  msgType: number;
  nodeId: number;
  flag: number;
  uuid: number;
  sequence: number;
  checkpointInstanceId: number;
  checksum: number;
  filePath: string;
  smId: number;
  offset: number;
  buffer: Uint8Array;
}

/** What travels between nodes: a Paxos/learner, checkpoint-transfer or forwarding message. */
export type Message =
  | { kind: 'paxos'; msg: PaxosMsg }
  | { kind: 'checkpoint'; msg: CheckpointMsg }
  | { kind: 'forward'; msg: ForwardMsg };

const EMPTY = new Uint8Array(0);
const NO_BATCH: readonly LearnedValue[] = Object.freeze([]);

/** A PaxosMsg with every field not given set to its default. */
export function paxosMsg(fields: Partial<PaxosMsg> & { msgType: number }): PaxosMsg {
  return {
    msgType: fields.msgType,
    instanceId: fields.instanceId ?? 0,
    nodeId: fields.nodeId ?? 0,
    proposalId: fields.proposalId ?? 0,
    proposalNodeId: fields.proposalNodeId ?? 0,
    value: fields.value ?? EMPTY,
    preAcceptId: fields.preAcceptId ?? 0,
    preAcceptNodeId: fields.preAcceptNodeId ?? 0,
    rejectByPromiseId: fields.rejectByPromiseId ?? 0,
    nowInstanceId: fields.nowInstanceId ?? 0,
    minChosenInstanceId: fields.minChosenInstanceId ?? 0,
    lastChecksum: fields.lastChecksum ?? 0,
    flag: fields.flag ?? 0,
    systemVariables: fields.systemVariables ?? EMPTY,
    masterVariables: fields.masterVariables ?? EMPTY,
    batch: fields.batch ?? NO_BATCH,
  };
}

/** A CheckpointMsg with every field not given set to its default. */
export function checkpointMsg(fields: Partial<CheckpointMsg> & { msgType: number }): CheckpointMsg {
  return {
    msgType: fields.msgType,
    nodeId: fields.nodeId ?? 0,
    flag: fields.flag ?? 0,
    uuid: fields.uuid ?? 0,
    sequence: fields.sequence ?? 0,
    checkpointInstanceId: fields.checkpointInstanceId ?? 0,
    checksum: fields.checksum ?? 0,
    filePath: fields.filePath ?? '',
    smId: fields.smId ?? 0,
    offset: fields.offset ?? 0,
    buffer: fields.buffer ?? EMPTY,
  };
}

/** A ForwardMsg with every field not given set to its default. */
export function forwardMsg(fields: Partial<ForwardMsg> & { msgType: number }): ForwardMsg {
  return {
    msgType: fields.msgType,
    requestId: fields.requestId ?? 0,
    nodeId: fields.nodeId ?? 0,
    smId: fields.smId ?? 0,
    timeoutMs: fields.timeoutMs ?? 0,
    flag: fields.flag ?? 0,
    instanceId: fields.instanceId ?? 0,
    batchIndex: fields.batchIndex ?? 0,
    identityNodeId: fields.identityNodeId ?? 0,
    identityIncarnation: fields.identityIncarnation ?? 0,
    identitySequence: fields.identitySequence ?? 0,
    errorCode: fields.errorCode ?? '',
    errorMessage: fields.errorMessage ?? '',
    value: fields.value ?? EMPTY,
    result: fields.result ?? EMPTY,
  };
}
