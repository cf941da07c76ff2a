/**
 * Turns one message from a client into its reply, following QEMU's
 * dispatcher: request shape, out-of-band rules, capabilities negotiation,
 * command lookup, argument validation, then the handler. Errors thrown by
 * handlers become error replies here (see qmp-error.ts).
 */
import { LivebackupError, messageOf } from '../errors.js';
import type { CommandTable, QmpCommandContext } from './command-table.js';
import type { JsonMessage } from './json-message-stream.js';
import { toQmpErrorBody, type QmpErrorBody } from './qmp-error.js';
import { parseRequest, type QmpRequest } from './request.js';
import { noArguments } from './schema.js';
import { validateValue } from './schema-validator.js';
import { handleCommandChannel, type QmpLogger } from './trace.js';

/** Protocol state of one connection, read and updated while dispatching. Owned by its session. */
export interface ConnectionState {
  readonly sessionId: number;
  negotiated: boolean;
  readonly capabilities: Set<string>;
}

/** What dispatching needs from the server. */
export interface DispatcherHost {
  readonly commands: CommandTable;
  readonly logger: QmpLogger | undefined;
  /** Check each reply against its command's `returns` type (for tests). */
  readonly checkReplies: boolean;
}

/** The context given to command handlers, plus the hook qmp_capabilities uses. */
export interface QmpSessionContext extends QmpCommandContext {
  /** Complete negotiation with these capabilities (used by qmp_capabilities only). */
  negotiate(capabilities: readonly string[]): void;
}

/** A reply: `return` first and `id` last, or `id` first and `error` last, as QEMU orders them. */
export type QmpReply = { return: unknown; id?: unknown } | { id?: unknown; error: QmpErrorBody };

const errorReply = (error: QmpErrorBody, id: unknown, hasId: boolean): QmpReply => (hasId ? { id, error } : { error });

/**
 * The reply to one input message. `afterReply` collects callbacks the
 * caller must run once the reply is written (quit uses it).
 */
export async function dispatchMessage(
  message: JsonMessage,
  state: ConnectionState,
  host: DispatcherHost,
  afterReply: (callback: () => void) => void,
): Promise<QmpReply> {
  if (message.kind === 'error') return { error: { class: 'GenericError', desc: message.message } };
  const parsed = parseRequest(message.value, state.capabilities.has('oob'));
  if ('malformed' in parsed) return errorReply({ class: 'GenericError', desc: parsed.malformed }, parsed.id, parsed.hasId);
  const request: QmpRequest = parsed;
  const fail = (errorClass: QmpErrorBody['class'], desc: string): QmpReply => errorReply({ class: errorClass, desc }, request.id, request.hasId);

  const command = host.commands.get(request.command);
  if (request.outOfBand) {
    if (command === undefined) return fail('CommandNotFound', `The command ${request.command} has not been found`);
    return fail('GenericError', `The command ${request.command} does not support OOB`);
  }
  if (!state.negotiated && request.command !== 'qmp_capabilities') {
    return fail('CommandNotFound', `Expecting capabilities negotiation with 'qmp_capabilities'`);
  }
  if (state.negotiated && request.command === 'qmp_capabilities') {
    return fail('CommandNotFound', 'Capabilities negotiation is already complete, command ignored');
  }
  if (command === undefined) return fail('CommandNotFound', `The command ${request.command} has not been found`);

  const context: QmpSessionContext = {
    sessionId: state.sessionId,
    capabilities: state.capabilities,
    afterReply,
    negotiate: (capabilities) => {
      for (const capability of capabilities) state.capabilities.add(capability);
      state.negotiated = true;
    },
  };
  if (handleCommandChannel.hasSubscribers) handleCommandChannel.publish({ sessionId: state.sessionId, command: request.command, id: request.id });
  try {
    const args = validateValue(command.args ?? noArguments, request.arguments, 'qmp');
    const result = (await command.handler(args, context)) ?? {};
    if (host.checkReplies && command.returns !== undefined) {
      try {
        validateValue(command.returns, result, 'qmp');
      } catch (error) {
        throw new LivebackupError('INVALID_STATE', `Reply to ${request.command} does not match its schema: ${messageOf(error)}`);
      }
    }
    return request.hasId ? { return: result, id: request.id } : { return: result };
  } catch (error) {
    if (!(error instanceof LivebackupError)) {
      host.logger?.warn({ sessionId: state.sessionId, command: request.command, err: error }, 'QMP command failed unexpectedly');
    }
    return errorReply(toQmpErrorBody(error, command.errorClasses), request.id, request.hasId);
  }
}
