/**
 * The NBD wire protocol: constants and pure encode/decode functions for
 * every message of the fixed newstyle handshake and the transmission phase
 * (simple and structured replies). No sockets here: every function maps
 * bytes to values and back, so the layouts are unit-testable byte by byte.
 *
 * All numbers are big-endian. 64-bit offsets and sizes are JavaScript
 * numbers (exact below 2^53; larger wire values decode to numbers above
 * Number.MAX_SAFE_INTEGER, which every bounds check rejects). Cookies are
 * opaque 64-bit values carried as bigint.
 */
import { ERRNO_NUMBERS, LivebackupError } from '../errors.js';

// ---- Magics -------------------------------------------------------------

/** 'NBDMAGIC': first 8 bytes the server sends. */
export const NBD_INIT_MAGIC = 0x4e42444d41474943n;
/** 'IHAVEOPT': newstyle server magic, and the magic of every client option. */
export const NBD_OPTS_MAGIC = 0x49484156454f5054n;
/** Magic of every option reply. */
export const NBD_REP_MAGIC = 0x0003e889045565a9n;
export const NBD_REQUEST_MAGIC = 0x25609513;
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
export const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;

// ---- Handshake flags ----------------------------------------------------

export const NBD_FLAG_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_NO_ZEROES = 1 << 1;
export const NBD_FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_C_NO_ZEROES = 1 << 1;

// ---- Transmission flags -------------------------------------------------

export const NBD_FLAG_HAS_FLAGS = 1 << 0;
export const NBD_FLAG_READ_ONLY = 1 << 1;
export const NBD_FLAG_SEND_FLUSH = 1 << 2;
export const NBD_FLAG_SEND_FUA = 1 << 3;
export const NBD_FLAG_ROTATIONAL = 1 << 4;
export const NBD_FLAG_SEND_TRIM = 1 << 5;
export const NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6;
export const NBD_FLAG_SEND_DF = 1 << 7;
export const NBD_FLAG_CAN_MULTI_CONN = 1 << 8;
export const NBD_FLAG_SEND_RESIZE = 1 << 9;
export const NBD_FLAG_SEND_CACHE = 1 << 10;
export const NBD_FLAG_SEND_FAST_ZERO = 1 << 11;

// ---- Options ------------------------------------------------------------

export const NBD_OPT_EXPORT_NAME = 1;
export const NBD_OPT_ABORT = 2;
export const NBD_OPT_LIST = 3;
export const NBD_OPT_PEEK_EXPORT = 4;
export const NBD_OPT_STARTTLS = 5;
export const NBD_OPT_INFO = 6;
export const NBD_OPT_GO = 7;
export const NBD_OPT_STRUCTURED_REPLY = 8;
export const NBD_OPT_LIST_META_CONTEXT = 9;
export const NBD_OPT_SET_META_CONTEXT = 10;
export const NBD_OPT_EXTENDED_HEADERS = 11;

// ---- Option reply types -------------------------------------------------

export const NBD_REP_ACK = 1;
export const NBD_REP_SERVER = 2;
export const NBD_REP_INFO = 3;
export const NBD_REP_META_CONTEXT = 4;
export const NBD_REP_FLAG_ERROR = 0x80000000;
export const NBD_REP_ERR_UNSUP = 0x80000001;
export const NBD_REP_ERR_POLICY = 0x80000002;
export const NBD_REP_ERR_INVALID = 0x80000003;
export const NBD_REP_ERR_PLATFORM = 0x80000004;
export const NBD_REP_ERR_TLS_REQD = 0x80000005;
export const NBD_REP_ERR_UNKNOWN = 0x80000006;
export const NBD_REP_ERR_SHUTDOWN = 0x80000007;
export const NBD_REP_ERR_BLOCK_SIZE_REQD = 0x80000008;
export const NBD_REP_ERR_TOO_BIG = 0x80000009;

// ---- Info types (NBD_REP_INFO) ------------------------------------------

export const NBD_INFO_EXPORT = 0;
export const NBD_INFO_NAME = 1;
export const NBD_INFO_DESCRIPTION = 2;
export const NBD_INFO_BLOCK_SIZE = 3;

