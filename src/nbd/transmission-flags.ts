/**
 * The transmission flags an export announces on a connection. They depend
 * on the export (writable, multi-conn), on the server (like QEMU, no
 * multi-conn when it admits a single client) and on what the connection
 * negotiated (NBD_FLAG_SEND_DF only with structured replies).
 */
import type { NbdExport } from './export-registry.js';
import {
  NBD_FLAG_CAN_MULTI_CONN,
  NBD_FLAG_HAS_FLAGS,
  NBD_FLAG_READ_ONLY,
  NBD_FLAG_SEND_CACHE,
  NBD_FLAG_SEND_DF,
  NBD_FLAG_SEND_FAST_ZERO,
  NBD_FLAG_SEND_FLUSH,
  NBD_FLAG_SEND_FUA,
  NBD_FLAG_SEND_TRIM,
  NBD_FLAG_SEND_WRITE_ZEROES,
} from './protocol.js';

/**
 * Flags for `entry` on a connection that did (or did not) negotiate
 * structured replies, on a server that does (or does not) admit several
 * clients at once.
 */
export function transmissionFlagsFor(entry: NbdExport, structuredReplies: boolean, severalClients = true): number {
  let flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_CACHE;
  flags |= entry.writable ? NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO : NBD_FLAG_READ_ONLY;
  if (structuredReplies) flags |= NBD_FLAG_SEND_DF;
  if (entry.multiConn && severalClients) flags |= NBD_FLAG_CAN_MULTI_CONN;
  return flags;
}
