import { TspaxosError } from '@tspaxos/core';

export type TransportErrorCode =
  | 'E_FRAME_TOO_LARGE'
  | 'E_TRUNCATED'
  | 'E_BAD_CRC'
  | 'E_BAD_VERSION'
  | 'E_UNKNOWN_COMMAND'
  | 'E_UNKNOWN_MSG_TYPE'
  | 'E_BAD_FIELD'
  | 'E_UNSAFE_INTEGER'
  | 'E_UNKNOWN_NODE'
  | 'E_WRONG_CLUSTER'
  | 'E_NO_HANDSHAKE'
  | 'E_QUEUE_FULL'
  | 'E_QUEUE_EXPIRED'
  | 'E_PEER_DOWN'
  | 'E_CLOSED'
  | 'E_TOO_MANY_PEERS'
  | 'E_PEER_GONE'
  | 'E_BAD_ARGUMENT';

/**
 * Bad bytes from the network, or a frame we refuse: always a value, never a crash. E_BAD_ARGUMENT:
 * an option or argument out of its range, at construction.
 */
export class TransportError extends TspaxosError {
  declare readonly code: TransportErrorCode;

  constructor(code: TransportErrorCode, message: string) {
    super(code, message);
  }
}
