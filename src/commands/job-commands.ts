/**
 * The job commands of QEMU 7.2: query-block-jobs, query-jobs, the
 * block-job-* verbs (device = job id; an unknown id is DeviceNotActive
 * "Block job 'x' not found") and the job-* verbs (GenericError "Job not
 * found"). Verb refusals come from Job with QEMU's texts.
 */
import type { Job } from '../job/job.js';
import type { ErrorClassMap } from '../qmp/qmp-error.js';
import { bool, int, str, struct } from '../qmp/schema.js';
import type { CommandRegistrar, CommandServices } from './command-services.js';

const BLOCK_JOB_ERRORS: ErrorClassMap = { NOT_FOUND: 'DeviceNotActive' };

/** Register this family's commands on `server`, bound to `services`. */
export function registerJobCommands(server: CommandRegistrar, services: CommandServices): void {
  const blockJob = (id: string): Job => services.jobs.requireBlockJob(id);
  const job = (id: string): Job => services.jobs.require(id);

  /** A block-job-* verb naming the job by `device` (or by `id` for dismiss and finalize). */
  const blockJobVerb = (name: string, key: 'device' | 'id', verb: (target: Job) => void): void =>
    server.registerCommand({
      name,
      args: struct(`q_obj_${name}-arg`, { [key]: str }),
      errorClasses: BLOCK_JOB_ERRORS,
      handler: (args) => verb(blockJob((args as Record<string, string>)[key]!)),
    });
  /** A job-* verb. */
  const jobVerb = (name: string, verb: (target: Job) => void): void =>
    server.registerCommand({
      name,
      args: struct(`q_obj_${name}-arg`, { id: str }),
      handler: (args) => verb(job(args.id)),
    });

  server.registerCommand({ name: 'query-block-jobs', handler: () => services.jobs.list().map((entry) => entry.info()) });
  server.registerCommand({ name: 'query-jobs', handler: () => services.jobs.list().map((entry) => entry.jobInfo()) });
  server.registerCommand({
    name: 'block-job-cancel',
    args: struct('q_obj_block-job-cancel-arg', { device: str, '*force': bool }),
    errorClasses: BLOCK_JOB_ERRORS,
    handler: (args) => blockJob(args.device).cancel(args.force ?? false),
  });
  blockJobVerb('block-job-pause', 'device', (target) => target.pause());
  blockJobVerb('block-job-resume', 'device', (target) => target.resume());
  server.registerCommand({
    name: 'block-job-set-speed',
    args: struct('q_obj_block-job-set-speed-arg', { device: str, speed: int }),
    errorClasses: BLOCK_JOB_ERRORS,
    handler: (args) => blockJob(args.device).setSpeed(args.speed),
  });
  blockJobVerb('block-job-complete', 'device', (target) => target.complete());
  blockJobVerb('block-job-dismiss', 'id', (target) => target.dismiss());
  blockJobVerb('block-job-finalize', 'id', (target) => target.finalize());
  jobVerb('job-cancel', (target) => target.cancel());
  jobVerb('job-pause', (target) => target.pause());
  jobVerb('job-resume', (target) => target.resume());
  jobVerb('job-complete', (target) => target.complete());
  jobVerb('job-dismiss', (target) => target.dismiss());
  jobVerb('job-finalize', (target) => target.finalize());
}