// ---- Commands and command flags -----------------------------------------

export const NBD_CMD_READ = 0;
export const NBD_CMD_WRITE = 1;
export const NBD_CMD_DISC = 2;
export const NBD_CMD_FLUSH = 3;
export const NBD_CMD_TRIM = 4;
export const NBD_CMD_CACHE = 5;
export const NBD_CMD_WRITE_ZEROES = 6;
export const NBD_CMD_BLOCK_STATUS = 7;

export const NBD_CMD_FLAG_FUA = 1 << 0;
export const NBD_CMD_FLAG_NO_HOLE = 1 << 1;
export const NBD_CMD_FLAG_DF = 1 << 2;
export const NBD_CMD_FLAG_REQ_ONE = 1 << 3;
export const NBD_CMD_FLAG_FAST_ZERO = 1 << 4;

// ---- Structured replies -------------------------------------------------

export const NBD_REPLY_FLAG_DONE = 1 << 0;
export const NBD_REPLY_TYPE_NONE = 0;
export const NBD_REPLY_TYPE_OFFSET_DATA = 1;
export const NBD_REPLY_TYPE_OFFSET_HOLE = 2;
export const NBD_REPLY_TYPE_BLOCK_STATUS = 5;
export const NBD_REPLY_TYPE_ERROR = (1 << 15) + 1;
export const NBD_REPLY_TYPE_ERROR_OFFSET = (1 << 15) + 2;
/** Bit 15 of a chunk type marks an error chunk. */
export const NBD_REPLY_TYPE_ERROR_BIT = 1 << 15;

// ---- Metadata contexts --------------------------------------------------

export const NBD_STATE_HOLE = 1 << 0;
export const NBD_STATE_ZERO = 1 << 1;
export const BASE_ALLOCATION = 'base:allocation';
export const QEMU_ALLOCATION_DEPTH = 'qemu:allocation-depth';

// ---- Errors -------------------------------------------------------------

/**
 * NBD error values by errno name: the protocol's fixed set uses the Linux
 * numbers, which errors.ts already holds.
 */
export const NBD_ERRNO: Readonly<Record<string, number>> = ERRNO_NUMBERS;

/** The errno name of an NBD error value; unknown values read as EINVAL (as the spec advises). */
export function nbdErrnoName(value: number): string {
  for (const [name, number] of Object.entries(NBD_ERRNO)) if (number === value) return name;
  return 'EINVAL';
}

/** The NBD error value for an errno name; names outside the protocol's set become EIO (EDQUOT/EFBIG: ENOSPC). */
export function nbdErrnoValue(name: string): number {
  if (name === 'EDQUOT' || name === 'EFBIG') return NBD_ERRNO.ENOSPC!;
  if (name === 'EOPNOTSUPP') return NBD_ERRNO.ENOTSUP!;
  return NBD_ERRNO[name] ?? NBD_ERRNO.EIO!;
}

// ---- Sizes and limits ---------------------------------------------------

/** Longest string (export name, query, message) the protocol allows. */
export const NBD_MAX_STRING = 4096;
/** Largest READ/WRITE payload we accept or send (32 MiB, the spec's interoperable maximum). */
export const NBD_MAX_PAYLOAD = 32 * 1024 * 1024;
/** Default size constraints we advertise. */
export const NBD_MIN_BLOCK = 1;
export const NBD_PREFERRED_BLOCK = 4096;

export const SERVER_GREETING_LENGTH = 18;
export const OPTION_HEADER_LENGTH = 16;
export const OPTION_REPLY_HEADER_LENGTH = 20;
export const REQUEST_LENGTH = 28;
export const SIMPLE_REPLY_LENGTH = 16;
export const STRUCTURED_HEADER_LENGTH = 20;
/** Bytes of NBD_OPT_EXPORT_NAME's reply: size, flags and (without NO_ZEROES) 124 zero bytes. */
export const EXPORT_NAME_REPLY_LENGTH = 134;

// ---- Small helpers ------------------------------------------------------

function protocolError(message: string): LivebackupError {
  return new LivebackupError('PROTOCOL_ERROR', message, { errno: 'EINVAL' });
}

