/**
 * NbdClient: connects to an NBD server over a unix socket or TCP, performs
 * the fixed newstyle handshake (structured replies, meta contexts, OPT_GO)
 * and issues transmission requests. Requests are pipelined: each call sends
 * its request at once and resolves when its reply arrives; one reading loop
 * matches replies to requests by cookie, in any order. READ data is copied
 * straight from the socket into the caller's buffer.
 *
 * NBD errors become LivebackupErrors carrying the errno (ENOTSUP ->
 * UNSUPPORTED, EPERM -> READ_ONLY, EINVAL -> INVALID_ARGUMENT, others
 * IO_ERROR). A protocol violation by the server fails every pending request
 * and closes the connection.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { LivebackupError } from '../errors.js';
import { negotiateClientSide, OptionChannel, type ClientHandshakeOptions, type ClientSession } from './client-handshake.js';
import {
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_CACHE,
  NBD_CMD_DISC,
  NBD_CMD_FLAG_DF,
  NBD_CMD_FLAG_FAST_ZERO,
  NBD_CMD_FLAG_FUA,
  NBD_CMD_FLAG_NO_HOLE,
  NBD_CMD_FLAG_REQ_ONE,
  NBD_CMD_FLUSH,
  NBD_CMD_READ,
  NBD_CMD_TRIM,
  NBD_CMD_WRITE,
  NBD_CMD_WRITE_ZEROES,
  NBD_FLAG_READ_ONLY,
  NBD_FLAG_SEND_DF,
  NBD_FLAG_SEND_FAST_ZERO,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE_BLOCK_STATUS,
  NBD_REPLY_TYPE_ERROR_BIT,
  NBD_REPLY_TYPE_NONE,
  NBD_REPLY_TYPE_OFFSET_DATA,
  NBD_REPLY_TYPE_OFFSET_HOLE,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_MAGIC,
  decodeBlockStatusPayload,
  decodeErrorPayload,
  decodeOffsetHole,
  encodeRequest,
  nbdErrnoName,
  readU64,
  type Extent,
} from './protocol.js';
import { SocketReader } from './socket-reader.js';
import { commandName } from './request-validation.js';
import { parseNbdUri, type NbdAddress } from './uri.js';

/** Largest non-data chunk payload accepted from a server (block status of 2^20 extents, error texts). */
const MAX_CHUNK_PAYLOAD = 4 + 8 * 1024 * 1024 + 64;

/** How to connect: export name, structured replies, metadata contexts. */
export type NbdClientOptions = ClientHandshakeOptions;

/** Flags of write-type client calls. */
export interface NbdWriteOptions {
  readonly fua?: boolean;
}

export interface NbdWriteZeroesOptions extends NbdWriteOptions {
  /** NBD_CMD_FLAG_NO_HOLE: keep the range allocated. */
  readonly noHole?: boolean;
  /** NBD_CMD_FLAG_FAST_ZERO: fail with ENOTSUP (UNSUPPORTED) unless zeroing is fast. */
  readonly fastZero?: boolean;
}

/** A request waiting for its reply. */
interface PendingRequest {
  readonly type: number;
  readonly offset: number;
  readonly length: number;
  /** READ: where the data goes. */
  readonly buffer?: Uint8Array;
  /** READ: bytes covered by data/hole chunks so far. */
  covered: number;
  /** BLOCK_STATUS: extents per context id. */
  readonly extents: Map<number, Extent[]>;
  error?: LivebackupError;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/** One NBD connection in the transmission phase; see the file comment. Safe for concurrent calls. */
export class NbdClient {
  private readonly socket: Socket;
  private readonly reader: SocketReader;
  readonly session: ClientSession;
  private readonly pending = new Map<bigint, PendingRequest>();
  private nextCookie = 1n;
  private failure: LivebackupError | undefined;
  private readonly loop: Promise<void>;
  private disconnecting = false;
  private idleWaiters: Array<() => void> = [];

  private constructor(socket: Socket, reader: SocketReader, session: ClientSession) {
    this.socket = socket;
    this.reader = reader;
    this.session = session;
    this.loop = this.readReplies();
  }

