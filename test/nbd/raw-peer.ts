/**
 * A hand-driven NBD client on a raw socket for hostile-client tests: it
 * sends exactly the bytes a test chooses and reads replies with the
 * protocol codec, so tests can break the protocol on purpose.
 */
import { createConnection, type Socket } from 'node:net';
import * as p from '../../src/nbd/protocol.js';
import { SocketReader } from '../../src/nbd/socket-reader.js';

export class RawPeer {
  readonly socket: Socket;
  readonly reader: SocketReader;
  readonly closed: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    this.reader = new SocketReader(socket);
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  static async connect(path: string): Promise<RawPeer> {
    const socket = createConnection(path);
    const peer = new RawPeer(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return peer;
  }

  send(...buffers: Uint8Array[]): void {
    for (const buffer of buffers) this.socket.write(buffer);
  }

  /** Read the 18-byte greeting and return its handshake flags. */
  async greeting(): Promise<number> {
    return p.decodeServerGreeting(await this.reader.read(p.SERVER_GREETING_LENGTH));
  }

  /** Read one option reply with its data. */
  async optionReply(): Promise<{ option: number; type: number; data: Buffer }> {
    const header = p.decodeOptionReplyHeader(await this.reader.read(p.OPTION_REPLY_HEADER_LENGTH));
    return { option: header.option, type: header.type, data: Buffer.from(await this.reader.read(header.length)) };
  }

  /** Read option replies up to and including the final one (ACK or error); returns them all. */
  async optionReplies(): Promise<Array<{ option: number; type: number; data: Buffer }>> {
    const replies = [];
    for (;;) {
      const reply = await this.optionReply();
      replies.push(reply);
      if (reply.type === p.NBD_REP_ACK || reply.type & p.NBD_REP_FLAG_ERROR) return replies;
    }
  }

  /**
   * Fixed newstyle handshake into transmission on `name` with NBD_OPT_GO,
   * optionally with structured replies and base:allocation.
   */
  async enter(name: string, structured = true): Promise<{ size: number; flags: number }> {
    await this.greeting();
    this.send(p.encodeClientFlags(p.NBD_FLAG_C_FIXED_NEWSTYLE | p.NBD_FLAG_C_NO_ZEROES));
    if (structured) {
      this.send(p.encodeOption(p.NBD_OPT_STRUCTURED_REPLY));
      await this.optionReplies();
      this.send(p.encodeOption(p.NBD_OPT_SET_META_CONTEXT, p.encodeMetaContextOptionData({ exportName: name, queries: [p.BASE_ALLOCATION] })));
      await this.optionReplies();
    }
    this.send(p.encodeOption(p.NBD_OPT_GO, p.encodeGoOptionData({ name, infoRequests: [] })));
    const replies = await this.optionReplies();
    const final = replies[replies.length - 1]!;
    if (final.type !== p.NBD_REP_ACK) throw new Error(`NBD_OPT_GO failed: 0x${final.type.toString(16)} ${final.data.toString()}`);
    const info = replies.filter((reply) => reply.type === p.NBD_REP_INFO).map((reply) => p.decodeInfo(reply.data)).find((item) => item.type === p.NBD_INFO_EXPORT) as { size: number; transmissionFlags: number };
    return { size: info.size, flags: info.transmissionFlags };
  }

  request(type: number, cookie: bigint, offset: number, length: number, flags = 0, payload?: Uint8Array): void {
    this.send(p.encodeRequest({ type, cookie, offset, length, flags }));
    if (payload) this.send(payload);
  }

  /** A simple reply (no data follows unless the caller reads it). */
  async simpleReply(): Promise<p.SimpleReply> {
    return p.decodeSimpleReply(await this.reader.read(p.SIMPLE_REPLY_LENGTH));
  }

  /** One structured chunk with its payload. */
  async chunk(): Promise<p.StructuredChunkHeader & { payload: Buffer }> {
    const header = p.decodeStructuredHeader(await this.reader.read(p.STRUCTURED_HEADER_LENGTH));
    return { ...header, payload: Buffer.from(await this.reader.read(header.length)) };
  }

  /** Chunks of one structured reply, up to the one flagged DONE (replies are not interleaved in these tests). */
  async structuredReply(): Promise<Array<p.StructuredChunkHeader & { payload: Buffer }>> {
    const chunks = [];
    for (;;) {
      const chunk = await this.chunk();
      chunks.push(chunk);
      if (chunk.flags & p.NBD_REPLY_FLAG_DONE) return chunks;
    }
  }

  /** The NBD error value of a structured reply (0 when it has no error chunk). */
  static errorOf(chunks: ReadonlyArray<{ type: number; payload: Buffer }>): number {
    const error = chunks.find((chunk) => chunk.type & p.NBD_REPLY_TYPE_ERROR_BIT);
    return error ? p.decodeErrorPayload(error.type, error.payload).error : 0;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