/** Read an unsigned 64-bit value as a number (inexact, but > MAX_SAFE_INTEGER, above 2^53). */
export function readU64(buf: Uint8Array, at: number): number {
  const view = viewOf(buf);
  return view.getUint32(at) * 0x100000000 + view.getUint32(at + 4);
}

/** Write a non-negative safe integer as an unsigned 64-bit value. */
export function writeU64(buf: Uint8Array, at: number, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new LivebackupError('INVALID_ARGUMENT', `not a valid 64-bit unsigned value: ${value}`);
  const view = viewOf(buf);
  view.setUint32(at, Math.floor(value / 0x100000000));
  view.setUint32(at + 4, value % 0x100000000);
}

function viewOf(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** UTF-8 bytes of a protocol string; rejects strings over 4096 bytes or containing NUL. */
export function encodeString(value: string, what = 'string'): Buffer {
  const bytes = Buffer.from(utf8.encode(value));
  if (bytes.length > NBD_MAX_STRING) throw new LivebackupError('INVALID_ARGUMENT', `${what} is longer than ${NBD_MAX_STRING} bytes`);
  if (bytes.includes(0)) throw new LivebackupError('INVALID_ARGUMENT', `${what} contains a NUL character`);
  return bytes;
}

/** Decode a protocol string; PROTOCOL_ERROR when it is not UTF-8 or contains NUL. */
export function decodeString(bytes: Uint8Array, what = 'string'): string {
  if (bytes.includes(0)) throw protocolError(`${what} contains a NUL character`);
  try {
    return utf8Strict.decode(bytes);
  } catch {
    throw protocolError(`${what} is not valid UTF-8`);
  }
}

/** Decode a message string leniently (invalid UTF-8 replaced): for error texts shown to humans. */
function decodeMessage(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
}

// ---- Handshake: greeting and client flags -------------------------------

/** S: NBDMAGIC, IHAVEOPT, 16-bit handshake flags. */
export function encodeServerGreeting(handshakeFlags: number): Buffer {
  const buf = Buffer.alloc(SERVER_GREETING_LENGTH);
  buf.writeBigUInt64BE(NBD_INIT_MAGIC, 0);
  buf.writeBigUInt64BE(NBD_OPTS_MAGIC, 8);
  buf.writeUInt16BE(handshakeFlags, 16);
  return buf;
}

/** The handshake flags of a newstyle greeting; PROTOCOL_ERROR for oldstyle or foreign servers. */
export function decodeServerGreeting(buf: Uint8Array): number {
  const view = Buffer.from(buf.buffer, buf.byteOffset, SERVER_GREETING_LENGTH);
  if (view.readBigUInt64BE(0) !== NBD_INIT_MAGIC) throw protocolError('not an NBD server (bad NBDMAGIC)');
  if (view.readBigUInt64BE(8) !== NBD_OPTS_MAGIC) throw protocolError('server does not speak newstyle negotiation');
  return view.readUInt16BE(16);
}

/** C: 32-bit client flags. */
export function encodeClientFlags(flags: number): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeUInt32BE(flags >>> 0, 0);
  return buf;
}

/** The 32-bit client flags. */
export function decodeClientFlags(buf: Uint8Array): number {
  return viewOf(buf).getUint32(0);
}

// ---- Options ------------------------------------------------------------

export interface OptionHeader {
  readonly option: number;
  /** Length of the option data that follows. */
  readonly length: number;
}

/** C: IHAVEOPT, option, length, data. */
export function encodeOption(option: number, data: Uint8Array = Buffer.alloc(0)): Buffer {
  const buf = Buffer.alloc(OPTION_HEADER_LENGTH + data.length);
  buf.writeBigUInt64BE(NBD_OPTS_MAGIC, 0);
  buf.writeUInt32BE(option >>> 0, 8);
  buf.writeUInt32BE(data.length, 12);
  buf.set(data, OPTION_HEADER_LENGTH);
  return buf;
}

/** The 16-byte option header; PROTOCOL_ERROR on a bad magic. */
export function decodeOptionHeader(buf: Uint8Array): OptionHeader {
  const view = Buffer.from(buf.buffer, buf.byteOffset, OPTION_HEADER_LENGTH);
  if (view.readBigUInt64BE(0) !== NBD_OPTS_MAGIC) throw protocolError('bad option magic');
  return { option: view.readUInt32BE(8), length: view.readUInt32BE(12) };
}

