/**
 * A small concrete Job for the job tests: it "copies" `chunks` chunks of
 * `chunkBytes`, calling pausePoint and rateLimit between them, and can fail
 * with a given error at given chunks under an error policy. Hooks let a test
 * act at an exact point of the run, so nothing depends on timing.
 */
import { Job, type JobOptions } from '../../src/job/job.js';
import type { BlockdevOnError } from '../../src/job/error-policy.js';
import type { JobEvent } from '../../src/job/job-events.js';

export interface ChunkJobOptions extends JobOptions {
  chunks: number;
  chunkBytes: number;
  /** Chunk index → how many attempts at it fail before it succeeds (Infinity: always). */
  failures?: Map<number, number>;
  failError?: unknown;
  policy?: BlockdevOnError;
  operation?: 'read' | 'write';
  /** Called after chunk `index` was copied and counted, before the rate limit. */
  afterChunk?: (index: number, job: ChunkJob) => void;
}

export class ChunkJob extends Job {
  /** The order in which commit/abort/clean ran. */
  readonly calls: string[] = [];
  /** Attempts made per chunk. */
  readonly attempts = new Map<number, number>();
  private readonly spec: ChunkJobOptions;

  constructor(spec: ChunkJobOptions) {
    super(spec);
    this.spec = spec;
    this.progressTotal = spec.chunks * spec.chunkBytes;
  }

  protected async run(): Promise<void> {
    const { chunks, chunkBytes } = this.spec;
    for (let index = 0; index < chunks; index++) {
      await this.pausePoint();
      await this.copyChunk(index);
      this.progressCurrent += chunkBytes;
      this.spec.afterChunk?.(index, this);
      await this.rateLimit(chunkBytes);
    }
  }

  private async copyChunk(index: number): Promise<void> {
    for (;;) {
      const attempt = (this.attempts.get(index) ?? 0) + 1;
      this.attempts.set(index, attempt);
      if (attempt > (this.spec.failures?.get(index) ?? 0)) return;
      const error = this.spec.failError;
      if ((await this.handleError(this.spec.policy ?? 'report', this.spec.operation ?? 'write', error)) === 'fail') throw error;
    }
  }

  protected override async commit(): Promise<void> {
    this.calls.push('commit');
  }

  protected override async abort(): Promise<void> {
    this.calls.push('abort');
  }

  protected override async clean(): Promise<void> {
    this.calls.push('clean');
  }
}

/** Records a job's events; `names` gives a compact form: status names for JOB_STATUS_CHANGE, event names otherwise. */
export class EventLog {
  readonly events: JobEvent[] = [];
  private readonly waiters: Array<{ match: (event: JobEvent) => boolean; resolve: (event: JobEvent) => void }> = [];

  readonly listener = (event: JobEvent): void => {
    this.events.push(event);
    for (const waiter of [...this.waiters]) {
      if (waiter.match(event)) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve(event);
      }
    }
  };

  get names(): string[] {
    return this.events.map((event) => (event.event === 'JOB_STATUS_CHANGE' ? event.data.status : event.event));
  }

  /** The first recorded event named `name`. */
  find<Name extends JobEvent['event']>(name: Name): Extract<JobEvent, { event: Name }> | undefined {
    return this.events.find((event) => event.event === name) as Extract<JobEvent, { event: Name }> | undefined;
  }

  /** Resolves at the next event (from now on) whose compact name is `name`. */
  next(name: string): Promise<JobEvent> {
    return new Promise((resolve) => {
      this.waiters.push({
        match: (event) => (event.event === 'JOB_STATUS_CHANGE' ? event.data.status : event.event) === name,
        resolve,
      });
    });
  }
}

/** Let queued callbacks, microtasks and immediates run `rounds` times (no wall-clock waits). */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
