/**
 * NbdServer: serves BlockNodes as NBD exports on unix sockets and TCP
 * listeners (QEMU's nbd-server-start / block-export-add type=nbd). It owns
 * the export table and the connections; each connection runs its own
 * handshake and transmission phase (server-connection.ts).
 *
 * Removing an export follows QMP block-export-del: mode 'safe' refuses
 * while clients are connected to it, 'hard' drops those clients first.
 * `close()` stops listening and drops every connection.
 */
import { lstat, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { LivebackupError } from '../errors.js';
import { BufferPool } from './buffer-pool.js';
import { NbdExportRegistry, type NbdExport, type NbdExportOptions } from './export-registry.js';
import { NbdServerConnection, type ConnectionHost, type ConnectionLimits } from './server-connection.js';
import { connectChannel, type ConnectTrace } from './trace.js';

/** Where to listen (QAPI SocketAddress, in the two forms we support). */
export type NbdListenAddress =
  | { readonly type: 'unix'; readonly path: string }
  | { readonly type: 'inet'; readonly host?: string; readonly port: number };

/** The address a listener is bound to (for inet: the actual port, useful with port 0). */
export type NbdBoundAddress = { readonly type: 'unix'; readonly path: string } | { readonly type: 'inet'; readonly host: string; readonly port: number };

export interface NbdServerOptions {
  /**
   * Clients connected at once over all listeners; further connections are
   * closed at once (default: no limit). With 1, exports do not announce
   * NBD_FLAG_CAN_MULTI_CONN (as QEMU's max-connections).
   */
  readonly maxConnections?: number;
  /** Milliseconds a client may take for the handshake (default 10000; 0: no limit). */
  readonly handshakeTimeoutMs?: number;
  /** Requests processed at once per connection (default 16). */
  readonly maxInFlightRequests?: number;
  /** Payload bytes held per connection (default 64 MiB). */
  readonly maxInFlightBytes?: number;
}

export type ExportRemoveMode = 'safe' | 'hard';

const DEFAULT_LIMITS: ConnectionLimits = {
  maxInFlightRequests: 16,
  maxInFlightBytes: 64 * 1024 * 1024,
  handshakeTimeoutMs: 10_000,
};

export class NbdServer {
  private readonly registry = new NbdExportRegistry();
  private readonly listeners: Server[] = [];
  private readonly connections = new Set<NbdServerConnection>();
  private readonly maxConnections: number;
  private readonly host: ConnectionHost;
  private nextConnectionId = 1;
  private closed = false;

  constructor(options: NbdServerOptions = {}) {
    const limits: ConnectionLimits = {
      maxInFlightRequests: positive(options.maxInFlightRequests, DEFAULT_LIMITS.maxInFlightRequests, 'max-in-flight-requests'),
      maxInFlightBytes: positive(options.maxInFlightBytes, DEFAULT_LIMITS.maxInFlightBytes, 'max-in-flight-bytes'),
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? DEFAULT_LIMITS.handshakeTimeoutMs,
    };
    this.maxConnections = positive(options.maxConnections, Number.POSITIVE_INFINITY, 'max-connections');
    this.host = {
      exports: this.registry,
      policy: { severalClients: this.maxConnections !== 1 },
      limits,
      buffers: new BufferPool(limits.maxInFlightBytes),
    };
  }

  /**
   * Start listening. Resolves with the bound address once the listener is
   * ready. A unix socket file left behind by a dead server (nobody accepts
   * on it) is replaced, as QEMU does; a live one is refused with IO_ERROR
   * (errno EADDRINUSE), like a TCP address in use. INVALID_STATE when the
   * server is closed, also by a close() that comes while binding.
   */
  async listen(address: NbdListenAddress): Promise<NbdBoundAddress> {
    if (this.closed) throw new LivebackupError('INVALID_STATE', 'NBD server is closed');
    const listener = createServer((socket) => this.accept(socket));
    try {
      await bind(listener, address);
    } catch (error) {
      const stale = address.type === 'unix' && (error as NodeJS.ErrnoException).code === 'EADDRINUSE' && (await isStaleUnixSocket(address.path));
      if (!stale) throw listenError(address, error);
      await unlink(address.path).catch(() => undefined);
      await bind(listener, address).catch((retryError: unknown) => {
        throw listenError(address, retryError);
      });
    }
    if (this.closed) {
      // close() ran while this listener was binding: it must not outlive the server.
      await new Promise<void>((resolve) => listener.close(() => resolve()));
      throw new LivebackupError('INVALID_STATE', 'NBD server is closed');
    }
    listener.on('error', () => undefined);
    this.listeners.push(listener);
    const bound = listener.address();
    if (address.type === 'unix' || typeof bound === 'string' || bound === null) return { type: 'unix', path: address.type === 'unix' ? address.path : String(bound) };
    return { type: 'inet', host: bound.address, port: bound.port };
  }

  /** Serve a node under a name. See NbdExportRegistry.add for the errors. */
  addExport(options: NbdExportOptions): NbdExport {
    if (this.closed) throw new LivebackupError('INVALID_STATE', 'NBD server is closed');
    return this.registry.add(options);
  }

  /**
   * Stop serving an export. NOT_FOUND when unknown; with mode 'safe' (the
   * default) BUSY while clients use it; with 'hard' its clients are
   * disconnected first (their requests in flight still finish).
   */
  async removeExport(name: string, mode: ExportRemoveMode = 'safe'): Promise<void> {
    this.registry.require(name);
    const users = [...this.connections].filter((connection) => connection.exportName === name);
    if (users.length > 0 && mode === 'safe') {
      throw new LivebackupError('BUSY', `export '${name}' has ${users.length} connected client(s); use mode 'hard' to disconnect them`);
    }
    this.registry.delete(name);
    for (const connection of users) connection.close();
    await Promise.all(users.map((connection) => connection.finished));
  }

  /** The export with this name, or undefined. */
  getExport(name: string): NbdExport | undefined {
    return this.registry.get(name);
  }

  /** All exports, in the order they were added. */
  listExports(): NbdExport[] {
    return this.registry.list();
  }

  /** Clients connected right now (in handshake or transmission). */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** Clients in transmission on an export. */
  clientsOf(name: string): number {
    return [...this.connections].filter((connection) => connection.exportName === name).length;
  }

  /** Stop listening, drop every connection, and wait until their requests in flight have finished. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const listeners = this.listeners.splice(0);
    const stopped = listeners.map((listener) => new Promise<void>((resolve) => listener.close(() => resolve())));
    const connections = [...this.connections];
    for (const connection of connections) connection.close();
    await Promise.all([...stopped, ...connections.map((connection) => connection.finished)]);
  }

  private accept(socket: Socket): void {
    if (this.closed || this.connections.size >= this.maxConnections) {
      socket.destroy();
      return;
    }
    const id = this.nextConnectionId++;
    connectChannel.publish({ id, remote: socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix' } satisfies ConnectTrace);
    const connection = new NbdServerConnection(id, socket, this.host);
    this.connections.add(connection);
    void connection.finished.then(() => this.connections.delete(connection));
  }
}

function positive(value: number | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) throw new LivebackupError('INVALID_ARGUMENT', `Parameter '${what}' expects a positive integer`);
  return value;
}

/** Listen on the address; rejects with the system error. */
function bind(listener: Server, address: NbdListenAddress): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (error: Error) => reject(error);
    listener.once('error', fail);
    const ready = () => {
      listener.off('error', fail);
      resolve();
    };
    if (address.type === 'unix') listener.listen(address.path, ready);
    else listener.listen(address.port, address.host ?? '127.0.0.1', ready);
  });
}

/** True when `path` is a unix socket file nobody accepts connections on. */
async function isStaleUnixSocket(path: string): Promise<boolean> {
  try {
    if (!(await lstat(path)).isSocket()) return false;
  } catch {
    return false;
  }
  return new Promise((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(false);
    });
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

function listenError(address: NbdListenAddress, error: unknown): LivebackupError {
  const cause = error as NodeJS.ErrnoException;
  return new LivebackupError('IO_ERROR', `Failed to listen on ${describe(address)}: ${cause.message}`, { cause, errno: cause.code });
}

function describe(address: NbdListenAddress): string {
  return address.type === 'unix' ? `unix:${address.path}` : `${address.host ?? '127.0.0.1'}:${address.port}`;
}
