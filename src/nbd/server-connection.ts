/**
 * One client connection of the NBD server: handshake, then the transmission
 * phase. Requests are read by one loop with an incremental reader and run
 * concurrently (replies may go out of order); each reply is written in one
 * corked batch so chunks of different replies never interleave mid-chunk.
 * A per-connection cap on requests and buffered bytes in flight applies
 * back-pressure to the client. Protocol violations close this connection
 * only; I/O errors become NBD errors at this edge (errnoOf).
 */
import type { Socket } from 'node:net';
import { errnoOf, messageOf } from '../errors.js';
import { collectExtents } from './block-status-extents.js';
import type { BufferPool } from './buffer-pool.js';
import type { NbdExport } from './export-registry.js';
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
  NBD_REPLY_FLAG_DONE,
  REQUEST_LENGTH,
  decodeRequest,
  encodeBlockStatusChunk,
  encodeErrorChunk,
  encodeNoneChunk,
  encodeOffsetDataHeader,
  encodeOffsetHoleChunk,
  encodeSimpleReply,
  nbdErrnoValue,
  type NbdRequest,
} from './protocol.js';
import { ReadPlanner, type ReadSegment } from './read-plan.js';
import { commandName, validateRequest, type RequestContext } from './request-validation.js';
import { negotiateServerSide, type ExportLookup, type HandshakePolicy, type NegotiatedSession } from './server-handshake.js';
import { SEND_BUFFER_LIMIT, endAndClose, waitForDrain } from './socket-output.js';
import { ReplyBatcher } from './reply-batcher.js';
import { SocketReader } from './socket-reader.js';
import { disconnectChannel, requestChannel, type DisconnectTrace, type RequestTrace } from './trace.js';

/** Limits of one connection. */
export interface ConnectionLimits {
  /** Requests processed at once; more wait in the socket (default 16). */
  readonly maxInFlightRequests: number;
  /** Payload bytes (WRITE data read, READ data not yet sent) held at once (default 64 MiB; one request may always proceed). */
  readonly maxInFlightBytes: number;
  /** Milliseconds a client may take to finish the handshake (0: no limit). */
  readonly handshakeTimeoutMs: number;
}

/** What the server tells a connection about itself. */
export interface ConnectionHost {
  readonly exports: ExportLookup;
  readonly policy: HandshakePolicy;
  readonly limits: ConnectionLimits;
  /** Where READ reply buffers come from and go back to once sent. */
  readonly buffers: BufferPool;
}

export class NbdServerConnection {
  readonly id: number;
  private readonly socket: Socket;
  private readonly reader: SocketReader;
  private readonly replies: ReplyBatcher;
  private readonly host: ConnectionHost;
  private session: NegotiatedSession | undefined;
  private planner: ReadPlanner | undefined;
  private inFlightRequests = 0;
  private inFlightBytes = 0;
  private capacityWaiter: (() => void) | undefined;
  private idleWaiters: Array<() => void> = [];
  private closing = false;
  /** Resolves when the connection has ended and no request is in flight. */
  readonly finished: Promise<void>;

  constructor(id: number, socket: Socket, host: ConnectionHost) {
    this.id = id;
    this.socket = socket;
    this.host = host;
    this.reader = new SocketReader(socket);
    this.replies = new ReplyBatcher(socket);
    socket.setNoDelay?.(true);
    // Errors surface through the reader; keep 'error' from becoming an uncaught exception.
    socket.on('error', () => undefined);
    this.finished = this.run();
  }

  /** The export this client entered transmission on, if any. */
  get exportName(): string | undefined {
    return this.session?.export.name;
  }

  /** Drop the connection now (server close, export removed with mode 'hard'). Requests in flight still finish. */
  close(): void {
    this.closing = true;
    this.socket.destroy();
  }

  private async run(): Promise<void> {
    let reason = 'client disconnected';
    /** True when the session ended by the rules (abort, disc, a refused request): queued replies are still delivered. */
    let graceful = false;
    try {
      const timer = this.host.limits.handshakeTimeoutMs > 0 ? setTimeout(() => this.socket.destroy(), this.host.limits.handshakeTimeoutMs) : undefined;
      try {
        this.session = await negotiateServerSide(this.socket, this.reader, this.host.exports, this.host.policy);
      } finally {
        clearTimeout(timer);
      }
      if (!this.session) {
        reason = 'client aborted the handshake';
        graceful = true;
        return;
      }
      reason = await this.transmit(this.session);
      graceful = true;
    } catch (error) {
      reason = this.closing ? 'closed by server' : messageOf(error);
    } finally {
      this.replies.flush();
      if (graceful && !this.closing) await endAndClose(this.socket);
      else this.socket.destroy();
      await this.waitIdle();
      disconnectChannel.publish({ id: this.id, export: this.session?.export.name, reason } satisfies DisconnectTrace);
    }
  }

