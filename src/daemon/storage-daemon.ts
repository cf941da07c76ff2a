/**
 * StorageDaemon: the object behind `livebackup daemon` (QEMU's
 * qemu-storage-daemon). It owns a block graph, a job registry, the export
 * table with its NBD server, and a QMP server on which every command is
 * registered. Job events and BLOCK_EXPORT_DELETED reach every QMP client.
 *
 *   const daemon = new StorageDaemon();
 *   await daemon.addBlockdev({ driver: 'qcow2', 'node-name': 'disk', file: { driver: 'file', filename: '/d.qcow2' } });
 *   await daemon.qmp.listenUnix('/run/lb.sock');
 *   await daemon.closed;   // after `quit` or shutdown()
 *
 * Shutdown (quit, SIGTERM) follows qemu-storage-daemon 7.2: exports are
 * deleted (BLOCK_EXPORT_DELETED), running jobs are cancelled and their
 * events sent, then every image is flushed and closed (qcow2 marks itself
 * clean), the NBD and QMP listeners are closed (their unix socket files
 * removed) and the QMP clients are disconnected. Like qsd, no SHUTDOWN
 * event is sent. Startup options and QMP commands pass a ShutdownGate:
 * shutdown first waits for those already running (so a listener or node
 * they are creating is closed too) and refuses new ones.
 */
import { BlockGraph } from '../block/block-graph.js';
import type { BlockNode } from '../block/block-node.js';
import { JobRegistry } from '../job/job-registry.js';
import { QmpServer } from '../qmp/server.js';
import type { QmpLogger } from '../qmp/trace.js';
import { addBlockdev } from '../commands/block-commands.js';
import { BlockExportTable } from '../commands/block-export-table.js';
import type { CommandServices } from '../commands/command-services.js';
import { addBlockExport, startNbdServer, type BlockExportArgs, type NbdServerArgs } from '../commands/export-commands.js';
import { registerDaemonCommands } from '../commands/register-commands.js';
import type { QmpCommand } from '../qmp/command-table.js';
import type { ObjectType } from '../qmp/schema.js';
import { ShutdownGate } from './shutdown-gate.js';

export interface StorageDaemonOptions {
  /** Where QMP connection changes and unexpected failures go (a pino logger fits). */
  readonly logger?: QmpLogger;
  /**
   * When false, no image may open a backing file named inside it: clients
   * must give `backing` explicitly (a node-name, nested options or null).
   * Protects the host from untrusted images naming arbitrary files. Default true, as QEMU.
   */
  readonly allowBackingFromImage?: boolean;
}

export class StorageDaemon implements CommandServices {
  readonly graph: BlockGraph;
  readonly jobs = new JobRegistry();
  readonly exports: BlockExportTable;
  readonly qmp: QmpServer;
  /** Resolves once shutdown() has finished. */
  readonly closed: Promise<void>;
  private readonly gate = new ShutdownGate();
  private resolveClosed!: () => void;
  private readonly unsubscribeJobs: () => void;

  constructor(options: StorageDaemonOptions = {}) {
    this.graph = new BlockGraph({ allowBackingFromImage: options.allowBackingFromImage ?? true });
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.qmp = new QmpServer({ onQuit: () => void this.shutdown(), logger: options.logger });
    this.exports = new BlockExportTable((id) => this.emitEvent('BLOCK_EXPORT_DELETED', { id }));
    this.unsubscribeJobs = this.jobs.onEvent((event) => this.emitEvent(event.event, event.data));
    // Every daemon command runs through the gate; the built-ins (quit among them) do not.
    registerDaemonCommands(
      {
        registerCommand: <S extends ObjectType>(command: QmpCommand<S>) =>
          this.qmp.registerCommand<S>({ ...command, handler: (args, context) => this.gate.run(() => command.handler(args, context)) }),
      },
      this,
    );
  }

  /** Broadcast a QMP event to every negotiated client. */
  emitEvent(event: string, data?: Record<string, unknown>): void {
    this.qmp.emitEvent(event, data);
  }

  /** Open a node from schema-checked BlockdevOptions (--blockdev). INVALID_STATE once shutting down. */
  addBlockdev(options: Record<string, unknown>): Promise<BlockNode> {
    return this.gate.run(() => addBlockdev(this.graph, options));
  }

  /** Start the NBD server from NbdServerOptions (--nbd-server). INVALID_STATE once shutting down. */
  startNbdServer(options: NbdServerArgs): Promise<void> {
    return this.gate.run(() => startNbdServer(this, options));
  }

  /** Add an export from BlockExportOptions (--export). INVALID_STATE once shutting down. */
  addExport(options: BlockExportArgs): Promise<void> {
    return this.gate.run(() => addBlockExport(this, options));
  }

  /** True once shutdown() was called. */
  get shuttingDown(): boolean {
    return this.gate.isClosing;
  }

  /**
   * Stop everything, in qemu-storage-daemon's order: exports (with
   * BLOCK_EXPORT_DELETED) and the NBD server, jobs (cancelled, their
   * events sent), images (flushed and closed), QMP. Startup options and
   * commands still running finish first. Idempotent; resolves when done.
   */
  async shutdown(): Promise<void> {
    if (this.gate.isClosing) return this.closed;
    try {
      await this.gate.close();
      await this.exports.close().catch((error) => this.qmp.logger?.warn({ err: error }, 'closing exports failed'));
      const jobs = this.jobs.list();
      for (const job of jobs) {
        try {
          job.cancel(true);
        } catch {
          // Already concluded or finishing: it ends by itself.
        }
      }
      await Promise.all(jobs.map((job) => job.done));
      await this.graph.closeAll().catch((error) => this.qmp.logger?.warn({ err: error }, 'closing block nodes failed'));
      this.unsubscribeJobs();
      await this.qmp.close();
    } finally {
      this.resolveClosed();
    }
    return this.closed;
  }
}
