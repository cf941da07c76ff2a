/**
 * One QMP client connection: greeting, capabilities negotiation, requests
 * answered strictly in order, and events once negotiation is complete.
 *
 * Input is read as a JSON message stream (see json-message-stream.ts);
 * reading pauses while MAX_QUEUED_REQUESTS requests wait, and a reply
 * waits for the socket to drain, so a client that floods us without
 * reading cannot make us buffer without bound. A client whose unread
 * output (events) exceeds MAX_UNREAD_OUTPUT_BYTES is disconnected.
 */
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { LivebackupError, messageOf } from '../errors.js';
import type { CommandTable, QmpCommandContext } from './command-table.js';
import { JsonMessageStream, type JsonMessage, type JsonStreamLimits } from './json-message-stream.js';
import { toQmpJson } from './json-writer.js';
import { toQmpErrorBody, type QmpErrorBody } from './qmp-error.js';
import { parseRequest, QmpRequestError, type QmpRequest } from './request.js';
import { noArguments } from './schema.js';
import { handleCommandChannel, respondChannel, type QmpLogger } from './trace.js';
import { validateValue } from './schema-validator.js';

const MAX_QUEUED_REQUESTS = 8;
const MAX_UNREAD_OUTPUT_BYTES = 64 * 1024 * 1024;

/** Capabilities offered in the greeting. No command supports out-of-band execution yet. */
export const OFFERED_CAPABILITIES: readonly string[] = ['oob'];

/** What a session needs from its server. */
export interface QmpSessionHost {
  readonly commands: CommandTable;
  readonly limits: JsonStreamLimits;
  readonly logger: QmpLogger | undefined;
  /** Check each reply against its command's `returns` type (for tests). */
  readonly checkReplies: boolean;
  /** The greeting object sent on connect. */
  greeting(): unknown;
  /** Called once when the connection is gone. */
  sessionClosed(session: QmpSession): void;
}

/** The context given to command handlers, plus the hook qmp_capabilities uses. */
export interface QmpSessionContext extends QmpCommandContext {
  /** Complete negotiation with these capabilities (used by qmp_capabilities only). */
  negotiate(capabilities: readonly string[]): void;
}

type Reply = { return: unknown; id?: unknown } | { id?: unknown; error: QmpErrorBody };

const errorReply = (error: QmpErrorBody, id: unknown, hasId: boolean): Reply => (hasId ? { id, error } : { error });

export class QmpSession {
  private negotiated = false;
  private readonly capabilities = new Set<string>();
  private readonly queue: JsonMessage[] = [];
  private processing = false;
  private closed = false;
  /** The client half-closed: answer what it sent, then close our side. */
  private inputEnded = false;
  private readonly stream: JsonMessageStream;

  constructor(
    private readonly socket: Socket,
    private readonly host: QmpSessionHost,
    readonly id: number,
  ) {
    this.stream = new JsonMessageStream((message) => this.enqueue(message), host.limits);
  }

  /** Send the greeting and start reading requests. */
  start(): void {
    this.socket.setNoDelay?.(true);
    this.socket.on('data', (chunk: Buffer) => this.stream.push(chunk));
    this.socket.on('end', () => {
      this.stream.end();
      this.inputEnded = true;
      void this.processQueue();
    });
    this.socket.on('error', () => this.close());
    this.socket.on('close', () => this.close());
    this.writeLine(toQmpJson(this.host.greeting()));
  }

  /** True once qmp_capabilities succeeded: commands run and events arrive. */
  get isNegotiated(): boolean {
    return this.negotiated;
  }

  /** Send a pre-serialised event line if negotiation is complete. */
  sendEvent(line: string): void {
    if (!this.negotiated || this.closed) return;
    this.writeLine(line);
    if (this.socket.writableLength > MAX_UNREAD_OUTPUT_BYTES) this.socket.destroy();
  }

