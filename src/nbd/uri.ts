/**
 * NBD URIs (nbd-uri.md): `nbd://HOST[:PORT]/EXPORT` for TCP and
 * `nbd+unix:///EXPORT?socket=PATH` for unix sockets. The export name is the
 * percent-decoded path without its leading '/'. TLS schemes (nbds,
 * nbds+unix) are refused: livebackup's client has no TLS.
 */
import { LivebackupError } from '../errors.js';

/** Default NBD TCP port (IANA). */
export const NBD_DEFAULT_PORT = 10809;

/** Where an NBD server listens. */
export type NbdAddress = { readonly type: 'unix'; readonly path: string } | { readonly type: 'inet'; readonly host: string; readonly port: number };

export interface NbdUri {
  readonly address: NbdAddress;
  readonly exportName: string;
}

/** Parse an NBD URI; INVALID_ARGUMENT naming what is wrong. */
export function parseNbdUri(text: string): NbdUri {
  const bad = (why: string) => new LivebackupError('INVALID_ARGUMENT', `Invalid NBD URI '${text}': ${why}`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw bad('not a URI');
  }
  const scheme = url.protocol.slice(0, -1);
  if (scheme === 'nbds' || scheme === 'nbds+unix') throw bad('TLS (nbds) is not supported');
  if (scheme !== 'nbd' && scheme !== 'nbd+unix') throw bad(`unknown scheme '${scheme}' (expected nbd or nbd+unix)`);
  let exportName: string;
  try {
    exportName = decodeURIComponent(url.pathname.startsWith('/') ? url.pathname.slice(1) : url.pathname);
  } catch {
    throw bad('bad percent-encoding in the export name');
  }
  const known = scheme === 'nbd+unix' ? ['socket'] : [];
  for (const key of url.searchParams.keys()) {
    if (!known.includes(key) && !key.startsWith('x-')) throw bad(`unknown query parameter '${key}'`);
  }
  if (scheme === 'nbd+unix') {
    if (url.host !== '') throw bad('a unix socket URI must not have a host');
    const path = url.searchParams.get('socket');
    if (!path) throw bad("missing 'socket' query parameter");
    return { address: { type: 'unix', path }, exportName };
  }
  if (url.hostname === '') throw bad('missing host');
  const host = url.hostname.startsWith('[') && url.hostname.endsWith(']') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? NBD_DEFAULT_PORT : Number(url.port);
  return { address: { type: 'inet', host, port }, exportName };
}

/** Format an address and export name as an NBD URI (the inverse of parseNbdUri). */
export function formatNbdUri(address: NbdAddress, exportName: string): string {
  const path = encodeURIComponent(exportName).replace(/%2F/gi, '/');
  if (address.type === 'unix') return `nbd+unix:///${path}?socket=${encodeURIComponent(address.path).replace(/%2F/gi, '/')}`;
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `nbd://${host}:${address.port}/${path}`;
}