  /**
   * Connect and enter transmission on `options.exportName`. Rejects with
   * NOT_FOUND for an unknown export, IO_ERROR when the connection fails,
   * PROTOCOL_ERROR for a misbehaving server.
   */
  static async connect(address: NbdAddress, options: NbdClientOptions = {}): Promise<NbdClient> {
    const { socket, reader } = await openSocket(address);
    try {
      const channel = await OptionChannel.open(socket, reader);
      const session = await negotiateClientSide(channel, options);
      return new NbdClient(socket, reader, session);
    } catch (error) {
      socket.destroy();
      throw error;
    }
  }

  /** Connect to an `nbd://` or `nbd+unix://` URI (its export name overrides options.exportName). */
  static connectUri(uri: string, options: NbdClientOptions = {}): Promise<NbdClient> {
    const parsed = parseNbdUri(uri);
    return NbdClient.connect(parsed.address, { ...options, exportName: parsed.exportName });
  }

  /** Ask a server for its exports (NBD_OPT_LIST), then abort the handshake. */
  static async listExports(address: NbdAddress): Promise<Array<{ name: string; description: string }>> {
    return withOptionChannel(address, (channel) => channel.listExports());
  }

  /** Ask a server which metadata contexts match `queries` on an export (NBD_OPT_LIST_META_CONTEXT). */
  static async listMetaContexts(address: NbdAddress, exportName: string, queries: readonly string[] = []): Promise<string[]> {
    return withOptionChannel(address, async (channel) => {
      if (!(await channel.enableStructuredReplies())) throw new LivebackupError('UNSUPPORTED', 'server has no structured replies');
      return [...(await channel.metaContexts(false, exportName, queries)).keys()];
    });
  }

  /** Export size in bytes. */
  get size(): number {
    return this.session.size;
  }

  get readOnly(): boolean {
    return (this.session.transmissionFlags & NBD_FLAG_READ_ONLY) !== 0;
  }

  /** Requests sent and not yet answered. */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Read buf.length bytes at offset into buf. `df` asks for one
   * unfragmented data chunk (ignored when the server does not offer it).
   */
  read(offset: number, buf: Uint8Array, options: { df?: boolean } = {}): Promise<void> {
    const df = options.df && this.session.transmissionFlags & NBD_FLAG_SEND_DF ? NBD_CMD_FLAG_DF : 0;
    return this.send(NBD_CMD_READ, df, offset, buf.length, { buffer: buf });
  }

  /** Write data at offset. */
  write(offset: number, data: Uint8Array, options: NbdWriteOptions = {}): Promise<void> {
    return this.send(NBD_CMD_WRITE, fuaFlag(options), offset, data.length, { payload: data });
  }

  /**
   * Make [offset, offset + length) read as zeroes. With `fastZero` on a
   * server that does not offer it, fails with UNSUPPORTED without asking.
   */
  writeZeroes(offset: number, length: number, options: NbdWriteZeroesOptions = {}): Promise<void> {
    if (options.fastZero && !(this.session.transmissionFlags & NBD_FLAG_SEND_FAST_ZERO)) {
      return Promise.reject(new LivebackupError('UNSUPPORTED', 'NBD server does not offer fast zeroing', { errno: 'ENOTSUP' }));
    }
    const flags = fuaFlag(options) | (options.noHole ? NBD_CMD_FLAG_NO_HOLE : 0) | (options.fastZero ? NBD_CMD_FLAG_FAST_ZERO : 0);
    return this.send(NBD_CMD_WRITE_ZEROES, flags, offset, length);
  }

  /** Tell the server [offset, offset + length) is no longer needed. */
  trim(offset: number, length: number, options: NbdWriteOptions = {}): Promise<void> {
    return this.send(NBD_CMD_TRIM, fuaFlag(options), offset, length);
  }

  /** Make every answered write durable. */
  flush(): Promise<void> {
    return this.send(NBD_CMD_FLUSH, 0, 0, 0);
  }

  /** Advise the server that the range will be read (NBD_CMD_CACHE). */
  cache(offset: number, length: number): Promise<void> {
    return this.send(NBD_CMD_CACHE, 0, offset, length);
  }

  /**
   * Block status of [offset, offset + length) for every selected context:
   * context name -> extents. With `reqOne`, one extent per context.
   */
  async blockStatus(offset: number, length: number, options: { reqOne?: boolean } = {}): Promise<Map<string, Extent[]>> {
    const extents = new Map<number, Extent[]>();
    await this.send(NBD_CMD_BLOCK_STATUS, options.reqOne ? NBD_CMD_FLAG_REQ_ONE : 0, offset, length, { extents });
    const byName = new Map<string, Extent[]>();
    for (const [name, id] of this.session.metaContexts) byName.set(name, extents.get(id) ?? []);
    return byName;
  }

