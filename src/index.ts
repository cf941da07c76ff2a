/**
 * The livebackup library API.
 *
 *   import { openNode, openImage } from 'livebackup';
 *   const disk = await openNode({ driver: 'qcow2', 'node-name': 'disk0',
 *                                 file: { driver: 'file', filename: '/x.qcow2' } });
 */
import { defaultGraph, type BlockdevOptions, type BlockGraph } from './block/block-graph.js';
import type { BlockNode } from './block/block-node.js';

export { BlockGraph, defaultGraph, type BlockdevOptions, type GraphOptions } from './block/block-graph.js';
export { BlockNode, type BlockStatus, type WriteIntent, type BeforeWriteNotifier, type DiscardMode } from './block/block-node.js';
export type { BlockDriver, WriteFlags, WriteZeroesFlags, DriverBlockStatus, ChildLink, DriverDescription } from './block/block-driver.js';
export type { BlockDriverFactory, DriverOpenArgs, CreateImageArgs, OptionSpec } from './block/driver-factory.js';
export { registerDriver, driverNames } from './block/driver-registry.js';
export { openImage, createImage, probeFormat, type OpenImageOptions } from './block/image-file.js';
export { LivebackupError, type ErrorCode } from './errors.js';

/**
 * Open a block node from a QMP `blockdev-add` options object, in `graph`
 * (the process-wide default graph when omitted).
 */
export function openNode(options: BlockdevOptions, graph: BlockGraph = defaultGraph): Promise<BlockNode> {
  return graph.open(options);
}

export { startBackup, checkBackupRequest, type StartBackupOptions } from './backup/start-backup.js';
export { BackupJob, type BackupJobOptions, type BackupSyncMode } from './backup/backup-job.js';
export { Job, type JobOptions, type JobResult, type JobStatus, type JobVerb, type JobEvent, type BlockdevOnError } from './job/job.js';
export { JobRegistry } from './job/job-registry.js';
export { RateLimit } from './job/rate-limit.js';
export { HBitmap } from './bitmap/hbitmap.js';
export { StorageDaemon, type StorageDaemonOptions } from './daemon/storage-daemon.js';
export { NbdServer, type NbdServerOptions, type NbdListenAddress, type ExportRemoveMode } from './nbd/server.js';
export { NbdClient } from './nbd/client.js';
export { parseNbdUri, formatNbdUri } from './nbd/uri.js';
