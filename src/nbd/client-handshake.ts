/**
 * The client side of the fixed newstyle handshake: read the greeting, send
 * client flags, then options (structured replies, meta contexts, list)
 * and enter transmission with NBD_OPT_GO, falling back to
 * NBD_OPT_EXPORT_NAME when the server does not know OPT_GO.
 */
import type { Socket } from 'node:net';
import { LivebackupError } from '../errors.js';
import {
  BASE_ALLOCATION,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_NO_ZEROES,
  NBD_INFO_BLOCK_SIZE,
  NBD_INFO_DESCRIPTION,
  NBD_INFO_EXPORT,
  NBD_INFO_NAME,
  NBD_MAX_PAYLOAD,
  NBD_OPT_ABORT,
  NBD_OPT_EXPORT_NAME,
  NBD_OPT_GO,
  NBD_OPT_LIST,
  NBD_OPT_LIST_META_CONTEXT,
  NBD_OPT_SET_META_CONTEXT,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_REP_ACK,
  NBD_REP_ERR_UNKNOWN,
  NBD_REP_ERR_UNSUP,
  NBD_REP_FLAG_ERROR,
  NBD_REP_INFO,
  NBD_REP_META_CONTEXT,
  NBD_REP_SERVER,
  OPTION_REPLY_HEADER_LENGTH,
  SERVER_GREETING_LENGTH,
  decodeInfo,
  decodeMetaContextReplyData,
  decodeOptionErrorMessage,
  decodeOptionReplyHeader,
  decodeServerGreeting,
  decodeServerReplyData,
  encodeClientFlags,
  encodeGoOptionData,
  encodeMetaContextOptionData,
  encodeOption,
  encodeString,
  readU64,
} from './protocol.js';
import type { SocketReader } from './socket-reader.js';

/** Largest option reply payload the client accepts (guards against a hostile server). */
const MAX_OPTION_REPLY = 64 * 1024;

export interface ClientHandshakeOptions {
  /** Export to enter (default ''). */
  readonly exportName?: string;
  /** Negotiate structured replies (default true). */
  readonly structuredReplies?: boolean;
  /** Metadata contexts to select (default ['base:allocation'] with structured replies). */
  readonly metaContexts?: readonly string[];
}

/** What the client settled with the server. */
export interface ClientSession {
  readonly exportName: string;
  readonly size: number;
  readonly transmissionFlags: number;
  readonly structuredReplies: boolean;
  /** Selected metadata contexts: name -> id. */
  readonly metaContexts: ReadonlyMap<string, number>;
  readonly description: string | undefined;
  readonly minimumBlockSize: number;
  readonly preferredBlockSize: number;
  readonly maximumPayload: number;
}

/** One option reply. */
interface OptionReply {
  readonly type: number;
  readonly data: Buffer;
}

/** The option-haggling half of a connection: send an option, read its replies. */
export class OptionChannel {
  readonly noZeroes: boolean;

  private constructor(
    private readonly socket: Socket,
    private readonly reader: SocketReader,
    noZeroes: boolean,
  ) {
    this.noZeroes = noZeroes;
  }

  /** Read the greeting and send our flags. PROTOCOL_ERROR for a server without fixed newstyle. */
  static async open(socket: Socket, reader: SocketReader): Promise<OptionChannel> {
    const handshakeFlags = decodeServerGreeting(await reader.read(SERVER_GREETING_LENGTH));
    if (!(handshakeFlags & NBD_FLAG_FIXED_NEWSTYLE)) throw new LivebackupError('PROTOCOL_ERROR', 'server does not support fixed newstyle negotiation');
    const noZeroes = (handshakeFlags & NBD_FLAG_NO_ZEROES) !== 0;
    socket.write(encodeClientFlags(NBD_FLAG_C_FIXED_NEWSTYLE | (noZeroes ? NBD_FLAG_C_NO_ZEROES : 0)));
    return new OptionChannel(socket, reader, noZeroes);
  }

  /** Send an option and collect replies until a final one (ACK or error). */
  async request(option: number, data?: Uint8Array): Promise<{ replies: OptionReply[]; final: OptionReply }> {
    this.socket.write(encodeOption(option, data));
    const replies: OptionReply[] = [];
    for (;;) {
      const header = decodeOptionReplyHeader(await this.reader.read(OPTION_REPLY_HEADER_LENGTH));
      if (header.option !== option) throw new LivebackupError('PROTOCOL_ERROR', `reply for option ${header.option} while waiting for option ${option}`);
      if (header.length > MAX_OPTION_REPLY) throw new LivebackupError('PROTOCOL_ERROR', `option reply of ${header.length} bytes is too large`);
      const reply = { type: header.type, data: Buffer.from(await this.reader.read(header.length)) };
      if (reply.type === NBD_REP_ACK || reply.type & NBD_REP_FLAG_ERROR) return { replies, final: reply };
      replies.push(reply);
    }
  }

  /** Abort the handshake politely (NBD_OPT_ABORT); the server may close without replying. */
  async abort(): Promise<void> {
    try {
      await this.request(NBD_OPT_ABORT);
    } catch {
      // A server may close instead of acknowledging.
    }
  }

  /** NBD_OPT_LIST: every export's name and description. */
  async listExports(): Promise<Array<{ name: string; description: string }>> {
    const { replies, final } = await this.request(NBD_OPT_LIST);
    failOnError('NBD_OPT_LIST', final);
    return replies.filter((reply) => reply.type === NBD_REP_SERVER).map((reply) => decodeServerReplyData(reply.data));
  }

