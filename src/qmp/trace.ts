/**
 * Trace points of the QMP layer (node:diagnostics_channel), named after
 * QEMU's handle_qmp_command / monitor_qmp_respond / monitor_event.
 * Messages are only built when someone subscribes.
 */
import { channel } from 'node:diagnostics_channel';

/** `{sessionId, command, id}` when a command starts. */
export const handleCommandChannel = channel('livebackup:qmp:handle-command');
/** `{sessionId, reply}` when a reply is written. */
export const respondChannel = channel('livebackup:qmp:respond');
/** `{event, data}` when an event is broadcast. */
export const eventChannel = channel('livebackup:qmp:event');

/** The subset of a pino logger the QMP server uses. */
export interface QmpLogger {
  debug(details: object, message: string): void;
  warn(details: object, message: string): void;
}