export interface OptionReplyHeader {
  readonly option: number;
  readonly type: number;
  readonly length: number;
}

/** S: reply magic, option, reply type, length, data. */
export function encodeOptionReply(option: number, type: number, data: Uint8Array = Buffer.alloc(0)): Buffer {
  const buf = Buffer.alloc(OPTION_REPLY_HEADER_LENGTH + data.length);
  buf.writeBigUInt64BE(NBD_REP_MAGIC, 0);
  buf.writeUInt32BE(option >>> 0, 8);
  buf.writeUInt32BE(type >>> 0, 12);
  buf.writeUInt32BE(data.length, 16);
  buf.set(data, OPTION_REPLY_HEADER_LENGTH);
  return buf;
}

/** The 20-byte option reply header; PROTOCOL_ERROR on a bad magic. */
export function decodeOptionReplyHeader(buf: Uint8Array): OptionReplyHeader {
  const view = Buffer.from(buf.buffer, buf.byteOffset, OPTION_REPLY_HEADER_LENGTH);
  if (view.readBigUInt64BE(0) !== NBD_REP_MAGIC) throw protocolError('bad option reply magic');
  return { option: view.readUInt32BE(8), type: view.readUInt32BE(12), length: view.readUInt32BE(16) };
}

/** S: reply to NBD_OPT_EXPORT_NAME: size, transmission flags, 124 zeroes unless NO_ZEROES. */
export function encodeExportNameReply(size: number, transmissionFlags: number, noZeroes: boolean): Buffer {
  const buf = Buffer.alloc(noZeroes ? 10 : EXPORT_NAME_REPLY_LENGTH);
  writeU64(buf, 0, size);
  buf.writeUInt16BE(transmissionFlags, 8);
  return buf;
}

/** Data of NBD_OPT_INFO / NBD_OPT_GO. */
export interface GoOptionData {
  readonly name: string;
  readonly infoRequests: readonly number[];
}

/** C: name length, name, info request count, info requests. */
export function encodeGoOptionData(data: GoOptionData): Buffer {
  const name = encodeString(data.name, 'export name');
  const buf = Buffer.alloc(4 + name.length + 2 + 2 * data.infoRequests.length);
  buf.writeUInt32BE(name.length, 0);
  name.copy(buf, 4);
  buf.writeUInt16BE(data.infoRequests.length, 4 + name.length);
  data.infoRequests.forEach((info, i) => buf.writeUInt16BE(info, 6 + name.length + 2 * i));
  return buf;
}

/** PROTOCOL_ERROR when the lengths inside do not match the option length. */
export function decodeGoOptionData(buf: Uint8Array): GoOptionData {
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.length < 6) throw protocolError('option data too short for an export name and info count');
  const nameLength = view.readUInt32BE(0);
  if (nameLength > NBD_MAX_STRING) throw protocolError(`export name of ${nameLength} bytes is too long`);
  if (nameLength > view.length - 6) throw protocolError('export name length exceeds the option data');
  const name = decodeString(view.subarray(4, 4 + nameLength), 'export name');
  const count = view.readUInt16BE(4 + nameLength);
  if (view.length !== 6 + nameLength + 2 * count) throw protocolError('info request count does not match the option length');
  const infoRequests: number[] = [];
  for (let i = 0; i < count; i++) infoRequests.push(view.readUInt16BE(6 + nameLength + 2 * i));
  return { name, infoRequests };
}

/** Data of NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT. */
export interface MetaContextOptionData {
  readonly exportName: string;
  readonly queries: readonly string[];
}

/** C: export name length, name, query count, then length-prefixed queries. */
export function encodeMetaContextOptionData(data: MetaContextOptionData): Buffer {
  const name = encodeString(data.exportName, 'export name');
  const queries = data.queries.map((query) => encodeString(query, 'meta context query'));
  const buf = Buffer.alloc(8 + name.length + queries.reduce((sum, query) => sum + 4 + query.length, 0));
  buf.writeUInt32BE(name.length, 0);
  name.copy(buf, 4);
  let at = 4 + name.length;
  buf.writeUInt32BE(queries.length, at);
  at += 4;
  for (const query of queries) {
    buf.writeUInt32BE(query.length, at);
    query.copy(buf, at + 4);
    at += 4 + query.length;
  }
  return buf;
}

