/**
 * The one place where an NBD transmission request is checked before any
 * I/O: command type, command flags, payload size, read-only export, bounds,
 * and whether block status was negotiated. Pure: it sees the request and
 * what the connection negotiated, never the socket.
 */
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
  NBD_FLAG_SEND_DF,
  NBD_FLAG_SEND_FAST_ZERO,
  NBD_FLAG_SEND_FUA,
  NBD_MAX_PAYLOAD,
  type NbdRequest,
} from './protocol.js';

/** What the connection negotiated, as far as request checks need it. */
export interface RequestContext {
  /** Export size in bytes. */
  readonly size: number;
  readonly writable: boolean;
  /** Transmission flags sent to the client. */
  readonly transmissionFlags: number;
  readonly structuredReplies: boolean;
  /** Number of metadata contexts selected for this export. */
  readonly metaContextCount: number;
}

/** Why a request is refused: the NBD errno name and a message for the client. */
export interface RequestRejection {
  readonly errno: 'EINVAL' | 'EPERM' | 'ENOSPC' | 'EOVERFLOW';
  readonly message: string;
  /**
   * The stream cannot continue after this request: a WRITE whose payload
   * is too large to read is answered and then the connection is dropped.
   */
  readonly disconnect: boolean;
}

const COMMAND_NAMES: Readonly<Record<number, string>> = {
  [NBD_CMD_READ]: 'read',
  [NBD_CMD_WRITE]: 'write',
  [NBD_CMD_DISC]: 'disc',
  [NBD_CMD_FLUSH]: 'flush',
  [NBD_CMD_TRIM]: 'trim',
  [NBD_CMD_CACHE]: 'cache',
  [NBD_CMD_WRITE_ZEROES]: 'write-zeroes',
  [NBD_CMD_BLOCK_STATUS]: 'block-status',
};

/** Human name of a command type ('read', 'write', ...; 'cmd-N' when unknown). */
export function commandName(type: number): string {
  return COMMAND_NAMES[type] ?? `cmd-${type}`;
}

/** Command flags each command accepts, given the transmission flags sent. */
function allowedFlags(type: number, context: RequestContext): number {
  const fua = context.transmissionFlags & NBD_FLAG_SEND_FUA ? NBD_CMD_FLAG_FUA : 0;
  switch (type) {
    case NBD_CMD_READ:
      return fua | (context.transmissionFlags & NBD_FLAG_SEND_DF ? NBD_CMD_FLAG_DF : 0);
    case NBD_CMD_WRITE_ZEROES:
      return fua | NBD_CMD_FLAG_NO_HOLE | (context.transmissionFlags & NBD_FLAG_SEND_FAST_ZERO ? NBD_CMD_FLAG_FAST_ZERO : 0);
    case NBD_CMD_BLOCK_STATUS:
      return fua | NBD_CMD_FLAG_REQ_ONE;
    case NBD_CMD_DISC:
      return 0;
    default:
      return fua;
  }
}

/** True for commands that modify the export. */
export function isWriteCommand(type: number): boolean {
  return type === NBD_CMD_WRITE || type === NBD_CMD_WRITE_ZEROES || type === NBD_CMD_TRIM;
}

/**
 * Check a request (not NBD_CMD_DISC, which has no reply). Returns undefined
 * when it may proceed, else the rejection to send.
 */
export function validateRequest(request: NbdRequest, context: RequestContext): RequestRejection | undefined {
  const name = commandName(request.type);
  if (!(request.type in COMMAND_NAMES) || request.type === NBD_CMD_DISC) {
    return reject('EINVAL', `unknown command type ${request.type}`);
  }
  const unknownFlags = request.flags & ~allowedFlags(request.type, context);
  if (unknownFlags !== 0) return reject('EINVAL', `invalid flags 0x${unknownFlags.toString(16)} for ${name}`);

  if ((request.type === NBD_CMD_READ || request.type === NBD_CMD_WRITE) && request.length > NBD_MAX_PAYLOAD) {
    return reject('EINVAL', `${name} of ${request.length} bytes exceeds the maximum payload of ${NBD_MAX_PAYLOAD}`, request.type === NBD_CMD_WRITE);
  }
  if (isWriteCommand(request.type) && !context.writable) return reject('EPERM', `export is read-only: ${name} refused`);

  if (request.type === NBD_CMD_FLUSH) {
    if (request.offset !== 0 || request.length !== 0) return reject('EINVAL', 'flush must have offset and length 0');
    return undefined;
  }
  if (request.offset > context.size || request.length > context.size - request.offset) {
    const growing = request.type === NBD_CMD_WRITE || request.type === NBD_CMD_WRITE_ZEROES;
    return reject(
      growing ? 'ENOSPC' : 'EINVAL',
      `${name} of ${request.length} bytes at offset ${request.offset} is beyond the export size ${context.size}`,
    );
  }
  if (request.type === NBD_CMD_BLOCK_STATUS) {
    if (!context.structuredReplies) return reject('EINVAL', 'block status needs structured replies');
    if (context.metaContextCount === 0) return reject('EINVAL', 'block status needs a selected metadata context');
    if (request.length === 0) return reject('EINVAL', 'block status of an empty range');
  }
  return undefined;
}

function reject(errno: RequestRejection['errno'], message: string, disconnect = false): RequestRejection {
  return { errno, message, disconnect };
}
