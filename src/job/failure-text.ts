/**
 * The text a failed job reports (BLOCK_JOB_COMPLETED's and query-jobs'
 * `error`). QEMU reports an I/O failure as strerror() of its errno
 * ("Input/output error"), so for I/O errors we do the same; other errors
 * keep their own message.
 */
import { LivebackupError, messageOf } from '../errors.js';

/** glibc's strerror() texts for the errno names livebackup uses. */
const STRERROR: Readonly<Record<string, string>> = {
  EPERM: 'Operation not permitted',
  EIO: 'Input/output error',
  ENOMEM: 'Cannot allocate memory',
  EINVAL: 'Invalid argument',
  ENOSPC: 'No space left on device',
  EOVERFLOW: 'Value too large for defined data type',
  ENOTSUP: 'Operation not supported',
  ESHUTDOWN: 'Cannot send after transport endpoint shutdown',
  ECANCELED: 'Operation canceled',
};

/** What QEMU reports for a job that was cancelled. */
export const CANCELLED_TEXT = STRERROR.ECANCELED!;

/** strerror() text of an errno name, or the name itself when unknown. */
export function strerrorText(errno: string): string {
  return STRERROR[errno] ?? errno;
}

/**
 * The `error` text for a job that failed with `error`: strerror text for I/O
 * errors (a LivebackupError with code IO_ERROR, or a Node system error with a
 * known errno code), the error's message otherwise.
 */
export function failureText(error: unknown): string {
  if (error instanceof LivebackupError) {
    return error.code === 'IO_ERROR' && error.errno !== undefined ? strerrorText(error.errno) : error.message;
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code in STRERROR) return STRERROR[code]!;
  return messageOf(error);
}
