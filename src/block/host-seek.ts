/**
 * The optional native helper for lseek(SEEK_DATA) / lseek(SEEK_HOLE)
 * (native/host-seek.c, built by node-gyp at install time). Node has no
 * binding for them; without the helper the `file` driver reports every byte
 * as data, which is correct but reads the holes of sparse files.
 *
 * The helper is not loaded when LIVEBACKUP_NO_SEEK_DATA=1.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { messageOf } from '../errors.js';

/** Where the extents of a host file begin and end, from its file descriptor. */
export interface HostSeek {
  /**
   * The offset of the first data byte at or after `offset`, or -1 when the
   * file holds no data there (only holes up to its end, or offset >= size).
   * Throws an Error with `code` = errno name on other failures ('EINVAL' or
   * 'EOPNOTSUPP' when the file system cannot tell, 'EBADF', ...), and a
   * TypeError when fd or offset is not a non-negative safe integer.
   */
  seekData(fd: number, offset: number): number;
  /**
   * The offset of the first hole byte at or after `offset` (the end of the
   * file counts as a hole), or -1 when offset is at or past the end of the
   * file. Throws like seekData.
   */
  seekHole(fd: number, offset: number): number;
}

/** The addon's path relative to this module (dist/src/block/ -> package root). */
const ADDON_URL = new URL('../../../build/Release/livebackup_host_seek.node', import.meta.url);

function loadHostSeek(): { hostSeek?: HostSeek; reason?: string } {
  if (process.env.LIVEBACKUP_NO_SEEK_DATA === '1') return { reason: 'disabled by LIVEBACKUP_NO_SEEK_DATA=1' };
  try {
    const addon = createRequire(import.meta.url)(fileURLToPath(ADDON_URL)) as Partial<HostSeek>;
    if (typeof addon.seekData !== 'function' || typeof addon.seekHole !== 'function') {
      return { reason: `${fileURLToPath(ADDON_URL)} does not export seekData and seekHole` };
    }
    return { hostSeek: { seekData: addon.seekData, seekHole: addon.seekHole } };
  } catch (error) {
    return { reason: `the native helper could not be loaded: ${messageOf(error).split('\n')[0]}` };
  }
}

const loaded = loadHostSeek();

/** The native helper, or undefined when it is not built, not loadable, or disabled. */
export const hostSeek: HostSeek | undefined = loaded.hostSeek;

/** Why hostSeek is undefined (undefined when it is loaded). */
export const hostSeekUnavailableReason: string | undefined = loaded.reason;
