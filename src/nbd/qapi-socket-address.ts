/**
 * QAPI socket addresses as NBD addresses: the flat SocketAddress
 * (`{type: 'unix', path}`, `{type: 'inet', host, port}`; used by
 * blockdev-add's nbd `server` and qemu-storage-daemon's --nbd-server) and
 * the legacy form of nbd-server-start (`{type: 'unix', data: {path}}`).
 * Ports are strings in QAPI; numbers are accepted too.
 */
import { LivebackupError } from '../errors.js';
import { NBD_DEFAULT_PORT, type NbdAddress } from './uri.js';

/**
 * Translate a QAPI SocketAddress or SocketAddressLegacy. INVALID_ARGUMENT
 * naming `parameter` for anything else; UNSUPPORTED for the 'fd' and
 * 'vsock' types.
 */
export function socketAddressFromQapi(value: unknown, parameter = 'addr'): NbdAddress {
  const bad = (why: string) => new LivebackupError('INVALID_ARGUMENT', `Parameter '${parameter}' ${why}`);
  if (typeof value !== 'object' || value === null) throw bad('expects a socket address object');
  const outer = value as Record<string, unknown>;
  // Legacy form: the members sit in 'data'.
  const fields = typeof outer.data === 'object' && outer.data !== null ? (outer.data as Record<string, unknown>) : outer;
  switch (outer.type) {
    case 'unix': {
      if (typeof fields.path !== 'string' || fields.path === '') throw bad("of type 'unix' needs a non-empty 'path'");
      return { type: 'unix', path: fields.path };
    }
    case 'inet': {
      if (typeof fields.host !== 'string' || fields.host === '') throw bad("of type 'inet' needs a non-empty 'host'");
      const port = fields.port === undefined ? NBD_DEFAULT_PORT : Number(fields.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535 || (typeof fields.port === 'string' && !/^\d+$/.test(fields.port))) {
        throw bad(`has an invalid port '${String(fields.port)}'`);
      }
      return { type: 'inet', host: fields.host, port };
    }
    case 'fd':
    case 'vsock':
      throw new LivebackupError('UNSUPPORTED', `Parameter '${parameter}': socket address type '${outer.type}' is not supported`);
    default:
      throw bad(`type must be 'unix' or 'inet', not '${String(outer.type)}'`);
  }
}
