/**
 * JobRegistry: the set of jobs a daemon or library user knows by ID (QEMU's
 * global job list). IDs are unique among registered jobs; a job leaves the
 * registry by itself when it reaches 'null' (dismissed).
 */
import { LivebackupError } from '../errors.js';
import type { Job } from './job.js';
import type { JobEventListener } from './job-events.js';

export class JobRegistry {
  /** Registered jobs with the unsubscribe function of the registry's own listener. */
  private readonly jobs = new Map<string, { job: Job; unsubscribe: () => void }>();
  private readonly listeners = new Set<JobEventListener>();

  /**
   * Register `job`. Throws ALREADY_EXISTS "Job ID 'x' already in use" when
   * the ID is taken, INVALID_STATE for a job already dismissed. Registry
   * listeners receive the job's events from now on; a job still in
   * 'created' is announced to them with its JOB_STATUS_CHANGE 'created',
   * so they see the whole sequence.
   */
  add(job: Job): void {
    if (this.jobs.has(job.id)) {
      throw new LivebackupError('ALREADY_EXISTS', `Job ID '${job.id}' already in use`);
    }
    if (job.status === 'null') {
      throw new LivebackupError('INVALID_STATE', `Job '${job.id}' has already been dismissed`);
    }
    const unsubscribe = job.onEvent((event) => {
      this.deliver(event);
      if (event.event === 'JOB_STATUS_CHANGE' && event.data.status === 'null') this.forget(job);
    });
    this.jobs.set(job.id, { job, unsubscribe });
    if (job.status === 'created') this.deliver({ event: 'JOB_STATUS_CHANGE', data: { id: job.id, status: 'created' } });
  }

  /** The job with this ID, if registered. */
  get(id: string): Job | undefined {
    return this.jobs.get(id)?.job;
  }

  /** The job with this ID; throws NOT_FOUND "Job not found" (the job-* commands' error). */
  require(id: string): Job {
    const job = this.get(id);
    if (!job) throw new LivebackupError('NOT_FOUND', 'Job not found');
    return job;
  }

  /** The job with this ID; throws NOT_FOUND "Block job 'x' not found" (the block-job-* commands' error). */
  requireBlockJob(id: string): Job {
    const job = this.get(id);
    if (!job) throw new LivebackupError('NOT_FOUND', `Block job '${id}' not found`);
    return job;
  }

  /** Registered jobs, newest first (QEMU's query-jobs order). */
  list(): Job[] {
    return [...this.jobs.values()].map((entry) => entry.job).reverse();
  }

  /** Subscribe to the events of every registered job; returns the unsubscribe function. */
  onEvent(listener: JobEventListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  private forget(job: Job): void {
    const entry = this.jobs.get(job.id);
    if (entry?.job !== job) return;
    entry.unsubscribe();
    this.jobs.delete(job.id);
  }

  private deliver(event: Parameters<JobEventListener>[0]): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch (error) {
        process.emitWarning(`JobRegistry: an event listener threw on ${event.event}: ${error instanceof Error ? error.message : String(error)}`, 'LivebackupJobWarning');
      }
    }
  }
}