  /** The transmission loop. Resolves with the reason it ended. */
  private async transmit(session: NegotiatedSession): Promise<string> {
    const entry = session.export;
    for (;;) {
      // Fast path: no await (and so no promise) while capacity, send buffer and queued bytes allow.
      if (!this.hasCapacity(0)) await this.waitForCapacity(0);
      if (this.socket.writableLength > SEND_BUFFER_LIMIT) await waitForDrain(this.socket);
      if (this.reader.isAtEnd) return 'client disconnected';
      const request = decodeRequest(this.reader.tryRead(REQUEST_LENGTH) ?? (await this.reader.read(REQUEST_LENGTH)));
      if (requestChannel.hasSubscribers) {
        requestChannel.publish({ export: entry.name, type: commandName(request.type), offset: request.offset, length: request.length } satisfies RequestTrace);
      }
      if (request.type === NBD_CMD_DISC) {
        await this.waitIdle();
        return 'client sent NBD_CMD_DISC';
      }
      const rejection = validateRequest(request, this.requestContext(session));
      const hasPayload = request.type === NBD_CMD_WRITE;
      if (rejection) {
        if (rejection.disconnect) {
          this.sendError(session, request, rejection.errno, rejection.message);
          return rejection.message;
        }
        if (hasPayload) await this.reader.skip(request.length);
        this.sendError(session, request, rejection.errno, rejection.message);
        continue;
      }
      const cost = request.type === NBD_CMD_WRITE || request.type === NBD_CMD_READ ? request.length : 0;
      if (!this.hasCapacity(cost)) await this.waitForCapacity(cost);
      let payload: Buffer | undefined;
      if (hasPayload) {
        payload = Buffer.allocUnsafe(request.length);
        if (!this.reader.tryReadInto(payload)) await this.reader.readInto(payload);
      }
      this.inFlightRequests++;
      this.inFlightBytes += cost;
      // The budget is released once the reply has left the socket's buffer (READ data counts until then).
      void this.handle(session, entry, request, payload, () => this.release(cost));
    }
  }

  private requestContext(session: NegotiatedSession): RequestContext {
    return {
      size: session.export.node.length,
      writable: session.export.writable,
      transmissionFlags: session.transmissionFlags,
      structuredReplies: session.structuredReplies,
      metaContextCount: session.metaContexts.length,
    };
  }

  /**
   * Run one validated request and send its reply. Never rejects. Calls
   * `flushed` exactly once, when the reply has been handed to the socket.
   */
  private async handle(
    session: NegotiatedSession,
    entry: NbdExport,
    request: NbdRequest,
    payload: Buffer | undefined,
    flushed: () => void,
  ): Promise<void> {
    const node = entry.node;
    const fua = (request.flags & NBD_CMD_FLAG_FUA) !== 0;
    try {
      switch (request.type) {
        case NBD_CMD_READ: {
          const data = this.host.buffers.acquire(request.length);
          try {
            const reply = await this.readReply(session, entry, request, data);
            return this.write(reply, () => {
              this.host.buffers.release(data);
              flushed();
            });
          } catch (error) {
            this.host.buffers.release(data);
            throw error;
          }
        }
        case NBD_CMD_WRITE:
          await node.write(request.offset, payload!, { fua: fua || entry.writethrough });
          break;
        case NBD_CMD_WRITE_ZEROES:
          await node.writeZeroes(request.offset, request.length, {
            fua: fua || entry.writethrough,
            mayUnmap: (request.flags & NBD_CMD_FLAG_NO_HOLE) === 0,
            noFallback: (request.flags & NBD_CMD_FLAG_FAST_ZERO) !== 0,
          });
          break;
        case NBD_CMD_TRIM:
          await node.discard(request.offset, request.length);
          if (fua) await node.flush();
          break;
        case NBD_CMD_FLUSH:
          await node.flush();
          break;
        case NBD_CMD_CACHE:
          break;
        case NBD_CMD_BLOCK_STATUS:
          return this.write(await this.blockStatusReply(session, request), flushed);
      }
      this.write([session.structuredReplies ? encodeNoneChunk(request.cookie) : encodeSimpleReply(request.cookie, 0)], flushed);
    } catch (error) {
      this.sendError(session, request, errnoOf(error), messageOf(error), flushed);
    }
  }