/** PROTOCOL_ERROR when a length inside runs past the option data or a string is too long. */
export function decodeMetaContextOptionData(buf: Uint8Array): MetaContextOptionData {
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let at = 0;
  const takeString = (what: string): string => {
    if (view.length - at < 4) throw protocolError(`option data too short for the ${what} length`);
    const length = view.readUInt32BE(at);
    if (length > NBD_MAX_STRING) throw protocolError(`${what} of ${length} bytes is too long`);
    if (length > view.length - at - 4) throw protocolError(`${what} length exceeds the option data`);
    const value = decodeString(view.subarray(at + 4, at + 4 + length), what);
    at += 4 + length;
    return value;
  };
  const exportName = takeString('export name');
  if (view.length - at < 4) throw protocolError('option data too short for the query count');
  const count = view.readUInt32BE(at);
  at += 4;
  // Each query needs at least 4 bytes: a count that cannot fit is malformed.
  if (count > (view.length - at) / 4) throw protocolError('query count exceeds the option data');
  const queries: string[] = [];
  for (let i = 0; i < count; i++) queries.push(takeString('meta context query'));
  if (at !== view.length) throw protocolError('trailing bytes after the meta context queries');
  return { exportName, queries };
}

/** Data of NBD_REP_SERVER: name length, name, then an optional description. */
export function encodeServerReplyData(name: string, description = ''): Buffer {
  const nameBytes = encodeString(name, 'export name');
  const descriptionBytes = encodeString(description, 'export description');
  const buf = Buffer.alloc(4 + nameBytes.length + descriptionBytes.length);
  buf.writeUInt32BE(nameBytes.length, 0);
  nameBytes.copy(buf, 4);
  descriptionBytes.copy(buf, 4 + nameBytes.length);
  return buf;
}

/** NBD_REP_SERVER data; PROTOCOL_ERROR when the name length runs past it. */
export function decodeServerReplyData(buf: Uint8Array): { name: string; description: string } {
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.length < 4) throw protocolError('NBD_REP_SERVER data too short');
  const nameLength = view.readUInt32BE(0);
  if (nameLength > view.length - 4) throw protocolError('NBD_REP_SERVER name length exceeds the reply');
  return {
    name: decodeString(view.subarray(4, 4 + nameLength), 'export name'),
    description: decodeMessage(view.subarray(4 + nameLength)),
  };
}

/** Data of NBD_REP_META_CONTEXT: 32-bit context id, name. */
export function encodeMetaContextReplyData(id: number, name: string): Buffer {
  const nameBytes = encodeString(name, 'meta context name');
  const buf = Buffer.alloc(4 + nameBytes.length);
  buf.writeUInt32BE(id >>> 0, 0);
  nameBytes.copy(buf, 4);
  return buf;
}

/** NBD_REP_META_CONTEXT data; PROTOCOL_ERROR when shorter than the id. */
export function decodeMetaContextReplyData(buf: Uint8Array): { id: number; name: string } {
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.length < 4) throw protocolError('NBD_REP_META_CONTEXT data too short');
  return { id: view.readUInt32BE(0), name: decodeString(view.subarray(4), 'meta context name') };
}

/** One NBD_REP_INFO item. */
export type InfoItem =
  | { readonly type: typeof NBD_INFO_EXPORT; readonly size: number; readonly transmissionFlags: number }
  | { readonly type: typeof NBD_INFO_NAME; readonly name: string }
  | { readonly type: typeof NBD_INFO_DESCRIPTION; readonly description: string }
  | {
      readonly type: typeof NBD_INFO_BLOCK_SIZE;
      readonly minimum: number;
      readonly preferred: number;
      readonly maximum: number;
    }
  | { readonly type: number; readonly unknown: true };

