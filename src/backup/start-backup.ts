/**
 * startBackup: the library entry point of the backup engine. It checks the
 * request the way QEMU's blockdev-backup does, creates the job (attaching
 * copy-before-write: that instant is the point in time), registers it, and
 * starts it.
 */
import type { BlockNode } from '../block/block-node.js';
import { LivebackupError } from '../errors.js';
import type { JobRegistry } from '../job/job-registry.js';
import { BackupJob, type BackupJobOptions } from './backup-job.js';

export interface StartBackupOptions extends Omit<BackupJobOptions, 'id' | 'type'> {
  /** Job id; defaults to the source's node-name, as QEMU does. */
  readonly jobId?: string;
  /** Registry to add the job to (ids must be unique there). */
  readonly registry?: JobRegistry;
  /** Leave the job in 'created' instead of starting it (transactions start jobs together). */
  readonly deferStart?: boolean;
}

/** Refusals shared by every way of starting a backup; throws LivebackupError. */
export function checkBackupRequest(source: BlockNode, target: BlockNode): void {
  if (source === target) throw new LivebackupError('INVALID_ARGUMENT', 'Source and target cannot be the same');
  if (source.length !== target.length) {
    throw new LivebackupError('INVALID_ARGUMENT', 'Source and target image have different sizes');
  }
  for (const node of [source, target]) {
    const reason = node.busyReason;
    if (reason !== undefined) throw new LivebackupError('BUSY', `Node '${node.nodeName}' is busy: ${reason}`);
  }
  if (target.readOnly) {
    throw new LivebackupError('READ_ONLY', `Target node '${target.nodeName}' is read-only`);
  }
}

/** Check, create, register and (unless deferStart) start a backup job. */
export function startBackup(options: StartBackupOptions): BackupJob {
  checkBackupRequest(options.source, options.target);
  const id = options.jobId ?? options.source.nodeName;
  if (options.registry?.get(id)) {
    throw new LivebackupError('ALREADY_EXISTS', `Job ID '${id}' already in use`);
  }
  const job = new BackupJob({ ...options, id, type: 'backup' });
  options.registry?.add(job);
  if (!options.deferStart) job.start();
  return job;
}