  /**
   * Read into `data` (request.length bytes) and build the reply buffers: a
   * simple reply, or data/hole chunks (a single data chunk with DF).
   */
  private async readReply(session: NegotiatedSession, entry: NbdExport, request: NbdRequest, data: Buffer): Promise<Uint8Array[]> {
    const { offset, length, cookie } = request;
    if (!session.structuredReplies) {
      await entry.node.read(offset, data);
      return [encodeSimpleReply(cookie, 0), data];
    }
    if (length === 0) return [encodeNoneChunk(cookie)];
    let segments: ReadSegment[] | undefined;
    if (!(request.flags & NBD_CMD_FLAG_DF)) {
      const planned = this.readPlanner(entry).plan(offset, length);
      segments = Array.isArray(planned) ? planned : await planned;
    }
    if (!segments || (segments.length === 1 && !segments[0]!.hole)) {
      await entry.node.read(offset, data);
      return [encodeOffsetDataHeader(cookie, NBD_REPLY_FLAG_DONE, offset, length), data];
    }
    await Promise.all(
      segments.filter((segment) => !segment.hole).map((segment) => entry.node.read(segment.offset, data.subarray(segment.offset - offset, segment.offset - offset + segment.length))),
    );
    const buffers: Uint8Array[] = [];
    segments.forEach((segment, i) => {
      const flags = i === segments.length - 1 ? NBD_REPLY_FLAG_DONE : 0;
      if (segment.hole) buffers.push(encodeOffsetHoleChunk(cookie, flags, segment.offset, segment.length));
      else {
        buffers.push(encodeOffsetDataHeader(cookie, flags, segment.offset, segment.length));
        buffers.push(data.subarray(segment.offset - offset, segment.offset - offset + segment.length));
      }
    });
    return buffers;
  }

  /** The READ planner of this connection's export (made on first use). */
  private readPlanner(entry: NbdExport): ReadPlanner {
    return (this.planner ??= new ReadPlanner(entry.node));
  }

  /** One BLOCK_STATUS chunk per selected context, the last one flagged DONE. */
  private async blockStatusReply(session: NegotiatedSession, request: NbdRequest): Promise<Uint8Array[]> {
    const contexts = session.metaContexts;
    const one = (request.flags & NBD_CMD_FLAG_REQ_ONE) !== 0;
    const lists = await collectExtents(session.export.node, request.offset, request.length, contexts, one);
    return contexts.map((context, i) => encodeBlockStatusChunk(request.cookie, i === contexts.length - 1 ? NBD_REPLY_FLAG_DONE : 0, context.id, lists[i]!));
  }

  /** An error reply: an error chunk with structured replies, else a simple reply carrying the errno. */
  private sendError(session: NegotiatedSession, request: NbdRequest, errno: string, message: string, flushed?: () => void): void {
    const value = nbdErrnoValue(errno);
    this.write([session.structuredReplies ? encodeErrorChunk(request.cookie, value, message) : encodeSimpleReply(request.cookie, value)], flushed);
  }

  /** Queue one reply; replies finished in the same event-loop turn leave in one writev. */
  private write(buffers: readonly Uint8Array[], flushed?: () => void): void {
    this.replies.send(buffers, flushed);
  }

  private release(cost: number): void {
    this.inFlightRequests--;
    this.inFlightBytes -= cost;
    const waiter = this.capacityWaiter;
    this.capacityWaiter = undefined;
    waiter?.();
    if (this.inFlightRequests === 0) {
      const idle = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of idle) resolve();
    }
  }

  /** True when one more request costing `cost` bytes fits the limits (one request always fits). */
  private hasCapacity(cost: number): boolean {
    const limits = this.host.limits;
    return this.inFlightRequests === 0 || (this.inFlightRequests < limits.maxInFlightRequests && this.inFlightBytes + cost <= limits.maxInFlightBytes);
  }

  /** Wait until one more request costing `cost` bytes fits the limits. */
  private async waitForCapacity(cost: number): Promise<void> {
    while (!this.hasCapacity(cost)) {
      await new Promise<void>((resolve) => (this.capacityWaiter = resolve));
    }
  }

  private waitIdle(): Promise<void> {
    if (this.inFlightRequests === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
