/**
 * blockdev-backup and drive-backup: check a request the way QEMU 7.2 does,
 * create the job (copy-before-write attaches at that instant: the point in
 * time) without starting it, and start it. `transaction` uses the same
 * prepare step so that all jobs of a transaction start or none does.
 */
import { access, realpath } from 'node:fs/promises';
import type { BlockNode } from '../block/block-node.js';
import { findDriver } from '../block/driver-registry.js';
import { createImage, probeFormat } from '../block/image-file.js';
import { startBackup } from '../backup/start-backup.js';
import type { BackupJob, BackupSyncMode } from '../backup/backup-job.js';
import { LivebackupError } from '../errors.js';
import { BlockdevBackup, DriveBackup, type BackupCommonArgs, type BlockdevBackupArgs, type DriveBackupArgs } from './backup-schema.js';
import { nodeFilename } from './block-device-info.js';
import type { CommandRegistrar, CommandServices } from './command-services.js';

/** A created, not yet started backup job and how to take it back. */
export interface PreparedBackup {
  readonly job: BackupJob;
  /** Cancel the unstarted job (its events say created, aborting, concluded, null) and drop what was created for it. */
  undo(): Promise<void>;
}

const MIN_BACKUP_CLUSTER = 64 * 1024;
const INT32_MAX = 2 ** 31 - 1;

const invalid = (message: string): LivebackupError => new LivebackupError('INVALID_ARGUMENT', message);
const unsupported = (message: string): LivebackupError => new LivebackupError('UNSUPPORTED', message);

/** Refuse what the backup engine does not implement, with QEMU's text where QEMU refuses too. */
function checkEngineSupport(args: BackupCommonArgs): void {
  if (args.sync === 'incremental' && args.bitmap === undefined) throw invalid("must provide a valid bitmap name for 'incremental' sync mode");
  if (args.sync === 'bitmap' && args.bitmap === undefined) throw invalid("must provide a valid bitmap name for 'bitmap' sync mode");
  if (args.bitmap !== undefined) throw unsupported(`Backup with a dirty bitmap ('${args.bitmap}') is not supported yet`);
  if (args['bitmap-mode'] !== undefined) throw invalid('Cannot specify bitmap sync mode without a bitmap');
  if (args.sync === 'incremental' || args.sync === 'bitmap') throw unsupported(`Sync mode '${args.sync}' is not supported yet`);
  if (args.compress === true) throw unsupported('Compressed backup is not supported yet');
}

/** x-perf as BackupJob options, checked as QEMU checks them. */
function perfOptions(args: BackupCommonArgs, target: BlockNode): { maxWorkers?: number; maxChunk?: number } {
  const perf = args['x-perf'] ?? {};
  const maxWorkers = perf['max-workers'];
  const maxChunk = perf['max-chunk'];
  if (maxWorkers !== undefined && (maxWorkers < 1 || maxWorkers > INT32_MAX)) throw invalid(`max-workers must be between 1 and ${INT32_MAX}`);
  if (maxChunk !== undefined && maxChunk < 0) throw invalid('max-chunk must be zero (which means no limit) or positive');
  const clusterSize = Math.max(MIN_BACKUP_CLUSTER, target.driver.clusterSize ?? 0);
  if (maxChunk !== undefined && maxChunk !== 0 && maxChunk < clusterSize) {
    throw invalid(`Required max-chunk (${maxChunk}) is less than backup cluster size (${clusterSize})`);
  }
  return { maxWorkers, maxChunk };
}

/** Create the job (deferred start) with every BackupCommon member the engine implements. */
function createJob(services: CommandServices, args: BackupCommonArgs, source: BlockNode, target: BlockNode, sync: BackupSyncMode, targetZeroInitialized: boolean): BackupJob {
  return startBackup({
    source,
    target,
    sync,
    // QEMU has no default job id for nodes added with blockdev-add: the id is ''.
    jobId: args['job-id'] ?? '',
    registry: services.jobs,
    deferStart: true,
    drainedStart: true,
    speed: args.speed,
    onSourceError: args['on-source-error'],
    onTargetError: args['on-target-error'],
    autoFinalize: args['auto-finalize'],
    autoDismiss: args['auto-dismiss'],
    targetZeroInitialized,
    ...perfOptions(args, target),
  });
}

