/**
 * The daemon's exports (QEMU's block export list) and the one NBD server
 * they live on: nbd-server-start/stop, block-export-add/del and the
 * legacy nbd-server-add/remove all go through this table, so ids, export
 * names and BLOCK_EXPORT_DELETED events stay consistent.
 *
 * An export does not block its node: a node may be exported and backed up
 * at the same time (writes through the export meet copy-before-write on
 * the same BlockNode). It does keep the node from being deleted.
 */
import type { BlockNode } from '../block/block-node.js';
import { LivebackupError } from '../errors.js';
import { NbdServer, type NbdBoundAddress, type NbdListenAddress } from '../nbd/server.js';

/** One export, as query-block-exports reports it. Fields never change. */
export interface BlockExportEntry {
  /** The export id (block-export-add `id`; nbd-server-add uses the export name). */
  readonly id: string;
  /** The NBD export name clients ask for. */
  readonly name: string;
  readonly node: BlockNode;
  readonly writable: boolean;
}

export interface AddExportOptions {
  readonly id: string;
  readonly node: BlockNode;
  /** Export name; defaults to the node-name, as in QEMU. */
  readonly name?: string;
  readonly writable?: boolean;
  readonly description?: string;
}

export interface NbdServerStartOptions {
  /** Clients connected at once; 0 or absent means no limit. */
  readonly maxConnections?: number;
}

const notRunning = (): LivebackupError => new LivebackupError('INVALID_STATE', 'NBD server not running');

export class BlockExportTable {
  private server: NbdServer | undefined;
  private readonly entries = new Map<string, BlockExportEntry>();

  /** `onDeleted(id)` is called once for every export that goes away (the BLOCK_EXPORT_DELETED event). */
  constructor(private readonly onDeleted: (id: string) => void) {}

  /** True between a successful startServer and stopServer. */
  get serverRunning(): boolean {
    return this.server !== undefined;
  }

  /**
   * Start the NBD server on `address` (QEMU's nbd-server-start). Refused
   * with "NBD server already running"; IO_ERROR when the address is taken;
   * INVALID_STATE when stopServer()/close() came before it was listening.
   */
  async startServer(address: NbdListenAddress, options: NbdServerStartOptions = {}): Promise<NbdBoundAddress> {
    if (this.server) throw new LivebackupError('INVALID_STATE', 'NBD server already running');
    const maxConnections = options.maxConnections ? options.maxConnections : undefined;
    const server = new NbdServer({ maxConnections });
    this.server = server;
    try {
      return await server.listen(address);
    } catch (error) {
      // A stop (shutdown) during the start may already have dropped this server, or another start replaced it.
      if (this.server === server) this.server = undefined;
      await server.close();
      throw error;
    }
  }

  /** Delete every export (with its event), then stop the server. Refused with "NBD server not running". */
  async stopServer(): Promise<void> {
    const server = this.server;
    if (!server) throw notRunning();
    for (const entry of this.list()) await this.remove(entry.id, 'hard');
    this.server = undefined;
    await server.close();
  }

  /**
   * Serve `node` (QEMU's block-export-add type=nbd). Refused when no server
   * runs, when the id is taken, and as NbdServer.addExport refuses (name
   * taken, writable export of a read-only node).
   */
  add(options: AddExportOptions): BlockExportEntry {
    if (!this.server) throw notRunning();
    if (this.entries.has(options.id)) throw new LivebackupError('ALREADY_EXISTS', `Block export id '${options.id}' is already in use`);
    const exported = this.server.addExport({
      name: options.name ?? options.node.nodeName,
      node: options.node,
      writable: options.writable ?? false,
      description: options.description,
    });
    const entry: BlockExportEntry = { id: options.id, name: exported.name, node: options.node, writable: exported.writable };
    this.entries.set(entry.id, entry);
    return entry;
  }

  /**
   * Delete the export `id` (block-export-del). Mode 'safe' refuses while
   * clients are connected ("export 'ID' still in use"); 'hard' disconnects
   * them. NOT_FOUND "Export 'ID' is not found".
   */
  async remove(id: string, mode: 'safe' | 'hard' = 'safe'): Promise<void> {
    const entry = this.entries.get(id);
    if (!entry || !this.server) throw new LivebackupError('NOT_FOUND', `Export '${id}' is not found`);
    if (mode === 'safe' && this.server.clientsOf(entry.name) > 0) {
      throw new LivebackupError('BUSY', `export '${id}' still in use`);
    }
    await this.server.removeExport(entry.name, 'hard');
    this.entries.delete(id);
    this.onDeleted(id);
  }

  /** True when some export serves `node`. */
  isExported(node: BlockNode): boolean {
    return this.list().some((entry) => entry.node === node);
  }

  /** All exports, newest first (QEMU's query-block-exports order). */
  list(): BlockExportEntry[] {
    return [...this.entries.values()].reverse();
  }

  /** Shutdown: delete every export (with events) and stop the server, if running. */
  async close(): Promise<void> {
    if (this.server) await this.stopServer();
  }
}
