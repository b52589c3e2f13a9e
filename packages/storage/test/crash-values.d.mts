import type { AcceptorRecord } from '@tspaxos/crc-wasm';

export function nextRandom(x: number): number;
export function crashValue(id: number, first: number, count: number, big: boolean): Uint8Array;
export function crashRecord(id: number, first: number, count: number, big: boolean): AcceptorRecord;
export function parseCrashValue(
  record: AcceptorRecord,
): { first: number; count: number } | undefined;