/** Data of NBD_REP_INFO for one item. */
export function encodeInfo(item: InfoItem): Buffer {
  if ('unknown' in item) throw new LivebackupError('INVALID_ARGUMENT', `cannot encode unknown info type ${item.type}`);
  switch (item.type) {
    case NBD_INFO_EXPORT: {
      const buf = Buffer.alloc(12);
      buf.writeUInt16BE(NBD_INFO_EXPORT, 0);
      writeU64(buf, 2, item.size);
      buf.writeUInt16BE(item.transmissionFlags, 10);
      return buf;
    }
    case NBD_INFO_NAME:
    case NBD_INFO_DESCRIPTION: {
      const text = item.type === NBD_INFO_NAME ? item.name : item.description;
      const bytes = encodeString(text, item.type === NBD_INFO_NAME ? 'export name' : 'export description');
      const buf = Buffer.alloc(2 + bytes.length);
      buf.writeUInt16BE(item.type, 0);
      bytes.copy(buf, 2);
      return buf;
    }
    case NBD_INFO_BLOCK_SIZE: {
      const buf = Buffer.alloc(14);
      buf.writeUInt16BE(NBD_INFO_BLOCK_SIZE, 0);
      buf.writeUInt32BE(item.minimum, 2);
      buf.writeUInt32BE(item.preferred, 6);
      buf.writeUInt32BE(item.maximum, 10);
      return buf;
    }
  }
  throw new LivebackupError('INVALID_ARGUMENT', 'cannot encode this info type');
}

/** Decode one NBD_REP_INFO; unknown types come back as `{unknown: true}`; wrong lengths are PROTOCOL_ERROR. */
export function decodeInfo(buf: Uint8Array): InfoItem {
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.length < 2) throw protocolError('NBD_REP_INFO data too short');
  const type = view.readUInt16BE(0);
  switch (type) {
    case NBD_INFO_EXPORT:
      if (view.length !== 12) throw protocolError('NBD_INFO_EXPORT must be 12 bytes');
      return { type, size: readU64(view, 2), transmissionFlags: view.readUInt16BE(10) };
    case NBD_INFO_NAME:
      return { type, name: decodeMessage(view.subarray(2)) };
    case NBD_INFO_DESCRIPTION:
      return { type, description: decodeMessage(view.subarray(2)) };
    case NBD_INFO_BLOCK_SIZE:
      if (view.length !== 14) throw protocolError('NBD_INFO_BLOCK_SIZE must be 14 bytes');
      return { type, minimum: view.readUInt32BE(2), preferred: view.readUInt32BE(6), maximum: view.readUInt32BE(10) };
    default:
      return { type, unknown: true };
  }
}

/** The message string of an option error reply. */
export function decodeOptionErrorMessage(buf: Uint8Array): string {
  return decodeMessage(buf);
}

// ---- Transmission: requests ---------------------------------------------

export interface NbdRequest {
  readonly flags: number;
  readonly type: number;
  readonly cookie: bigint;
  readonly offset: number;
  readonly length: number;
}

/** C: request magic, flags, type, cookie, offset, length (28 bytes; the payload follows separately). */
export function encodeRequest(request: NbdRequest): Buffer {
  const buf = Buffer.allocUnsafe(REQUEST_LENGTH);
  buf.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
  buf.writeUInt16BE(request.flags, 4);
  buf.writeUInt16BE(request.type, 6);
  buf.writeBigUInt64BE(request.cookie, 8);
  writeU64(buf, 16, request.offset);
  buf.writeUInt32BE(request.length, 24);
  return buf;
}

/** The 28-byte request header; PROTOCOL_ERROR on a bad magic. */
export function decodeRequest(buf: Uint8Array): NbdRequest {
  const view = Buffer.from(buf.buffer, buf.byteOffset, REQUEST_LENGTH);
  const magic = view.readUInt32BE(0);
  if (magic !== NBD_REQUEST_MAGIC) throw protocolError(`bad request magic 0x${magic.toString(16)}`);
  return {
    flags: view.readUInt16BE(4),
    type: view.readUInt16BE(6),
    cookie: view.readBigUInt64BE(8),
    offset: readU64(view, 16),
    length: view.readUInt32BE(24),
  };
}