  /**
   * Soft disconnect: wait for requests in flight, send NBD_CMD_DISC and
   * close. Idempotent.
   */
  async disconnect(): Promise<void> {
    if (this.disconnecting) return this.loop;
    this.disconnecting = true;
    while (this.pending.size > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    if (!this.failure && !this.socket.destroyed) {
      this.socket.write(encodeRequest({ flags: 0, type: NBD_CMD_DISC, cookie: 0n, offset: 0, length: 0 }));
      this.socket.end();
    }
    await this.loop;
  }

  /** Hard disconnect: drop the connection; pending requests fail. */
  close(): void {
    this.disconnecting = true;
    this.socket.destroy();
  }

  private send(
    type: number,
    flags: number,
    offset: number,
    length: number,
    extra: { buffer?: Uint8Array; payload?: Uint8Array; extents?: Map<number, Extent[]> } = {},
  ): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.disconnecting) return Promise.reject(new LivebackupError('INVALID_STATE', 'NBD client is disconnecting'));
    const cookie = this.nextCookie++;
    return new Promise<void>((resolve, reject) => {
      this.pending.set(cookie, { type, offset, length, buffer: extra.buffer, covered: 0, extents: extra.extents ?? new Map(), resolve, reject });
      const header = encodeRequest({ flags, type, cookie, offset, length });
      if (extra.payload && extra.payload.length > 0) {
        this.socket.cork();
        this.socket.write(header);
        this.socket.write(extra.payload);
        this.socket.uncork();
      } else this.socket.write(header);
    });
  }

  /** The reply loop: runs until the connection ends; fails all pending requests then. */
  private async readReplies(): Promise<void> {
    try {
      for (;;) {
        if (this.reader.isAtEnd) break;
        const head = await this.reader.read(4);
        const magic = head.readUInt32BE(0);
        if (magic === NBD_SIMPLE_REPLY_MAGIC) await this.readSimpleReply();
        else if (magic === NBD_STRUCTURED_REPLY_MAGIC) await this.readStructuredChunk();
        else throw new LivebackupError('PROTOCOL_ERROR', `bad reply magic 0x${magic.toString(16)}`);
      }
    } catch (error) {
      if (!(this.disconnecting && this.pending.size === 0)) {
        this.failure = error instanceof LivebackupError ? error : new LivebackupError('IO_ERROR', String(error));
      }
    } finally {
      this.socket.destroy();
      const failure = this.failure ?? new LivebackupError('IO_ERROR', 'NBD connection closed');
      this.failure ??= failure;
      for (const request of this.pending.values()) request.reject(failure);
      this.pending.clear();
      this.wakeIdle();
    }
  }

  private requestFor(cookie: bigint): PendingRequest {
    const request = this.pending.get(cookie);
    if (!request) throw new LivebackupError('PROTOCOL_ERROR', `reply for unknown cookie ${cookie}`);
    return request;
  }

  private async readSimpleReply(): Promise<void> {
    const rest = await this.reader.read(12);
    const error = rest.readUInt32BE(0);
    const cookie = rest.readBigUInt64BE(4);
    const request = this.requestFor(cookie);
    if (error === 0 && request.type === NBD_CMD_READ) await this.reader.readInto(request.buffer!);
    this.finish(cookie, request, error === 0 ? undefined : nbdError(request, error, ''));
  }