  /** Drop the connection. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.host.logger?.debug({ sessionId: this.id }, 'QMP client disconnected');
    this.queue.length = 0;
    this.socket.destroy();
    this.host.sessionClosed(this);
  }

  private writeLine(line: string): boolean {
    if (this.closed || !this.socket.writable) return true;
    return this.socket.write(`${line}\r\n`);
  }

  private enqueue(message: JsonMessage): void {
    if (this.closed) return;
    this.queue.push(message);
    if (this.queue.length >= MAX_QUEUED_REQUESTS) this.socket.pause();
    void this.processQueue();
  }

  private async processQueue(): Promise<void> {
    if (this.processing) return;
    this.processing = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        const message = this.queue.shift()!;
        if (this.queue.length < MAX_QUEUED_REQUESTS && !this.stream.isStopped) this.socket.resume();
        const afterReply: Array<() => void> = [];
        const reply = await this.handle(message, afterReply);
        if (respondChannel.hasSubscribers) respondChannel.publish({ sessionId: this.id, reply });
        if (!this.writeLine(toQmpJson(reply)) && !this.closed) {
          // 'error' makes once() reject; the 'close' that follows ends the session anyway.
          await Promise.race([once(this.socket, 'drain'), once(this.socket, 'close')]).catch(() => undefined);
        }
        for (const callback of afterReply) callback();
        if (message.kind === 'error' && message.fatal) {
          this.host.logger?.warn({ sessionId: this.id, reason: message.message }, 'QMP client disconnected: input limit exceeded');
          this.socket.end();
          this.socket.destroySoon?.();
          return;
        }
      }
    } finally {
      this.processing = false;
    }
    if (this.inputEnded && this.queue.length === 0) this.socket.end();
  }

  private async handle(message: JsonMessage, afterReply: Array<() => void>): Promise<Reply> {
    if (message.kind === 'error') return { error: { class: 'GenericError', desc: message.message } };
    let request: QmpRequest;
    try {
      request = parseRequest(message.value, this.capabilities.has('oob'));
    } catch (error) {
      const failure = error as QmpRequestError;
      return errorReply({ class: 'GenericError', desc: messageOf(error) }, failure.id, failure.hasId === true);
    }
    const fail = (errorClass: QmpErrorBody['class'], desc: string): Reply =>
      errorReply({ class: errorClass, desc }, request.id, request.hasId);

    const command = this.host.commands.get(request.command);
    if (request.outOfBand) {
      if (command === undefined) return fail('CommandNotFound', `The command ${request.command} has not been found`);
      return fail('GenericError', `The command ${request.command} does not support OOB`);
    }
    if (!this.negotiated && request.command !== 'qmp_capabilities') {
      return fail('CommandNotFound', `Expecting capabilities negotiation with 'qmp_capabilities'`);
    }
    if (this.negotiated && request.command === 'qmp_capabilities') {
      return fail('CommandNotFound', 'Capabilities negotiation is already complete, command ignored');
    }
    if (command === undefined) return fail('CommandNotFound', `The command ${request.command} has not been found`);

    const context: QmpSessionContext = {
      sessionId: this.id,
      capabilities: this.capabilities,
      afterReply: (callback) => afterReply.push(callback),
      negotiate: (capabilities) => {
        for (const capability of capabilities) this.capabilities.add(capability);
        this.negotiated = true;
      },
    };
    if (handleCommandChannel.hasSubscribers) handleCommandChannel.publish({ sessionId: this.id, command: request.command, id: request.id });
    try {
      const args = validateValue(command.args ?? noArguments, request.arguments, 'qmp');
      const result = await command.handler(args, context);
      if (this.host.checkReplies && command.returns !== undefined) {
        try {
          validateValue(command.returns, result ?? {}, 'qmp');
        } catch (error) {
          throw new LivebackupError('INVALID_STATE', `Reply to ${request.command} does not match its schema: ${messageOf(error)}`);
        }
      }
      const reply: Reply = { return: result ?? {} };
      if (request.hasId) reply.id = request.id;
      return reply;
    } catch (error) {
      if (!(error instanceof LivebackupError)) {
        this.host.logger?.warn({ sessionId: this.id, command: request.command, err: error }, 'QMP command failed unexpectedly');
      }
      return errorReply(toQmpErrorBody(error, command.errorClasses), request.id, request.hasId);
    }
  }
}