// ---- Transmission: replies ----------------------------------------------
// Fixed-size headers are written in full, so they come from Node's pooled
// allocUnsafe slab instead of a fresh zeroed ArrayBuffer per request.

/** S: simple reply header (16 bytes); a successful READ's data follows it. */
export function encodeSimpleReply(cookie: bigint, error: number): Buffer {
  const buf = Buffer.allocUnsafe(SIMPLE_REPLY_LENGTH);
  buf.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0);
  buf.writeUInt32BE(error >>> 0, 4);
  buf.writeBigUInt64BE(cookie, 8);
  return buf;
}

export interface SimpleReply {
  readonly error: number;
  readonly cookie: bigint;
}

/** The 16-byte simple reply; PROTOCOL_ERROR on a bad magic. */
export function decodeSimpleReply(buf: Uint8Array): SimpleReply {
  const view = Buffer.from(buf.buffer, buf.byteOffset, SIMPLE_REPLY_LENGTH);
  if (view.readUInt32BE(0) !== NBD_SIMPLE_REPLY_MAGIC) throw protocolError('bad simple reply magic');
  return { error: view.readUInt32BE(4), cookie: view.readBigUInt64BE(8) };
}

export interface StructuredChunkHeader {
  readonly flags: number;
  readonly type: number;
  readonly cookie: bigint;
  readonly length: number;
}

/** S: structured reply chunk header (20 bytes); `length` payload bytes follow. */
export function encodeStructuredHeader(header: StructuredChunkHeader): Buffer {
  const buf = Buffer.allocUnsafe(STRUCTURED_HEADER_LENGTH);
  writeStructuredHeader(buf, header);
  return buf;
}

function writeStructuredHeader(buf: Buffer, header: StructuredChunkHeader): void {
  buf.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, 0);
  buf.writeUInt16BE(header.flags, 4);
  buf.writeUInt16BE(header.type, 6);
  buf.writeBigUInt64BE(header.cookie, 8);
  buf.writeUInt32BE(header.length >>> 0, 16);
}

/** The 20-byte structured chunk header; PROTOCOL_ERROR on a bad magic. */
export function decodeStructuredHeader(buf: Uint8Array): StructuredChunkHeader {
  const view = Buffer.from(buf.buffer, buf.byteOffset, STRUCTURED_HEADER_LENGTH);
  if (view.readUInt32BE(0) !== NBD_STRUCTURED_REPLY_MAGIC) throw protocolError('bad structured reply magic');
  return { flags: view.readUInt16BE(4), type: view.readUInt16BE(6), cookie: view.readBigUInt64BE(8), length: view.readUInt32BE(16) };
}

/** The magic that starts a reply: the first 4 bytes tell a simple from a structured reply. */
export function replyMagicOf(buf: Uint8Array): number {
  return viewOf(buf).getUint32(0);
}

/** S: NBD_REPLY_TYPE_NONE chunk with DONE (20 bytes). */
export function encodeNoneChunk(cookie: bigint): Buffer {
  return encodeStructuredHeader({ flags: NBD_REPLY_FLAG_DONE, type: NBD_REPLY_TYPE_NONE, cookie, length: 0 });
}

/**
 * S: header and offset of an NBD_REPLY_TYPE_OFFSET_DATA chunk (28 bytes);
 * the caller sends the `dataLength` data bytes right after it.
 */
export function encodeOffsetDataHeader(cookie: bigint, flags: number, offset: number, dataLength: number): Buffer {
  const buf = Buffer.allocUnsafe(STRUCTURED_HEADER_LENGTH + 8);
  writeStructuredHeader(buf, { flags, type: NBD_REPLY_TYPE_OFFSET_DATA, cookie, length: 8 + dataLength });
  writeU64(buf, STRUCTURED_HEADER_LENGTH, offset);
  return buf;
}

/** S: a whole NBD_REPLY_TYPE_OFFSET_HOLE chunk (32 bytes). */
export function encodeOffsetHoleChunk(cookie: bigint, flags: number, offset: number, holeSize: number): Buffer {
  const buf = Buffer.allocUnsafe(STRUCTURED_HEADER_LENGTH + 12);
  writeStructuredHeader(buf, { flags, type: NBD_REPLY_TYPE_OFFSET_HOLE, cookie, length: 12 });
  writeU64(buf, STRUCTURED_HEADER_LENGTH, offset);
  buf.writeUInt32BE(holeSize, STRUCTURED_HEADER_LENGTH + 8);
  return buf;
}

