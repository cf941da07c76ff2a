/**
 * The QMP control socket: listens on a unix socket (mode 0600) and/or TCP
 * (127.0.0.1 by default), serves any number of clients at once, and
 * broadcasts events to every client that completed negotiation.
 *
 *   const server = new QmpServer({ onQuit: () => daemon.shutdown() });
 *   server.registerCommand({ name: 'query-block-jobs', handler: () => jobs.list() });
 *   await server.listenUnix('/run/livebackup/qmp.sock');
 *   server.emitEvent('JOB_STATUS_CHANGE', { status: 'running', id: 'j1' });
 */
import { chmod, lstat, mkdtemp, rename, rm, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { LivebackupError, ioError } from '../errors.js';
import { registerBuiltinCommands } from './builtin-commands.js';
import { CommandTable, type QmpCommand } from './command-table.js';
import type { ObjectType } from './schema.js';
import { DEFAULT_JSON_LIMITS, type JsonStreamLimits } from './json-message-stream.js';
import { toQmpJson } from './json-writer.js';
import { OFFERED_CAPABILITIES, QmpSession, type QmpSessionHost } from './session.js';
import { eventChannel, type QmpLogger } from './trace.js';
import { versionInfo } from './version.js';

export interface QmpServerOptions {
  /**
   * Called after the reply to `quit` is written. Without it, `quit` closes
   * this server.
   */
  readonly onQuit?: () => void;
  /** Input limits per message (defaults: 16 MiB, 256 Ki tokens, depth 1024). */
  readonly limits?: Partial<JsonStreamLimits>;
  /** Where connection changes (debug) and unexpected command failures (warn) go; a pino logger fits. */
  readonly logger?: QmpLogger;
  /** Refuse replies that do not match their command's `returns` type (meant for tests). */
  readonly checkReplies?: boolean;
  /**
   * Clients served at once (default 64); further connections are closed
   * at once. Each client may hold up to `limits.maxMessageBytes` of input.
   */
  readonly maxClients?: number;
}

const DEFAULT_MAX_CLIENTS = 64;
/** sun_path holds 108 bytes including the terminating NUL. */
const MAX_UNIX_PATH_BYTES = 107;

/** Microsecond wall-clock timestamp as QMP events carry it. */
export function eventTimestamp(): { seconds: number; microseconds: number } {
  const micros = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  return { seconds: Math.floor(micros / 1e6), microseconds: micros % 1e6 };
}

/** A QMP server: a command table, listeners, connected sessions and event broadcast. */
export class QmpServer implements QmpSessionHost {
  readonly commands = new CommandTable();
  readonly limits: JsonStreamLimits;
  readonly logger: QmpLogger | undefined;
  readonly checkReplies: boolean;
  private readonly listeners: Server[] = [];
  private readonly unixPaths: string[] = [];
  private readonly sessions = new Set<QmpSession>();
  private nextSessionId = 1;

  constructor(private readonly options: QmpServerOptions = {}) {
    this.limits = { ...DEFAULT_JSON_LIMITS, ...options.limits };
    this.logger = options.logger;
    this.checkReplies = options.checkReplies ?? false;
    registerBuiltinCommands(this.commands, () => (options.onQuit ? options.onQuit() : void this.close()));
  }

  /** Add a command (see command-table.ts). */
  registerCommand<S extends ObjectType>(command: QmpCommand<S>): void {
    this.commands.register(command);
  }

  /** The greeting sent to each new client. */
  greeting(): unknown {
    return { QMP: { version: versionInfo(), capabilities: OFFERED_CAPABILITIES } };
  }

  /** Number of connected clients. */
  get clientCount(): number {
    return this.sessions.size;
  }

  /**
   * Listen on a unix socket at `path`, readable and writable by the owner
   * only. The socket is bound inside a fresh private directory, restricted,
   * then renamed into place, so it is never reachable with wider
   * permissions. A stale socket file at `path` is replaced; any other file
   * is an error (ALREADY_EXISTS); a path clients could not connect to
   * (over 107 bytes) is INVALID_ARGUMENT.
   */
  async listenUnix(path: string): Promise<void> {
    if (Buffer.byteLength(path) > MAX_UNIX_PATH_BYTES) {
      throw new LivebackupError('INVALID_ARGUMENT', `Cannot listen on '${path}': a unix socket path may have at most ${MAX_UNIX_PATH_BYTES} bytes`);
    }
    const existing = await lstat(path).catch(() => undefined);
    if (existing !== undefined && !existing.isSocket()) {
      throw new LivebackupError('ALREADY_EXISTS', `Cannot listen on '${path}': it exists and is not a socket`);
    }
    let privateDir: string;
    try {
      privateDir = await mkdtemp(join(dirname(path), '.qmp-'));
    } catch (error) {
      throw ioError(`Cannot listen on '${path}'`, error);
    }
    try {
      const boundPath = join(privateDir, 's'); // short: unix socket paths are limited to 107 bytes
      const server = this.newListener();
      await this.startListening(server, () => server.listen(boundPath), `Cannot listen on '${path}'`);
      try {
        await chmod(boundPath, 0o600);
        await rename(boundPath, path);
      } catch (error) {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        this.listeners.splice(this.listeners.indexOf(server), 1);
        throw ioError(`Cannot listen on '${path}'`, error);
      }
      this.unixPaths.push(path);
    } finally {
      await rm(privateDir, { recursive: true, force: true });
    }
  }

  /** Listen on TCP (port 0 picks a free port). Resolves with the bound address. */
  async listenTcp(port: number, host = '127.0.0.1'): Promise<AddressInfo> {
    const server = this.newListener();
    await this.startListening(server, () => server.listen(port, host), `Cannot listen on ${host}:${port}`);
    return server.address() as AddressInfo;
  }

  /** Broadcast an event to every negotiated client. `data` is left out when undefined. */
  emitEvent(event: string, data?: object): void {
    if (eventChannel.hasSubscribers) eventChannel.publish({ event, data });
    const line = toQmpJson({ timestamp: eventTimestamp(), event, data });
    for (const session of this.sessions) session.sendEvent(line);
  }

  /**
   * Stop listening, disconnect every client (after flushing replies already
   * written) and remove the unix socket files.
   */
  async close(): Promise<void> {
    const listeners = this.listeners.splice(0);
    for (const session of [...this.sessions]) session.shutdown();
    await Promise.all(listeners.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    await Promise.all(this.unixPaths.splice(0).map((path) => unlink(path).catch(() => undefined)));
  }

  /** @internal QmpSessionHost: a session ended. */
  sessionClosed(session: QmpSession): void {
    this.sessions.delete(session);
  }

  private newListener(): Server {
    // Half-open: a client may send its requests, shut down its side and still read the replies.
    const server = createServer({ allowHalfOpen: true }, (socket: Socket) => {
      if (this.sessions.size >= (this.options.maxClients ?? DEFAULT_MAX_CLIENTS)) {
        this.logger?.warn({ clients: this.sessions.size }, 'QMP connection refused: too many clients');
        socket.destroy();
        return;
      }
      const session = new QmpSession(socket, this, this.nextSessionId++);
      this.sessions.add(session);
      this.logger?.debug({ sessionId: session.id }, 'QMP client connected');
      session.start();
    });
    this.listeners.push(server);
    return server;
  }

  private async startListening(server: Server, listen: () => void, what: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error) => {
        this.listeners.splice(this.listeners.indexOf(server), 1);
        reject(ioError(what, error));
      });
      server.once('listening', () => {
        // Accept errors (EMFILE) must not crash the daemon; the client just fails to connect.
        server.on('error', () => undefined);
        resolve();
      });
      listen();
    });
  }
}