async function cancelUnstarted(job: BackupJob): Promise<void> {
  job.cancel();
  await job.done;
}

/** blockdev-backup's checks and job creation (target is an existing node). */
export function prepareBlockdevBackup(services: CommandServices, args: BlockdevBackupArgs): PreparedBackup {
  const source = services.graph.require(args.device);
  const target = services.graph.require(args.target);
  checkEngineSupport(args);
  const job = createJob(services, args, source, target, args.sync as BackupSyncMode, false);
  return { job, undo: () => cancelUnstarted(job) };
}

/** The backing file a new drive-backup target gets: the source for sync=none, its backing for sync=top. */
function targetBacking(source: BlockNode, sync: BackupSyncMode): BlockNode | undefined {
  if (sync === 'none') return source;
  if (sync === 'top') return source.backing;
  return undefined;
}

/** Refuse a target path that is already open as a node (writing it twice would corrupt it). */
async function checkTargetNotOpen(services: CommandServices, path: string): Promise<void> {
  const wanted = await realpath(path).catch(() => path);
  for (const node of services.graph.list()) {
    const filename = node.options.filename;
    if (typeof filename !== 'string') continue;
    if ((await realpath(filename).catch(() => filename)) === wanted) {
      throw new LivebackupError('BUSY', `Target '${path}' is already open as node '${node.nodeName}'`);
    }
  }
}

/**
 * drive-backup's checks, target creation (mode absolute-paths: for
 * sync=top with the source's backing file, for sync=none with the source
 * as backing) and job creation. The target node is closed when the job ends.
 */
export async function prepareDriveBackup(services: CommandServices, args: DriveBackupArgs): Promise<PreparedBackup> {
  const source = services.graph.require(args.device);
  checkEngineSupport(args);
  const mode = args.mode ?? 'absolute-paths';
  // QEMU turns sync=top without a backing file into sync=full.
  const sync: BackupSyncMode = args.sync === 'top' && !source.backing ? 'full' : (args.sync as BackupSyncMode);
  await checkTargetNotOpen(services, args.target);
  let format = args.format;
  const backing = targetBacking(source, sync);
  if (mode === 'absolute-paths') {
    format ??= source.driver.driverName;
    const factory = findDriver(format);
    if (!factory?.create) throw invalid(`Format driver '${format}' does not support image creation`);
    const formatOptions: Record<string, string> = {};
    if (backing) {
      if (!factory.childRoles.includes('backing')) throw invalid(`Format '${format}' cannot have a backing file (needed for sync=${sync})`);
      formatOptions.backing_file = await nodeFilename(backing);
      formatOptions.backing_fmt = backing.driver.driverName;
    }
    await createImage(args.target, format, source.length, formatOptions);
  } else {
    if (!(await access(args.target).then(() => true, () => false))) throw new LivebackupError('NOT_FOUND', `Could not open '${args.target}': No such file or directory`);
    format ??= await probeFormat(args.target);
  }
  const targetOptions: Record<string, unknown> = { driver: format, file: { driver: 'file', filename: args.target } };
  if (findDriver(format)?.childRoles.includes('backing')) targetOptions.backing = backing ? backing.nodeName : null;
  const target = await services.graph.open(targetOptions);
  const closeTarget = () => services.graph.remove(target.nodeName).catch(() => undefined);
  let job: BackupJob;
  try {
    job = createJob(services, args, source, target, sync, mode === 'absolute-paths' && !backing);
  } catch (error) {
    await closeTarget();
    throw error;
  }
  void job.done.then(closeTarget);
  return {
    job,
    undo: async () => {
      await cancelUnstarted(job);
      await closeTarget();
    },
  };
}

/** Register this family's commands on `server`, bound to `services`. */
export function registerBackupCommands(server: CommandRegistrar, services: CommandServices): void {
  server.registerCommand({
    name: 'blockdev-backup',
    args: BlockdevBackup,
    handler: (args) => {
      prepareBlockdevBackup(services, args).job.start();
    },
  });
  server.registerCommand({
    name: 'drive-backup',
    args: DriveBackup,
    handler: async (args) => {
      (await prepareDriveBackup(services, args)).job.start();
    },
  });
}
