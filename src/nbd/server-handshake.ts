/**
 * The server side of the fixed newstyle handshake: greeting, client flags,
 * and option haggling until the client enters transmission (NBD_OPT_GO or
 * NBD_OPT_EXPORT_NAME) or leaves (NBD_OPT_ABORT). Malformed option data is
 * answered with NBD_REP_ERR_INVALID and haggling continues; a bad magic,
 * unknown client flags, an absurd option length, or an export that
 * NBD_OPT_EXPORT_NAME cannot enter end the connection (ProtocolError).
 */
import type { Socket } from 'node:net';
import { LivebackupError, messageOf } from '../errors.js';
import type { NbdExport } from './export-registry.js';
import { listMetaContexts, selectMetaContexts, type MetaContext } from './meta-context.js';
import {
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_NO_ZEROES,
  NBD_INFO_BLOCK_SIZE,
  NBD_INFO_DESCRIPTION,
  NBD_INFO_EXPORT,
  NBD_INFO_NAME,
  NBD_MAX_PAYLOAD,
  NBD_MAX_STRING,
  NBD_MIN_BLOCK,
  NBD_OPT_ABORT,
  NBD_OPT_EXPORT_NAME,
  NBD_OPT_GO,
  NBD_OPT_INFO,
  NBD_OPT_LIST,
  NBD_OPT_LIST_META_CONTEXT,
  NBD_OPT_SET_META_CONTEXT,
  NBD_OPT_STARTTLS,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_PREFERRED_BLOCK,
  NBD_REP_ACK,
  NBD_REP_ERR_INVALID,
  NBD_REP_ERR_POLICY,
  NBD_REP_ERR_TOO_BIG,
  NBD_REP_ERR_UNKNOWN,
  NBD_REP_ERR_UNSUP,
  NBD_REP_INFO,
  NBD_REP_META_CONTEXT,
  NBD_REP_SERVER,
  OPTION_HEADER_LENGTH,
  decodeClientFlags,
  decodeGoOptionData,
  decodeMetaContextOptionData,
  decodeOptionHeader,
  decodeString,
  encodeExportNameReply,
  encodeInfo,
  encodeMetaContextReplyData,
  encodeOptionReply,
  encodeServerGreeting,
  encodeServerReplyData,
  type InfoItem,
} from './protocol.js';
import { waitForDrain } from './socket-output.js';
import type { SocketReader } from './socket-reader.js';
import { transmissionFlagsFor } from './transmission-flags.js';

/**
 * Largest option data we read. Export names and queries are at most 4096
 * bytes each; anything above this is refused with NBD_REP_ERR_TOO_BIG and
 * the connection is dropped without reading (or allocating) the data.
 */
export const MAX_OPTION_LENGTH = 64 * 1024;

/** What the handshake settled for the transmission phase. */
export interface NegotiatedSession {
  readonly export: NbdExport;
  readonly structuredReplies: boolean;
  readonly metaContexts: readonly MetaContext[];
  readonly transmissionFlags: number;
}

/** The exports a handshake may see. */
export interface ExportLookup {
  get(name: string): NbdExport | undefined;
  list(): NbdExport[];
}

/** Server-wide facts the handshake announces. */
export interface HandshakePolicy {
  /** The server admits more than one client at once (else no NBD_FLAG_CAN_MULTI_CONN). */
  readonly severalClients: boolean;
}

