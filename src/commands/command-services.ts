/**
 * What QMP command handlers work on: the daemon's block graph, its jobs,
 * its exports, and the event broadcast. The StorageDaemon provides it; the
 * command files never see sockets or processes.
 */
import type { BlockGraph } from '../block/block-graph.js';
import type { JobRegistry } from '../job/job-registry.js';
import type { BlockExportTable } from './block-export-table.js';
import type { QmpServer } from '../qmp/server.js';

export interface CommandServices {
  /** Every open block node, by node-name. */
  readonly graph: BlockGraph;
  /** Every job not yet dismissed, by job id. */
  readonly jobs: JobRegistry;
  /** The NBD server and the exports on it. */
  readonly exports: BlockExportTable;
  /** Send an event to every negotiated QMP client; `data` is left out when undefined. */
  emitEvent(event: string, data?: Record<string, unknown>): void;
}

/** Where command families register their commands (a QmpServer). */
export type CommandRegistrar = Pick<QmpServer, 'registerCommand'>;