  private async readStructuredChunk(): Promise<void> {
    const rest = await this.reader.read(16);
    const flags = rest.readUInt16BE(0);
    const type = rest.readUInt16BE(2);
    const cookie = rest.readBigUInt64BE(4);
    const length = rest.readUInt32BE(12);
    const request = this.requestFor(cookie);
    switch (type) {
      case NBD_REPLY_TYPE_NONE:
        if (length !== 0) throw new LivebackupError('PROTOCOL_ERROR', 'NBD_REPLY_TYPE_NONE with a payload');
        break;
      case NBD_REPLY_TYPE_OFFSET_DATA: {
        if (request.type !== NBD_CMD_READ || length < 9) throw new LivebackupError('PROTOCOL_ERROR', 'unexpected OFFSET_DATA chunk');
        const offset = readU64(await this.reader.read(8), 0);
        const start = offset - request.offset;
        if (start < 0 || start + (length - 8) > request.length) throw new LivebackupError('PROTOCOL_ERROR', 'OFFSET_DATA chunk outside the request');
        await this.reader.readInto(request.buffer!.subarray(start, start + length - 8));
        request.covered += length - 8;
        break;
      }
      case NBD_REPLY_TYPE_OFFSET_HOLE: {
        if (request.type !== NBD_CMD_READ || length !== 12) throw new LivebackupError('PROTOCOL_ERROR', 'unexpected OFFSET_HOLE chunk');
        const hole = decodeOffsetHole(await this.reader.read(12));
        const start = hole.offset - request.offset;
        if (start < 0 || hole.size === 0 || start + hole.size > request.length) throw new LivebackupError('PROTOCOL_ERROR', 'OFFSET_HOLE chunk outside the request');
        request.buffer!.fill(0, start, start + hole.size);
        request.covered += hole.size;
        break;
      }
      case NBD_REPLY_TYPE_BLOCK_STATUS: {
        if (request.type !== NBD_CMD_BLOCK_STATUS || length > MAX_CHUNK_PAYLOAD) throw new LivebackupError('PROTOCOL_ERROR', 'unexpected BLOCK_STATUS chunk');
        const { contextId, extents } = decodeBlockStatusPayload(await this.reader.read(length));
        request.extents.set(contextId, extents);
        break;
      }
      default: {
        if (!(type & NBD_REPLY_TYPE_ERROR_BIT)) throw new LivebackupError('PROTOCOL_ERROR', `unknown structured reply type ${type}`);
        if (length > MAX_CHUNK_PAYLOAD) throw new LivebackupError('PROTOCOL_ERROR', 'error chunk too large');
        const payload = decodeErrorPayload(type, await this.reader.read(length));
        request.error ??= nbdError(request, payload.error, payload.message);
      }
    }
    if (flags & NBD_REPLY_FLAG_DONE) {
      let error = request.error;
      if (!error && request.type === NBD_CMD_READ && request.covered !== request.length) {
        error = new LivebackupError('PROTOCOL_ERROR', `server answered a read of ${request.length} bytes with ${request.covered} bytes`);
      }
      this.finish(cookie, request, error);
    }
  }

  private finish(cookie: bigint, request: PendingRequest, error: LivebackupError | undefined): void {
    this.pending.delete(cookie);
    if (error) request.reject(error);
    else request.resolve();
    if (this.pending.size === 0) this.wakeIdle();
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

function fuaFlag(options: NbdWriteOptions): number {
  return options.fua ? NBD_CMD_FLAG_FUA : 0;
}

/** A LivebackupError for an NBD error value, with its errno name kept. */
function nbdError(request: PendingRequest, value: number, message: string): LivebackupError {
  const errno = nbdErrnoName(value);
  const code = errno === 'ENOTSUP' ? 'UNSUPPORTED' : errno === 'EPERM' ? 'READ_ONLY' : errno === 'EINVAL' ? 'INVALID_ARGUMENT' : 'IO_ERROR';
  const detail = message ? `: ${message}` : '';
  return new LivebackupError(code, `NBD ${commandName(request.type)} of ${request.length} bytes at ${request.offset} failed with ${errno}${detail}`, { errno });
}

async function openSocket(address: NbdAddress): Promise<{ socket: Socket; reader: SocketReader }> {
  const socket = address.type === 'unix' ? netConnect(address.path) : netConnect(address.port, address.host);
  const reader = new SocketReader(socket);
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', (error) => {
      const where = address.type === 'unix' ? address.path : `${address.host}:${address.port}`;
      reject(new LivebackupError('IO_ERROR', `Failed to connect to NBD server at ${where}: ${error.message}`, { cause: error, errno: (error as NodeJS.ErrnoException).code }));
    });
  });
  socket.setNoDelay?.(true);
  return { socket, reader };
}

async function withOptionChannel<T>(address: NbdAddress, work: (channel: OptionChannel) => Promise<T>): Promise<T> {
  const { socket, reader } = await openSocket(address);
  try {
    const channel = await OptionChannel.open(socket, reader);
    const result = await work(channel);
    await channel.abort();
    return result;
  } finally {
    socket.destroy();
  }
}