/** Payload of an OFFSET_HOLE chunk. */
export function decodeOffsetHole(buf: Uint8Array): { offset: number; size: number } {
  if (buf.length !== 12) throw protocolError('NBD_REPLY_TYPE_OFFSET_HOLE payload must be 12 bytes');
  return { offset: readU64(buf, 0), size: viewOf(buf).getUint32(8) };
}

/** One block status descriptor. */
export interface Extent {
  readonly length: number;
  readonly flags: number;
}

/** S: a whole NBD_REPLY_TYPE_BLOCK_STATUS chunk for one context. */
export function encodeBlockStatusChunk(cookie: bigint, flags: number, contextId: number, extents: readonly Extent[]): Buffer {
  const payload = 4 + 8 * extents.length;
  const buf = Buffer.alloc(STRUCTURED_HEADER_LENGTH + payload);
  writeStructuredHeader(buf, { flags, type: NBD_REPLY_TYPE_BLOCK_STATUS, cookie, length: payload });
  buf.writeUInt32BE(contextId >>> 0, STRUCTURED_HEADER_LENGTH);
  extents.forEach((extent, i) => {
    buf.writeUInt32BE(extent.length, STRUCTURED_HEADER_LENGTH + 4 + 8 * i);
    buf.writeUInt32BE(extent.flags >>> 0, STRUCTURED_HEADER_LENGTH + 8 + 8 * i);
  });
  return buf;
}

/** Payload of a BLOCK_STATUS chunk; PROTOCOL_ERROR when its length is not 4 + 8n (n >= 1). */
export function decodeBlockStatusPayload(buf: Uint8Array): { contextId: number; extents: Extent[] } {
  if (buf.length < 12 || (buf.length - 4) % 8 !== 0) throw protocolError('NBD_REPLY_TYPE_BLOCK_STATUS payload has a bad length');
  const view = viewOf(buf);
  const extents: Extent[] = [];
  for (let at = 4; at < buf.length; at += 8) extents.push({ length: view.getUint32(at), flags: view.getUint32(at + 4) });
  return { contextId: view.getUint32(0), extents };
}

/** S: a whole NBD_REPLY_TYPE_ERROR chunk (with DONE unless told otherwise). */
export function encodeErrorChunk(cookie: bigint, error: number, message: string, flags = NBD_REPLY_FLAG_DONE): Buffer {
  let text = Buffer.from(message, 'utf8');
  if (text.length > NBD_MAX_STRING) text = text.subarray(0, NBD_MAX_STRING);
  const buf = Buffer.alloc(STRUCTURED_HEADER_LENGTH + 6 + text.length);
  writeStructuredHeader(buf, { flags, type: NBD_REPLY_TYPE_ERROR, cookie, length: 6 + text.length });
  buf.writeUInt32BE(error >>> 0, STRUCTURED_HEADER_LENGTH);
  buf.writeUInt16BE(text.length, STRUCTURED_HEADER_LENGTH + 4);
  text.copy(buf, STRUCTURED_HEADER_LENGTH + 6);
  return buf;
}

/** Payload of any error chunk (type with bit 15 set): error, message, and the offset for ERROR_OFFSET. */
export function decodeErrorPayload(type: number, buf: Uint8Array): { error: number; message: string; offset?: number } {
  if (buf.length < 6) throw protocolError('error chunk payload too short');
  const view = viewOf(buf);
  const error = view.getUint32(0);
  const messageLength = view.getUint16(4);
  if (messageLength > buf.length - 6) throw protocolError('error chunk message length exceeds the chunk');
  const message = decodeMessage(buf.subarray(6, 6 + messageLength));
  if (type === NBD_REPLY_TYPE_ERROR_OFFSET) {
    if (buf.length !== 6 + messageLength + 8) throw protocolError('NBD_REPLY_TYPE_ERROR_OFFSET has a bad length');
    return { error, message, offset: readU64(buf, 6 + messageLength) };
  }
  return { error, message };
}
