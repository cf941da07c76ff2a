/**
 * The one error hierarchy of livebackup. Every error carries a stable `code`
 * string; protocol front ends (QMP, NBD, CLI) translate codes into their own
 * error classes or errno values at the edge, never earlier.
 */

/** Stable error codes. Add new ones at the end; never rename one. */
export type ErrorCode =
  /** An option object, argument or command-line value is wrong. */
  | 'INVALID_ARGUMENT'
  /** A request lies (partly) outside the node or image. */
  | 'OUT_OF_BOUNDS'
  /** A write-type request on a read-only node. */
  | 'READ_ONLY'
  /** A feature of an image or option that livebackup does not implement. */
  | 'UNSUPPORTED'
  /** Image metadata is inconsistent or malformed. */
  | 'CORRUPT_IMAGE'
  /** The operating system or a lower layer reported an I/O error (see `errno`). */
  | 'IO_ERROR'
  /** A named thing (node, job, export, file) does not exist. */
  | 'NOT_FOUND'
  /** The resource is in use (by a job, an export, another open). */
  | 'BUSY'
  /** A name that must be unique is already taken. */
  | 'ALREADY_EXISTS'
  /** The operation is not allowed in the current state. */
  | 'INVALID_STATE'
  /** The operation was cancelled. */
  | 'CANCELLED'
  /** A peer violated a protocol. */
  | 'PROTOCOL_ERROR';

export interface LivebackupErrorOptions {
  /** The lower-level error that caused this one. */
  cause?: unknown;
  /** POSIX errno name for I/O errors ('EIO', 'ENOSPC', 'EPERM', ...). */
  errno?: string;
}

export class LivebackupError extends Error {
  readonly code: ErrorCode;
  /** POSIX errno name, when the error maps to one. */
  readonly errno: string | undefined;

  constructor(code: ErrorCode, message: string, options: LivebackupErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LivebackupError';
    this.code = code;
    this.errno = options.errno;
  }
}

/** Errno names we map to and from, with their Linux numbers (NBD and QEMU use these). */
export const ERRNO_NUMBERS: Readonly<Record<string, number>> = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
};

/**
 * The errno name of an error: the LivebackupError's errno, a Node system
 * error's code, or 'EIO' for anything else. Used by error policies
 * (enospc) and by the NBD server.
 */
export function errnoOf(error: unknown): string {
  if (error instanceof LivebackupError) {
    if (error.errno !== undefined) return error.errno;
    switch (error.code) {
      case 'OUT_OF_BOUNDS':
      case 'INVALID_ARGUMENT':
        return 'EINVAL';
      case 'READ_ONLY':
        return 'EPERM';
      case 'UNSUPPORTED':
        return 'ENOTSUP';
      default:
        return 'EIO';
    }
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code in ERRNO_NUMBERS) return code;
  return 'EIO';
}

/** Wrap any thrown value from the OS into an IO_ERROR with its errno kept. */
export function ioError(what: string, cause: unknown): LivebackupError {
  if (cause instanceof LivebackupError) return cause;
  const errno = errnoOf(cause);
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new LivebackupError('IO_ERROR', `${what}: ${detail}`, { cause, errno });
}

/** Human-readable message of any thrown value. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
