// How a trace line names a message delivery: sender, receiver, group, kind, instance, and the
// fields that are set.
import { type Message, PaxosMsgType } from '@tspaxos/transport';

const MSG_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(PaxosMsgType).map(([k, v]) => [v, k]),
);

export function describeMessage(from: number, to: number, group: number, message: Message): string {
  if (message.kind !== 'paxos')
    return `n${from}→n${to} g${group} checkpoint msgType=${message.msg.msgType}`;
  const m = message.msg;
  const parts = [
    `n${from}→n${to} g${group} ${MSG_NAMES[m.msgType] ?? m.msgType} i=${m.instanceId}`,
  ];
  if (m.proposalId) parts.push(`b=(${m.proposalId},${m.proposalNodeId || m.nodeId})`);
  if (m.rejectByPromiseId) parts.push(`reject=${m.rejectByPromiseId}`);
  if (m.nowInstanceId) parts.push(`now=${m.nowInstanceId}`);
  if (m.value.length) parts.push(`value=${m.value.length}B`);
  if (m.batch.length) parts.push(`batch=${m.batch.length}`);
  if (m.flag) parts.push(`flag=${m.flag}`);
  return parts.join(' ');
}
