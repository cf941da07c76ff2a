/**
 * Trace points of the job layer on node:diagnostics_channel. Subscribers get
 * plain objects; publishing costs nothing when nobody listens.
 *
 *  - livebackup:job:start         { id, type }
 *  - livebackup:job:end           { id, type, status: 'completed'|'cancelled'|'failed', error? }
 *  - livebackup:job:error-action  { id, operation, action, errno }
 */
import diagnosticsChannel from 'node:diagnostics_channel';

export const jobStartChannel = diagnosticsChannel.channel('livebackup:job:start');
export const jobEndChannel = diagnosticsChannel.channel('livebackup:job:end');
export const jobErrorActionChannel = diagnosticsChannel.channel('livebackup:job:error-action');

/** Publish `message` on `channel` when it has subscribers. */
export function trace(channel: diagnosticsChannel.Channel, message: Record<string, unknown>): void {
  if (channel.hasSubscribers) channel.publish(message);
}
