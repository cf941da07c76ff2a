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
import { messageOf } from '../errors.js';
import { dispatchMessage, type ConnectionState, type DispatcherHost, type QmpReply } from './dispatcher.js';
import { JsonMessageStream, type JsonMessage, type JsonStreamLimits } from './json-message-stream.js';
import { Fifo } from '../util/fifo.js';
import { toQmpJson } from './json-writer.js';
import { respondChannel } from './trace.js';

const MAX_QUEUED_REQUESTS = 8;
const MAX_UNREAD_OUTPUT_BYTES = 64 * 1024 * 1024;
const SHUTDOWN_GRACE_MS = 2000;

/** Capabilities offered in the greeting. No command supports out-of-band execution yet. */
export const OFFERED_CAPABILITIES: readonly string[] = ['oob'];

/** What a session needs from its server. */
export interface QmpSessionHost extends DispatcherHost {
  readonly limits: JsonStreamLimits;
  /** The greeting object sent on connect. */
  greeting(): unknown;
  /** Called once when the connection is gone. */
  sessionClosed(session: QmpSession): void;
}

/** One connected client; created and started by QmpServer. */
export class QmpSession {
  private readonly state: ConnectionState;
  private readonly queue = new Fifo<JsonMessage>();
  /** True while writeLine's cork is on (see writeLine). */
  private corked = false;
  private readonly uncorkBound = (): void => this.uncork();
  private processing = false;
  private closed = false;
  /** The client half-closed: answer what it sent, then close our side. */
  private inputEnded = false;
  /** The server is closing: no new requests are taken. */
  private shuttingDown = false;
  private readonly stream: JsonMessageStream;

  constructor(
    private readonly socket: Socket,
    private readonly host: QmpSessionHost,
    readonly id: number,
  ) {
    this.stream = new JsonMessageStream((message) => this.enqueue(message), host.limits);
    this.state = { sessionId: id, negotiated: false, capabilities: new Set() };
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
    return this.state.negotiated;
  }

  /** Send a pre-serialised event line if negotiation is complete. */
  sendEvent(line: string): void {
    if (!this.state.negotiated || this.closed) return;
    this.writeLine(line);
    if (this.socket.writableLength > MAX_UNREAD_OUTPUT_BYTES) this.socket.destroy();
  }

  /**
   * Server shutdown: stop answering, flush what was already written, then
   * close. A client that does not read is cut off after a short grace time.
   */
  shutdown(): void {
    if (this.closed) return;
    this.shuttingDown = true;
    this.queue.clear();
    this.uncork();
    this.socket.end();
    this.socket.destroySoon();
    setTimeout(() => this.close(), SHUTDOWN_GRACE_MS).unref();
  }

  /** Drop the connection at once. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.host.logger?.debug({ sessionId: this.id }, 'QMP client disconnected');
    this.queue.clear();
    this.socket.destroy();
    this.host.sessionClosed(this);
  }

  /** Resolve when the socket can take more output, or is gone. */
  private async drained(): Promise<void> {
    const done = new AbortController();
    const waits = [once(this.socket, 'drain', { signal: done.signal }), once(this.socket, 'close', { signal: done.signal })];
    // 'error' makes once() reject; the 'close' that follows ends the session anyway.
    await Promise.race(waits).catch(() => undefined);
    done.abort(); // removes the listener that did not fire; race() already handles its rejection
  }

  /** Write a line and resolve once it is handed to the OS (or the connection is gone). */
  private writeFlushed(line: string): Promise<void> {
    if (this.closed || !this.socket.writable) return Promise.resolve();
    return new Promise((resolve) => this.socket.write(`${line}\r\n`, () => resolve()));
  }

  /**
   * Write a reply line. Lines written in the same turn of the event loop
   * leave in one system call: the socket is corked until setImmediate, so a
   * burst of messages (a pipelining client, or a flood of malformed input)
   * does not cost one write per reply.
   */
  private writeLine(line: string): boolean {
    if (this.closed || !this.socket.writable) return true;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      setImmediate(this.uncorkBound);
    }
    return this.socket.write(`${line}\r\n`);
  }

  /** Send what writeLine has buffered now (before waiting on the socket). */
  private uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  }

  /** The reply as text; a value that cannot be encoded (a cycle) becomes an error reply. */
  private encodeReply(reply: QmpReply): string {
    try {
      return toQmpJson(reply);
    } catch (error) {
      this.host.logger?.warn({ sessionId: this.id, err: error }, 'QMP reply could not be encoded');
      const desc = `Reply could not be encoded: ${messageOf(error)}`;
      return toQmpJson('id' in reply ? { id: reply.id, error: { class: 'GenericError', desc } } : { error: { class: 'GenericError', desc } });
    }
  }

  private enqueue(message: JsonMessage): void {
    if (this.closed || this.shuttingDown) return;
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
        const reply = await dispatchMessage(message, this.state, this.host, (callback) => afterReply.push(callback));
        if (respondChannel.hasSubscribers) respondChannel.publish({ sessionId: this.id, reply });
        const line = this.encodeReply(reply);
        if (afterReply.length > 0) {
          // Actions such as quit run only once the reply has left our buffers.
          this.uncork();
          await this.writeFlushed(line);
        } else if (!this.writeLine(line) && !this.closed) {
          this.uncork();
          await this.drained();
        }
        for (const callback of afterReply) {
          try {
            callback();
          } catch (error) {
            this.host.logger?.warn({ sessionId: this.id, err: error }, 'QMP after-reply action failed');
          }
        }
        if (message.kind === 'error' && message.fatal) {
          this.host.logger?.warn({ sessionId: this.id, reason: message.message }, 'QMP client disconnected: input limit exceeded');
          this.uncork();
          this.socket.end();
          this.socket.destroySoon();
          return;
        }
      }
    } finally {
      this.processing = false;
    }
    if (this.inputEnded && this.queue.length === 0) {
      this.uncork();
      this.socket.end();
    }
  }
}
