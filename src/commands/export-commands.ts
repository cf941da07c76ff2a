/**
 * The export commands of QEMU 7.2 (block-export.json): nbd-server-start,
 * nbd-server-stop, nbd-server-add, nbd-server-remove, block-export-add
 * (type nbd), block-export-del and query-block-exports, plus the option
 * types of `--nbd-server` and `--export`.
 */
import { LivebackupError } from '../errors.js';
import type { NbdListenAddress } from '../nbd/server.js';
import { socketAddressFromQapi } from '../nbd/qapi-socket-address.js';
import { bool, enumType, list, str, struct, uint32, union } from '../qmp/schema.js';
import { SocketAddress, SocketAddressLegacy } from './block-core-schema.js';
import type { CommandRegistrar, CommandServices } from './command-services.js';

const BlockExportRemoveMode = enumType('BlockExportRemoveMode', ['safe', 'hard']);

/** QAPI NbdServerOptions: the `--nbd-server` option. */
export const NbdServerOptions = struct('NbdServerOptions', {
  addr: SocketAddress,
  '*tls-creds': str,
  '*tls-authz': str,
  '*max-connections': uint32,
});

/** QAPI BlockExportOptions: block-export-add and the `--export` option. */
export const BlockExportOptions = union('BlockExportOptions', {
  base: {
    type: enumType('BlockExportType', ['nbd', 'vhost-user-blk', 'fuse', 'vduse-blk']),
    id: str,
    '*fixed-iothread': bool,
    '*iothread': str,
    'node-name': str,
    '*writable': bool,
    '*writethrough': bool,
  },
  discriminator: 'type',
  branches: {
    nbd: { '*name': str, '*description': str, '*bitmaps': list(str), '*allocation-depth': bool },
  },
});

/**
 * A QAPI SocketAddress (flat or legacy) to listen on. An empty TCP host
 * means 127.0.0.1: listeners are loopback-only unless a host is named.
 */
export function listenAddress(address: Record<string, unknown>): NbdListenAddress {
  const fields = (typeof address.data === 'object' && address.data !== null ? address.data : address) as Record<string, unknown>;
  if (address.type === 'inet' && fields.host === '') return socketAddressFromQapi({ ...fields, type: 'inet', host: '127.0.0.1' });
  return socketAddressFromQapi(address);
}

export interface NbdServerArgs {
  addr: Record<string, unknown>;
  'tls-creds'?: string;
  'tls-authz'?: string;
  'max-connections'?: number;
}

/** Start the NBD server from NbdServerOptions (--nbd-server; nbd-server-start after unwrapping `addr`). */
export async function startNbdServer(services: CommandServices, args: NbdServerArgs): Promise<void> {
  if (args['tls-creds'] !== undefined || args['tls-authz'] !== undefined) throw new LivebackupError('UNSUPPORTED', 'NBD over TLS is not supported');
  await services.exports.startServer(listenAddress(args.addr), { maxConnections: args['max-connections'] });
}

export interface BlockExportArgs {
  type: string;
  id: string;
  'node-name': string;
  writable?: boolean;
  writethrough?: boolean;
  iothread?: string;
  'fixed-iothread'?: boolean;
  name?: string;
  description?: string;
  bitmaps?: string[];
  'allocation-depth'?: boolean;
}

/** Add an export from BlockExportOptions (block-export-add, --export). */
export function addBlockExport(services: CommandServices, args: BlockExportArgs): void {
  if (args.type !== 'nbd') throw new LivebackupError('UNSUPPORTED', `Export type '${args.type}' is not supported (only 'nbd')`);
  if (args.bitmaps !== undefined && args.bitmaps.length > 0) throw new LivebackupError('UNSUPPORTED', 'Exporting dirty bitmaps is not supported yet');
  if (!services.exports.serverRunning) throw new LivebackupError('INVALID_STATE', 'NBD server not running');
  const node = services.graph.get(args['node-name']);
  if (!node) throw new LivebackupError('NOT_FOUND', `Cannot find device='' nor node-name='${args['node-name']}'`);
  services.exports.add({ id: args.id, node, name: args.name, writable: args.writable, description: args.description });
}

/** Register this family's commands on `server`, bound to `services`. */
export function registerExportCommands(server: CommandRegistrar, services: CommandServices): void {
  server.registerCommand({
    name: 'nbd-server-start',
    args: struct('q_obj_nbd-server-start-arg', { addr: SocketAddressLegacy, '*tls-creds': str, '*tls-authz': str, '*max-connections': uint32 }),
    handler: (args) => startNbdServer(services, args as NbdServerArgs),
  });
  server.registerCommand({ name: 'nbd-server-stop', handler: () => services.exports.stopServer() });
  server.registerCommand({
    name: 'nbd-server-add',
    args: struct('NbdServerAddOptions', { '*name': str, '*description': str, device: str, '*writable': bool, '*bitmap': str }),
    handler: (args) => {
      if (!services.exports.serverRunning) throw new LivebackupError('INVALID_STATE', 'NBD server not running');
      services.graph.require(args.device);
      const name = args.name ?? args.device;
      addBlockExport(services, {
        type: 'nbd',
        id: name,
        'node-name': args.device,
        name,
        description: args.description,
        writable: args.writable,
        bitmaps: args.bitmap === undefined ? undefined : [args.bitmap],
      });
    },
  });
  server.registerCommand({
    name: 'nbd-server-remove',
    args: struct('q_obj_nbd-server-remove-arg', { name: str, '*mode': BlockExportRemoveMode }),
    // QEMU looks the export up by id: nbd-server-add uses the export name as the id.
    handler: (args) => services.exports.remove(args.name, args.mode),
  });
  server.registerCommand({
    name: 'block-export-add',
    args: BlockExportOptions,
    handler: (args) => addBlockExport(services, args as BlockExportArgs),
  });
  server.registerCommand({
    name: 'block-export-del',
    args: struct('q_obj_block-export-del-arg', { id: str, '*mode': BlockExportRemoveMode }),
    handler: (args) => services.exports.remove(args.id, args.mode),
  });
  server.registerCommand({
    name: 'query-block-exports',
    handler: () => services.exports.list().map((entry) => ({ type: 'nbd', id: entry.id, 'node-name': entry.node.nodeName, 'shutting-down': false })),
  });
}