  /** NBD_OPT_STRUCTURED_REPLY; false when the server does not support it. */
  async enableStructuredReplies(): Promise<boolean> {
    const { final } = await this.request(NBD_OPT_STRUCTURED_REPLY);
    if (final.type === NBD_REP_ACK) return true;
    if (final.type === NBD_REP_ERR_UNSUP) return false;
    failOnError('NBD_OPT_STRUCTURED_REPLY', final);
    return false;
  }

  /** NBD_OPT_LIST_META_CONTEXT or NBD_OPT_SET_META_CONTEXT: contexts as name -> id. */
  async metaContexts(set: boolean, exportName: string, queries: readonly string[]): Promise<Map<string, number>> {
    const option = set ? NBD_OPT_SET_META_CONTEXT : NBD_OPT_LIST_META_CONTEXT;
    const { replies, final } = await this.request(option, encodeMetaContextOptionData({ exportName, queries }));
    failOnError(set ? 'NBD_OPT_SET_META_CONTEXT' : 'NBD_OPT_LIST_META_CONTEXT', final);
    const contexts = new Map<string, number>();
    for (const reply of replies) {
      if (reply.type !== NBD_REP_META_CONTEXT) continue;
      const { id, name } = decodeMetaContextReplyData(reply.data);
      contexts.set(name, id);
    }
    return contexts;
  }

  /**
   * NBD_OPT_GO (or NBD_OPT_EXPORT_NAME when the server lacks GO): enter
   * transmission. NOT_FOUND for an unknown export.
   */
  async go(exportName: string, structuredReplies: boolean, metaContexts: ReadonlyMap<string, number>): Promise<ClientSession> {
    const infoRequests = [NBD_INFO_NAME, NBD_INFO_DESCRIPTION, NBD_INFO_BLOCK_SIZE];
    const { replies, final } = await this.request(NBD_OPT_GO, encodeGoOptionData({ name: exportName, infoRequests }));
    if (final.type === NBD_REP_ERR_UNSUP) return this.enterWithExportName(exportName, structuredReplies, metaContexts);
    failOnError('NBD_OPT_GO', final, exportName);
    let size: number | undefined;
    let transmissionFlags = 0;
    let description: string | undefined;
    let minimumBlockSize = 1;
    let preferredBlockSize = 4096;
    let maximumPayload = NBD_MAX_PAYLOAD;
    for (const reply of replies) {
      if (reply.type !== NBD_REP_INFO) continue;
      const item = decodeInfo(reply.data);
      if ('unknown' in item) continue;
      if (item.type === NBD_INFO_EXPORT) {
        size = item.size;
        transmissionFlags = item.transmissionFlags;
      } else if (item.type === NBD_INFO_DESCRIPTION) description = item.description;
      else if (item.type === NBD_INFO_BLOCK_SIZE) {
        minimumBlockSize = item.minimum;
        preferredBlockSize = item.preferred;
        maximumPayload = Math.min(item.maximum, NBD_MAX_PAYLOAD);
      }
    }
    if (size === undefined) throw new LivebackupError('PROTOCOL_ERROR', 'server acknowledged NBD_OPT_GO without NBD_INFO_EXPORT');
    return { exportName, size, transmissionFlags, structuredReplies, metaContexts, description, minimumBlockSize, preferredBlockSize, maximumPayload };
  }

  /** The pre-OPT_GO way in: NBD_OPT_EXPORT_NAME, answered with size and flags (no errors possible). */
  private async enterWithExportName(exportName: string, structuredReplies: boolean, metaContexts: ReadonlyMap<string, number>): Promise<ClientSession> {
    this.socket.write(encodeOption(NBD_OPT_EXPORT_NAME, encodeString(exportName, 'export name')));
    const reply = await this.reader.read(this.noZeroes ? 10 : 134);
    return {
      exportName,
      size: readU64(reply, 0),
      transmissionFlags: reply.readUInt16BE(8),
      structuredReplies,
      metaContexts,
      description: undefined,
      minimumBlockSize: 1,
      preferredBlockSize: 4096,
      maximumPayload: NBD_MAX_PAYLOAD,
    };
  }
}

/** Full client handshake: structured replies, meta contexts, then GO. */
export async function negotiateClientSide(channel: OptionChannel, options: ClientHandshakeOptions): Promise<ClientSession> {
  const exportName = options.exportName ?? '';
  const structuredReplies = (options.structuredReplies ?? true) ? await channel.enableStructuredReplies() : false;
  const wanted = structuredReplies ? (options.metaContexts ?? [BASE_ALLOCATION]) : [];
  const contexts = wanted.length > 0 ? await channel.metaContexts(true, exportName, wanted) : new Map<string, number>();
  return channel.go(exportName, structuredReplies, contexts);
}

/** Throw for an error reply: NOT_FOUND for NBD_REP_ERR_UNKNOWN, PROTOCOL_ERROR otherwise. */
function failOnError(what: string, reply: OptionReply, exportName?: string): void {
  if (!(reply.type & NBD_REP_FLAG_ERROR)) return;
  const message = decodeOptionErrorMessage(reply.data);
  const code = reply.type === NBD_REP_ERR_UNKNOWN ? 'NOT_FOUND' : reply.type === NBD_REP_ERR_UNSUP ? 'UNSUPPORTED' : 'PROTOCOL_ERROR';
  const subject = exportName !== undefined ? ` for export '${exportName}'` : '';
  throw new LivebackupError(code, `${what} failed${subject}: ${message || `error 0x${(reply.type >>> 0).toString(16)}`}`);
}