/** Run the handshake. Resolves with the session, or undefined when the client aborted. */
export async function negotiateServerSide(
  socket: Socket,
  reader: SocketReader,
  exports: ExportLookup,
  policy: HandshakePolicy,
): Promise<NegotiatedSession | undefined> {
  socket.write(encodeServerGreeting(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES));
  const clientFlags = decodeClientFlags(await reader.read(4));
  if ((clientFlags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) !== 0) {
    throw new LivebackupError('PROTOCOL_ERROR', `unknown client flags 0x${clientFlags.toString(16)}`);
  }
  const fixedNewstyle = (clientFlags & NBD_FLAG_C_FIXED_NEWSTYLE) !== 0;
  const noZeroes = (clientFlags & NBD_FLAG_C_NO_ZEROES) !== 0;
  let structuredReplies = false;
  /** Contexts of the last NBD_OPT_SET_META_CONTEXT and the export they were chosen for. */
  let selected: { exportName: string; contexts: MetaContext[] } | undefined;

  const reply = (option: number, type: number, data?: Uint8Array) => socket.write(encodeOptionReply(option, type, data));
  const replyError = (option: number, type: number, message: string) => reply(option, type, Buffer.from(message.slice(0, NBD_MAX_STRING), 'utf8'));
  const sessionFor = (entry: NbdExport): NegotiatedSession => ({
    export: entry,
    structuredReplies,
    metaContexts: selected?.exportName === entry.name ? selected.contexts : [],
    transmissionFlags: transmissionFlagsFor(entry, structuredReplies, policy.severalClients),
  });

  for (;;) {
    await waitForDrain(socket);
    const { option, length } = decodeOptionHeader(await reader.read(OPTION_HEADER_LENGTH));
    if (length > MAX_OPTION_LENGTH) {
      if (fixedNewstyle) replyError(option, NBD_REP_ERR_TOO_BIG, `option data of ${length} bytes is too large`);
      throw new LivebackupError('PROTOCOL_ERROR', `option ${option} declares ${length} bytes of data`);
    }
    if (!fixedNewstyle && option !== NBD_OPT_EXPORT_NAME) {
      throw new LivebackupError('PROTOCOL_ERROR', `option ${option} needs fixed newstyle negotiation`);
    }
    const data = await reader.read(length);

    switch (option) {
      case NBD_OPT_EXPORT_NAME: {
        if (length > NBD_MAX_STRING) throw new LivebackupError('PROTOCOL_ERROR', 'export name too long');
        const name = decodeString(data, 'export name');
        const entry = exports.get(name);
        if (!entry) throw new LivebackupError('NOT_FOUND', `export '${name}' not found (NBD_OPT_EXPORT_NAME)`);
        const session = sessionFor(entry);
        socket.write(encodeExportNameReply(entry.node.length, session.transmissionFlags, noZeroes));
        return session;
      }

      case NBD_OPT_ABORT:
        reply(option, NBD_REP_ACK);
        return undefined;

      case NBD_OPT_LIST:
        if (length !== 0) {
          replyError(option, NBD_REP_ERR_INVALID, 'NBD_OPT_LIST takes no data');
          break;
        }
        for (const entry of exports.list()) reply(option, NBD_REP_SERVER, encodeServerReplyData(entry.name, entry.description ?? ''));
        reply(option, NBD_REP_ACK);
        break;

      case NBD_OPT_STARTTLS:
        replyError(option, NBD_REP_ERR_POLICY, 'TLS is not configured on this server');
        break;

      case NBD_OPT_INFO:
      case NBD_OPT_GO: {
        let request;
        try {
          request = decodeGoOptionData(data);
        } catch (error) {
          replyError(option, NBD_REP_ERR_INVALID, messageOf(error));
          break;
        }
        const entry = exports.get(request.name);
        if (!entry) {
          replyError(option, NBD_REP_ERR_UNKNOWN, `export '${request.name}' not present`);
          break;
        }
        const session = sessionFor(entry);
        for (const item of infoItems(entry, session.transmissionFlags, request.infoRequests)) reply(option, NBD_REP_INFO, encodeInfo(item));
        reply(option, NBD_REP_ACK);
        if (option === NBD_OPT_GO) return session;
        break;
      }

      case NBD_OPT_STRUCTURED_REPLY:
        if (length !== 0) replyError(option, NBD_REP_ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
        else if (structuredReplies) replyError(option, NBD_REP_ERR_INVALID, 'structured replies already negotiated');
        else {
          structuredReplies = true;
          reply(option, NBD_REP_ACK);
        }
        break;

      case NBD_OPT_LIST_META_CONTEXT:
      case NBD_OPT_SET_META_CONTEXT: {
        const setting = option === NBD_OPT_SET_META_CONTEXT;
        if (setting) selected = undefined;
        if (!structuredReplies) {
          replyError(option, NBD_REP_ERR_INVALID, 'negotiate structured replies first');
          break;
        }
        let request;
        try {
          request = decodeMetaContextOptionData(data);
        } catch (error) {
          replyError(option, NBD_REP_ERR_INVALID, messageOf(error));
          break;
        }
        const entry = exports.get(request.exportName);
        if (!entry) {
          replyError(option, NBD_REP_ERR_UNKNOWN, `export '${request.exportName}' not present`);
          break;
        }
        const contexts = setting ? selectMetaContexts(entry, request.queries) : listMetaContexts(entry, request.queries);
        for (const context of contexts) reply(option, NBD_REP_META_CONTEXT, encodeMetaContextReplyData(setting ? context.id : 0, context.name));
        reply(option, NBD_REP_ACK);
        if (setting) selected = { exportName: entry.name, contexts };
        break;
      }

      default:
        replyError(option, NBD_REP_ERR_UNSUP, `option ${option} is not supported`);
    }
  }
}

/** NBD_REP_INFO items for OPT_INFO/OPT_GO: export and block size always, name and description when asked. */
function infoItems(entry: NbdExport, transmissionFlags: number, requests: readonly number[]): InfoItem[] {
  const items: InfoItem[] = [
    { type: NBD_INFO_EXPORT, size: entry.node.length, transmissionFlags },
    { type: NBD_INFO_BLOCK_SIZE, minimum: NBD_MIN_BLOCK, preferred: NBD_PREFERRED_BLOCK, maximum: NBD_MAX_PAYLOAD },
  ];
  if (requests.includes(NBD_INFO_NAME)) items.push({ type: NBD_INFO_NAME, name: entry.name });
  if (requests.includes(NBD_INFO_DESCRIPTION) && entry.description) items.push({ type: NBD_INFO_DESCRIPTION, description: entry.description });
  return items;
}
