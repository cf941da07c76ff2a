/**
 * An asynchronous QMP client for tests, usable against livebackup and
 * against a real qemu-storage-daemon: reads the greeting, optionally
 * negotiates, matches replies to requests in order and collects events.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

export type QmpObject = Record<string, any>;

/** A `{return}` or `{error}` reply, with `id` when the request had one. */
export interface QmpReply {
  return?: any;
  error?: { class: string; desc: string };
  id?: unknown;
}

/** A command answered with an error. */
export class QmpReplyError extends Error {
  constructor(
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`${errorClass}: ${desc}`);
    this.name = 'QmpReplyError';
  }
}

export type QmpTarget = string | { port: number; host?: string };

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

const DEFAULT_TIMEOUT_MS = 20_000;

export class QmpClient {
  /** Every event received, in order. */
  readonly events: QmpObject[] = [];
  /** Raw text of every reply line, in order. */
  readonly replyLines: string[] = [];
  private readonly replies: Array<{ value: QmpReply; line: string }> = [];
  private readonly replyWaiters: Array<Waiter<{ value: QmpReply; line: string }>> = [];
  private eventWaiters: Array<() => void> = [];
  private eventCursor = 0;
  private buffered = '';
  private closedFlag = false;
  private greetingValue: QmpObject | undefined;
  private greetingWaiter: Waiter<QmpObject> | undefined;
  /** Resolves when the server closed the connection. */
  readonly closed: Promise<void>;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => this.receive(text));
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.closedFlag = true;
        const error = new Error('QMP connection closed');
        for (const waiter of this.replyWaiters.splice(0)) waiter.reject(error);
        this.greetingWaiter?.reject(error);
        for (const wake of this.eventWaiters.splice(0)) wake();
        resolve();
      });
    });
    socket.on('error', () => undefined);
  }

  /** Connect, read the greeting and (unless `negotiate: false`) run qmp_capabilities. */
  static async connect(target: QmpTarget, options: { negotiate?: boolean } = {}): Promise<QmpClient> {
    const socket = typeof target === 'string' ? connect(target) : connect(target.port, target.host ?? '127.0.0.1');
    await Promise.race([
      once(socket, 'connect'),
      once(socket, 'error').then(([error]) => Promise.reject(error as Error)),
    ]);
    const client = new QmpClient(socket);
    await client.waitForGreeting();
    if (options.negotiate !== false) await client.command('qmp_capabilities');
    return client;
  }

  /** The greeting message. */
  get greeting(): QmpObject {
    return this.greetingValue!;
  }

  get isClosed(): boolean {
    return this.closedFlag;
  }

  /** Send one command and resolve with its reply (error replies resolve too). */
  async execute(command: string, args?: unknown, options: { id?: unknown; timeoutMs?: number } = {}): Promise<QmpReply> {
    const request: QmpObject = { execute: command };
    if (args !== undefined) request.arguments = args;
    if (options.id !== undefined) request.id = options.id;
    this.sendRaw(`${JSON.stringify(request)}\n`);
    return this.nextReply(options.timeoutMs);
  }

  /** Send one command; resolve with its `return` value or reject with QmpReplyError. */
  async command<T = any>(command: string, args?: unknown): Promise<T> {
    const reply = await this.execute(command, args);
    if (reply.error) throw new QmpReplyError(reply.error.class, reply.error.desc);
    return reply.return as T;
  }

  /** Write text (or bytes) to the socket as is. */
  sendRaw(data: string | Uint8Array): void {
    this.socket.write(data);
  }

  /** The next reply not yet consumed. */
  async nextReply(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<QmpReply> {
    return (await this.nextReplyEntry(timeoutMs)).value;
  }

  /** The raw text of the next reply not yet consumed. */
  async nextReplyLine(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<string> {
    return (await this.nextReplyEntry(timeoutMs)).line;
  }

  /**
   * The first event named `name` (and matching `predicate`) after the last
   * event this method returned; waits for it if needed.
   */
  async waitForEvent(name: string, predicate: (event: QmpObject) => boolean = () => true, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<QmpObject> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let i = this.eventCursor; i < this.events.length; i++) {
        const event = this.events[i]!;
        if (event.event === name && predicate(event)) {
          this.eventCursor = i + 1;
          return event;
        }
      }
      if (this.closedFlag) throw new Error(`QMP connection closed while waiting for event ${name}`);
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`no ${name} event within ${timeoutMs} ms; events: ${JSON.stringify(this.events)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.eventWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Close the connection and wait until it is gone. */
  async close(): Promise<void> {
    this.socket.end();
    this.socket.destroySoon();
    await this.closed;
  }

  private async waitForGreeting(): Promise<QmpObject> {
    if (this.greetingValue) return this.greetingValue;
    return withTimeout(new Promise<QmpObject>((resolve, reject) => (this.greetingWaiter = { resolve, reject })), DEFAULT_TIMEOUT_MS, 'QMP greeting');
  }

  private nextReplyEntry(timeoutMs: number): Promise<{ value: QmpReply; line: string }> {
    const ready = this.replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.closedFlag) return Promise.reject(new Error('QMP connection closed'));
    let entry: Waiter<{ value: QmpReply; line: string }> | undefined;
    const waiter = new Promise<{ value: QmpReply; line: string }>((resolve, reject) => {
      entry = { resolve, reject };
      this.replyWaiters.push(entry);
    });
    return withTimeout(waiter, timeoutMs, 'QMP reply').catch((error: unknown) => {
      // A waiter that gave up must not swallow a later reply.
      const index = this.replyWaiters.indexOf(entry!);
      if (index >= 0) this.replyWaiters.splice(index, 1);
      throw error;
    });
  }

  private receive(text: string): void {
    this.buffered += text;
    let start = 0;
    let newline: number;
    while ((newline = this.buffered.indexOf('\n', start)) >= 0) {
      const line = this.buffered.slice(start, newline).trim();
      start = newline + 1;
      if (line === '') continue;
      const message = JSON.parse(line) as QmpObject;
      if (this.greetingValue === undefined && 'QMP' in message) {
        this.greetingValue = message;
        this.greetingWaiter?.resolve(message);
      } else if ('event' in message) {
        this.events.push(message);
        for (const wake of this.eventWaiters.splice(0)) wake();
      } else {
        this.replyLines.push(line);
        const entry = { value: message as QmpReply, line };
        const waiter = this.replyWaiters.shift();
        if (waiter) waiter.resolve(entry);
        else this.replies.push(entry);
      }
    }
    this.buffered = this.buffered.slice(start);
  }
}

async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
