/**
 * Trace points of the NBD server on node:diagnostics_channel. Subscribers
 * get plain objects; publishing costs nothing when nobody subscribes.
 */
import diagnosticsChannel from 'node:diagnostics_channel';

/** {export, type, offset, length}: one transmission request received. */
export const requestChannel = diagnosticsChannel.channel('livebackup:nbd:request');
/** {id, remote}: a client connected. */
export const connectChannel = diagnosticsChannel.channel('livebackup:nbd:connect');
/** {id, export, reason}: a client connection ended. */
export const disconnectChannel = diagnosticsChannel.channel('livebackup:nbd:disconnect');

export interface RequestTrace {
  readonly export: string;
  readonly type: string;
  readonly offset: number;
  readonly length: number;
}

export interface ConnectTrace {
  readonly id: number;
  readonly remote: string;
}

export interface DisconnectTrace {
  readonly id: number;
  readonly export: string | undefined;
  readonly reason: string;
}
