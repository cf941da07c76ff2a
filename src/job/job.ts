/**
 * Job: the generic long-running operation of QEMU 7.2 (job.c + blockjob.c),
 * for subclasses such as BackupJob to fill in.
 *
 * The base class owns the lifecycle: the status and its transition table,
 * the verbs (cancel, pause, resume, set-speed, complete, finalize, dismiss),
 * the events (JOB_STATUS_CHANGE and BLOCK_JOB_*, shaped as QEMU emits them),
 * pause and cancel points, the rate limit and the error policies. The
 * subclass supplies run() (the work) and optionally commit/abort/clean.
 *
 * Lifecycle of a job that succeeds:
 *   created → running → waiting → pending → [BLOCK_JOB_PENDING; wait for
 *   finalize() unless autoFinalize] → commit, clean → BLOCK_JOB_COMPLETED →
 *   concluded → [wait for dismiss() unless autoDismiss] → null.
 * A job that fails or is cancelled goes to aborting instead, runs abort and
 * clean, emits BLOCK_JOB_COMPLETED with `error` (failure) or
 * BLOCK_JOB_CANCELLED (cancel), then concluded → null as above.
 *
 * Concurrency model: one JavaScript thread; run() may have several workers
 * in flight, and each may call pausePoint/rateLimit/handleError. A pause
 * takes effect at the next pause point; verbs and events are synchronous,
 * and a status change caused by a verb (for example resume → running) is
 * emitted before the verb returns, as qemu-storage-daemon does before it
 * answers the command.
 */
import { LivebackupError, errnoOf } from '../errors.js';
import { RateLimit } from './rate-limit.js';
import { canTransition, checkVerb, type JobStatus } from './job-status.js';
import type { ErrorAction, IoOperation, JobEvent, JobEventListener } from './job-events.js';
import { errorActionFor, type BlockdevOnError } from './error-policy.js';
import { CANCELLED_TEXT, failureText } from './failure-text.js';
import { jobEndChannel, jobErrorActionChannel, jobStartChannel, trace } from './job-trace.js';

export type { JobStatus, JobVerb } from './job-status.js';
export type { JobEvent, JobEventListener, JobEventName, IoOperation, ErrorAction } from './job-events.js';
export type { BlockdevOnError } from './error-policy.js';

/** QAPI BlockDeviceIoStatus, as reported for a job. */
export type JobIoStatus = 'ok' | 'failed' | 'nospace';

export interface JobOptions {
  /** Job ID: starts with a letter, then letters, digits, '-', '.', '_' (QEMU's id_wellformed). */
  id: string;
  /** QAPI JobType of the job, e.g. 'backup'. */
  type: string;
  /** Finalize by itself on reaching pending (default true); else wait for finalize(). */
  autoFinalize?: boolean;
  /** Dismiss by itself on reaching concluded (default true); else wait for dismiss(). */
  autoDismiss?: boolean;
  /** Rate limit in bytes per second; 0 (default) is unlimited; negative is refused. */
  speed?: number;
  /** Subscribed before the job enters 'created', so it sees every event. */
  onEvent?: JobEventListener;
  /**
   * Start inside a drained section, as qemu-storage-daemon's blockdev-backup
   * does: start() then emits running, paused, running before any work.
   * Default false.
   */
  drainedStart?: boolean;
}

/** How a job ended; `done` resolves with it when the job reaches concluded. */
export interface JobResult {
  status: 'completed' | 'cancelled' | 'failed';
  /** The job's error text (QEMU's): set for failed jobs, 'Operation canceled' for cancelled ones. */
  error?: string;
}

/** QAPI BlockJobInfo (query-block-jobs), members in QEMU's order. */
export interface BlockJobInfo {
  type: string;
  device: string;
  len: number;
  offset: number;
  busy: boolean;
  paused: boolean;
  speed: number;
  'io-status': JobIoStatus;
  ready: boolean;
  status: JobStatus;
  'auto-finalize': boolean;
  'auto-dismiss': boolean;
  error?: string;
}

/** QAPI JobInfo (query-jobs). */
export interface JobInfo {
  id: string;
  type: string;
  status: JobStatus;
  'current-progress': number;
  'total-progress': number;
  error?: string;
}

/** A worker sleeping in rateLimit: woken by its timer, cancel, set-speed, or turned into a pause. */
interface Sleeper {
  readonly timer: NodeJS.Timeout;
  readonly resolve: () => void;
}

const WELL_FORMED_ID = /^[A-Za-z][A-Za-z0-9\-._]*$/;

export abstract class Job {
  readonly id: string;
  readonly type: string;
  readonly autoFinalize: boolean;
  readonly autoDismiss: boolean;
  /** Settles when the job reaches 'concluded'; never rejects. */
  readonly done: Promise<JobResult>;
  /** Aborted (reason: a CANCELLED LivebackupError) when the job is cancelled. */
  readonly signal: AbortSignal;
  /** Progress made so far ("offset"); the subclass updates it. */
  progressCurrent = 0;
  /** Expected progress at completion ("len"); the subclass sets it and may change it. */
  progressTotal = 0;

  private readonly limit: RateLimit;
  private readonly drainedStart: boolean;
  private readonly abortController = new AbortController();
  private readonly listeners = new Set<JobEventListener>();
  private readonly eventQueue: JobEvent[] = [];
  private dispatching = false;
  private resolveDone!: (result: JobResult) => void;

  private currentStatus: JobStatus = 'undefined';
  private started = false;
  /** QEMU's pause_count: held once before start, by a user pause (also error stops) and by each drain. */
  private pauseCount = 1;
  private userPaused = false;
  /** Open drained sections (drainBegin without drainEnd yet). */
  private drains = 0;
  private cancelRequested = false;
  private forceCancelRequested = false;
  private currentIoStatus: JobIoStatus = 'ok';
  /** The job has failed or been cancelled (QEMU: ret != 0); failureMessage says why. */
  private failed = false;
  private failureMessage: string | undefined;
  /** run() has returned or thrown. */
  private runFinished = false;
  /** commit/abort/clean are under way; cancel and finalize no longer change anything. */
  private finalizing = false;
  /** The status to return to from paused/standby. */
  private statusBeforePause: JobStatus = 'running';
  private readonly pauseWaiters = new Set<() => void>();
  private readonly sleepers = new Set<Sleeper>();
  /** Set while the job waits in pending for finalize() (or cancel()). */
  private continueFromPending: (() => void) | undefined;

  /**
   * Validate the options and enter 'created' (emitting JOB_STATUS_CHANGE to
   * options.onEvent). Throws INVALID_ARGUMENT for a malformed ID ("Invalid
   * job ID 'x'"), an empty type or a negative speed ("Parameter 'speed'
   * expects a non-negative value").
   */
  constructor(options: JobOptions) {
    if (typeof options.id !== 'string' || !WELL_FORMED_ID.test(options.id)) {
      throw new LivebackupError('INVALID_ARGUMENT', `Invalid job ID '${String(options.id)}'`);
    }
    if (typeof options.type !== 'string' || options.type === '') {
      throw new LivebackupError('INVALID_ARGUMENT', `Job '${options.id}': type must be a non-empty string`);
    }
    this.id = options.id;
    this.type = options.type;
    this.autoFinalize = options.autoFinalize ?? true;
    this.autoDismiss = options.autoDismiss ?? true;
    this.drainedStart = options.drainedStart ?? false;
    this.limit = new RateLimit(options.speed ?? 0);
    this.signal = this.abortController.signal;
    this.done = new Promise<JobResult>((resolve) => {
      this.resolveDone = resolve;
    });
    if (options.onEvent) this.listeners.add(options.onEvent);
    this.transition('created');
  }

  // ---- state ----

  get status(): JobStatus {
    return this.currentStatus;
  }

  /** The rate limit in bytes per second; 0 = unlimited. */
  get speed(): number {
    return this.limit.speed;
  }

  /** False when the job is known to be quiescent: not started, paused, sleeping, or done with run(). */
  get busy(): boolean {
    return this.started && !this.runFinished && this.pauseWaiters.size === 0 && this.sleepers.size === 0;
  }

  /** Whether the job is paused or will pause at its next pause point (any pause held, before run() ends). */
  get paused(): boolean {
    return this.pauseCount > 0 && !this.runFinished;
  }

  get ioStatus(): JobIoStatus {
    return this.currentIoStatus;
  }

  /** The job's error text once it failed or was cancelled ('Operation canceled'); undefined otherwise. */
  get error(): string | undefined {
    return this.failed ? this.failureMessage : undefined;
  }

  /** True once cancel() was accepted. */
  get cancelled(): boolean {
    return this.cancelRequested;
  }

  /** True when the job was paused by the user (pause() or an error stop) and not yet resumed. */
  get userPause(): boolean {
    return this.userPaused;
  }

  /**
   * Subscribe to this job's events (delivered synchronously, in order);
   * returns the unsubscribe function.
   */
  onEvent(listener: JobEventListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** QAPI BlockJobInfo for query-block-jobs. */
  info(): BlockJobInfo {
    const info: BlockJobInfo = {
      type: this.type,
      device: this.id,
      len: this.progressTotal,
      offset: this.progressCurrent,
      busy: this.busy,
      paused: this.paused,
      speed: this.speed,
      'io-status': this.currentIoStatus,
      ready: this.currentStatus === 'ready' || this.currentStatus === 'standby',
      status: this.currentStatus,
      'auto-finalize': this.autoFinalize,
      'auto-dismiss': this.autoDismiss,
    };
    if (this.error !== undefined) info.error = this.error;
    return info;
  }

  /** QAPI JobInfo for query-jobs. */
  jobInfo(): JobInfo {
    const info: JobInfo = {
      id: this.id,
      type: this.type,
      status: this.currentStatus,
      'current-progress': this.progressCurrent,
      'total-progress': this.progressTotal,
    };
    if (this.error !== undefined) info.error = this.error;
    return info;
  }

  // ---- verbs ----

  /**
   * created → running; run() then proceeds asynchronously. Throws
   * INVALID_STATE unless the job is in 'created' and was never started.
   */
  start(): void {
    if (this.started || this.currentStatus !== 'created') {
      throw new LivebackupError('INVALID_STATE', `Job '${this.id}' in state '${this.currentStatus}' cannot be started`);
    }
    this.started = true;
    this.pauseCount--;
    this.transition('running');
    trace(jobStartChannel, { id: this.id, type: this.type });
    if (this.drainedStart) this.drainBegin();
    void this.runToEnd();
    if (this.drainedStart) this.drainEnd();
  }

  /**
   * Cancel the job: it stops at its next pause point (waking it if paused or
   * sleeping), aborts, and ends with BLOCK_JOB_CANCELLED. A job that was never
   * started goes straight to aborting, concluded, null without that event.
   * Cancelling clears a user pause. `force` is recorded for subclasses; the
   * base class treats every cancel as forced (QEMU's backup does the same).
   */
  cancel(force = false): void {
    checkVerb(this.id, this.currentStatus, 'cancel');
    if (this.finalizing) return;
    this.cancelRequested = true;
    this.forceCancelRequested ||= force;
    if (!this.signal.aborted) {
      this.abortController.abort(new LivebackupError('CANCELLED', `Job '${this.id}' was cancelled`));
    }
    if (this.userPaused) {
      this.userPaused = false;
      this.pauseCount--;
      this.currentIoStatus = 'ok';
    }
    if (!this.started) {
      void this.completeAfterRun();
    } else if (this.runFinished) {
      this.leavePending();
    } else {
      this.wakePaused();
      this.wakeSleepers();
    }
  }

  /**
   * User pause: the job pauses at its next pause point (at once if it is
   * sleeping in the rate limit). Throws the verb error, or INVALID_STATE
   * "Job is already paused".
   */
  pause(): void {
    checkVerb(this.id, this.currentStatus, 'pause');
    if (this.userPaused) throw new LivebackupError('INVALID_STATE', 'Job is already paused');
    this.userPaused = true;
    this.holdPause();
  }

  /**
   * Undo a user pause (or an error stop, resetting io-status to ok). Throws
   * INVALID_STATE "Can't resume a job that was not paused", or the verb error.
   */
  resume(): void {
    if (!this.userPaused || this.pauseCount <= 0) {
      throw new LivebackupError('INVALID_STATE', "Can't resume a job that was not paused");
    }
    checkVerb(this.id, this.currentStatus, 'resume');
    this.currentIoStatus = 'ok';
    this.userPaused = false;
    this.releasePause();
  }

  /**
   * Change the rate limit (bytes per second, 0 = unlimited); a sleeping job
   * recomputes its wait at once. Throws the verb error, or INVALID_ARGUMENT
   * "Parameter 'speed' expects a non-negative value".
   */
  setSpeed(speed: number): void {
    checkVerb(this.id, this.currentStatus, 'set-speed');
    this.limit.setSpeed(speed);
    this.wakeSleepers();
  }

  /**
   * Ask a ready job to complete. Throws the verb error outside 'ready', and
   * "The active block job 'ID' cannot be completed" when paused, cancelled,
   * or when the job type does not support completion (see doComplete).
   */
  complete(): void {
    checkVerb(this.id, this.currentStatus, 'complete');
    if (this.pauseCount > 0 || this.cancelRequested) throw this.cannotCompleteError();
    this.doComplete();
  }

  /** pending → commit or abort → concluded, for jobs with autoFinalize=false. Throws the verb error elsewhere. */
  finalize(): void {
    checkVerb(this.id, this.currentStatus, 'finalize');
    this.leavePending();
  }

  /** concluded → null, for jobs with autoDismiss=false. Throws the verb error elsewhere. */
  dismiss(): void {
    checkVerb(this.id, this.currentStatus, 'dismiss');
    this.transition('null');
  }

  /**
   * Begin a drained section (QEMU's internal job_pause): the job pauses at
   * its next pause point until every drainBegin has its drainEnd. Not a
   * user pause: resume() does not end it.
   */
  drainBegin(): void {
    this.drains++;
    this.holdPause();
  }

  /** End a drained section begun with drainBegin. */
  drainEnd(): void {
    if (this.drains === 0) throw new LivebackupError('INVALID_STATE', `Job '${this.id}' is not drained`);
    this.drains--;
    this.releasePause();
  }

  // ---- for subclasses ----

  /**
   * The work. Call pausePoint() (and rateLimit()) between chunks; throw to
   * fail; return normally when done. Runs once, after start().
   */
  protected abstract run(): Promise<void>;

  /** Success path, after run() succeeded; exactly one of commit/abort runs. Should not throw (a throw fails the job). */
  protected async commit(): Promise<void> {}

  /** Failure and cancel path; exactly one of commit/abort runs. A throw is reported as a warning. */
  protected async abort(): Promise<void> {}

  /** Runs after commit or abort, always. A throw is reported as a warning. */
  protected async clean(): Promise<void> {}

  /**
   * Called by complete() once the verb is allowed. The base class refuses
   * ("The active block job 'ID' cannot be completed"); jobs that reach
   * 'ready' (mirror-like) override it.
   */
  protected doComplete(): void {
    throw this.cannotCompleteError();
  }

  /** running → ready, emitting BLOCK_JOB_READY (for jobs that wait for complete()). */
  protected transitionToReady(): void {
    this.transition('ready');
    this.emit({ event: 'BLOCK_JOB_READY', data: this.progressData() });
  }

  /** The error text reported for a run() failure; defaults to failureText (strerror text for I/O errors). */
  protected describeFailure(error: unknown): string {
    return failureText(error);
  }

  /** True when the cancel was requested as forced (block-job-cancel force=true). */
  protected get forceCancel(): boolean {
    return this.forceCancelRequested;
  }

  /**
   * A pause and cancel point. If a pause is held, the status becomes paused
   * (standby when ready) until every pause is released, then returns to the
   * previous status. Throws a CANCELLED LivebackupError when the job is
   * cancelled (before or during the pause).
   */
  protected async pausePoint(): Promise<void> {
    this.throwIfCancelled();
    await this.waitWhilePaused();
    this.throwIfCancelled();
  }

  /**
   * Account `bytes` of work against the rate limit and sleep as needed
   * (100 ms slices). A speed change while sleeping applies at once; a pause
   * request while sleeping pauses here; cancel makes it return early
   * (without throwing; the next pausePoint throws).
   */
  protected async rateLimit(bytes: number): Promise<void> {
    let delay = this.limit.delayFor(bytes);
    for (;;) {
      if (this.cancelRequested) return;
      if (this.pauseCount > 0) {
        await this.waitWhilePaused();
        delay = this.limit.delayFor(0);
        continue;
      }
      if (delay <= 0) return;
      await this.sleep(delay);
      delay = this.limit.delayFor(0);
    }
  }

  /**
   * Apply an error policy to an I/O error, as QEMU's block_job_error_action
   * does: emit BLOCK_JOB_ERROR with the chosen action, then
   *  - report: return 'fail' (the caller throws, failing the job);
   *  - ignore: yield to the event loop (so a fault that never clears cannot
   *    starve timers, sockets and cancel), honour pause/cancel, return 'retry';
   *  - stop: io-status 'failed' ('nospace' for ENOSPC), user-pause the job
   *    (status paused) until resume(), then return 'retry'; throws CANCELLED
   *    if the job is cancelled while stopped.
   * 'enospc' and 'auto' stop on ENOSPC and report otherwise.
   */
  protected async handleError(policy: BlockdevOnError, operation: IoOperation, error: unknown): Promise<'retry' | 'fail'> {
    const action: ErrorAction = errorActionFor(policy, error);
    this.emit({ event: 'BLOCK_JOB_ERROR', data: { device: this.id, operation, action } });
    trace(jobErrorActionChannel, { id: this.id, operation, action, errno: errnoOf(error) });
    if (action === 'stop') {
      if (!this.userPaused) {
        this.userPaused = true;
        this.holdPause();
      }
      if (this.currentIoStatus === 'ok') this.currentIoStatus = errnoOf(error) === 'ENOSPC' ? 'nospace' : 'failed';
      await this.pausePoint();
      return 'retry';
    }
    if (action !== 'ignore') return 'fail';
    await new Promise((resolve) => setImmediate(resolve));
    await this.pausePoint();
    return 'retry';
  }

  // ---- internals ----

  private cannotCompleteError(): LivebackupError {
    return new LivebackupError('INVALID_STATE', `The active block job '${this.id}' cannot be completed`);
  }

  private throwIfCancelled(): void {
    if (this.cancelRequested) throw this.signal.reason as LivebackupError;
  }

  private progressData(): { type: string; device: string; len: number; offset: number; speed: number } {
    return { type: this.type, device: this.id, len: this.progressTotal, offset: this.progressCurrent, speed: this.speed };
  }

  /** Move to `to`, emitting JOB_STATUS_CHANGE when the status changes. A forbidden move is a bug in this class. */
  private transition(to: JobStatus): void {
    const from = this.currentStatus;
    if (!canTransition(from, to)) {
      throw new LivebackupError('INVALID_STATE', `Job '${this.id}': internal error: transition from '${from}' to '${to}'`);
    }
    this.currentStatus = to;
    if (from !== to) this.emit({ event: 'JOB_STATUS_CHANGE', data: { id: this.id, status: to } });
  }

  /** Deliver `event` to every listener; events emitted from inside a listener queue up behind it. */
  private emit(event: JobEvent): void {
    this.eventQueue.push(event);
    if (this.dispatching) return;
    this.dispatching = true;
    try {
      for (let next = this.eventQueue.shift(); next !== undefined; next = this.eventQueue.shift()) {
        for (const listener of [...this.listeners]) {
          try {
            listener(next);
          } catch (error) {
            this.warn(`an event listener threw on ${next.event}`, error);
          }
        }
      }
    } finally {
      this.dispatching = false;
    }
  }

  private warn(what: string, error: unknown): void {
    process.emitWarning(`Job '${this.id}': ${what}: ${error instanceof Error ? error.message : String(error)}`, 'LivebackupJobWarning');
  }

  /** Take one pause reference; a worker sleeping in rateLimit pauses at once. */
  private holdPause(): void {
    this.pauseCount++;
    if (this.sleepers.size === 0) return;
    for (const sleeper of [...this.sleepers]) {
      clearTimeout(sleeper.timer);
      this.sleepers.delete(sleeper);
      this.pauseWaiters.add(sleeper.resolve);
    }
    this.enterPausedStatus();
  }

  /** Drop one pause reference; the last one wakes paused workers. */
  private releasePause(): void {
    this.pauseCount--;
    if (this.pauseCount === 0) this.wakePaused();
  }

  private enterPausedStatus(): void {
    if (this.currentStatus === 'running' || this.currentStatus === 'ready') {
      this.statusBeforePause = this.currentStatus;
      this.transition(this.currentStatus === 'ready' ? 'standby' : 'paused');
    }
  }

  /** Park the caller while a pause is held and the job is not cancelled. */
  private async waitWhilePaused(): Promise<void> {
    while (this.pauseCount > 0 && !this.cancelRequested) {
      await new Promise<void>((resolve) => {
        this.pauseWaiters.add(resolve);
        this.enterPausedStatus();
      });
    }
  }

  /** Return from paused/standby (emitting the status change now) and release every parked worker. */
  private wakePaused(): void {
    if (this.pauseWaiters.size === 0) return;
    if (this.currentStatus === 'paused' || this.currentStatus === 'standby') this.transition(this.statusBeforePause);
    const waiters = [...this.pauseWaiters];
    this.pauseWaiters.clear();
    for (const wake of waiters) wake();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const sleeper: Sleeper = {
        timer: setTimeout(() => {
          this.sleepers.delete(sleeper);
          resolve();
        }, ms),
        resolve,
      };
      this.sleepers.add(sleeper);
    });
  }

  private wakeSleepers(): void {
    for (const sleeper of [...this.sleepers]) {
      clearTimeout(sleeper.timer);
      this.sleepers.delete(sleeper);
      sleeper.resolve();
    }
  }

  /** Record why the job failed (the first reason wins). */
  private recordFailure(error: unknown): void {
    if (this.failed) return;
    this.failed = true;
    const cancellation =
      this.cancelRequested &&
      (error === this.signal.reason ||
        (error instanceof LivebackupError && error.code === 'CANCELLED') ||
        (error instanceof Error && error.name === 'AbortError'));
    this.failureMessage = cancellation ? CANCELLED_TEXT : this.describeFailure(error);
  }

  /** The job's coroutine: first pause point, run(), then completion. */
  private async runToEnd(): Promise<void> {
    let succeeded = false;
    let runError: unknown;
    try {
      await this.pausePoint();
      await this.run();
      succeeded = true;
    } catch (error) {
      runError = error;
    }
    this.runFinished = true;
    // run() may end while other workers of it are parked at a pause point.
    if (this.currentStatus === 'paused' || this.currentStatus === 'standby') this.transition(this.statusBeforePause);
    if (!succeeded) this.recordFailure(runError);
    await this.completeAfterRun();
  }

  /** QEMU's job_completed: aborting for failure/cancel; otherwise waiting → pending → (finalize) → commit. */
  private async completeAfterRun(): Promise<void> {
    if (this.cancelRequested) this.recordFailure(this.signal.reason);
    if (this.failed) {
      this.transition('aborting');
    } else {
      // Armed before 'pending' is announced, so a listener may finalize at once.
      const finalizeRequested = this.autoFinalize
        ? undefined
        : new Promise<void>((resolve) => {
            this.continueFromPending = resolve;
          });
      this.transition('waiting');
      this.transition('pending');
      if (finalizeRequested) {
        this.emit({ event: 'BLOCK_JOB_PENDING', data: { type: this.type, id: this.id } });
        await finalizeRequested;
      }
    }
    await this.finalizeSingle();
  }

  /** Leave the pending wait (finalize() or cancel()); no-op when not waiting there. */
  private leavePending(): void {
    const proceed = this.continueFromPending;
    this.continueFromPending = undefined;
    proceed?.();
  }

  /** QEMU's job_finalize_single: commit or abort, clean, the final event, concluded, maybe null. */
  private async finalizeSingle(): Promise<void> {
    this.finalizing = true;
    if (this.cancelRequested) this.recordFailure(this.signal.reason);
    if (this.failed) this.transition('aborting');
    if (!this.failed) {
      try {
        await this.commit();
      } catch (error) {
        this.recordFailure(error);
        this.transition('aborting');
      }
    } else {
      try {
        await this.abort();
      } catch (error) {
        this.warn('abort failed', error);
      }
    }
    try {
      await this.clean();
    } catch (error) {
      this.warn('clean failed', error);
    }
    if (this.started) {
      if (this.cancelRequested) {
        this.emit({ event: 'BLOCK_JOB_CANCELLED', data: this.progressData() });
      } else {
        const data: Extract<JobEvent, { event: 'BLOCK_JOB_COMPLETED' }>['data'] = this.progressData();
        if (this.failed && this.failureMessage !== undefined) data.error = this.failureMessage;
        this.emit({ event: 'BLOCK_JOB_COMPLETED', data });
      }
    }
    const result: JobResult = { status: this.cancelRequested ? 'cancelled' : this.failed ? 'failed' : 'completed' };
    if (this.failed) result.error = this.failureMessage;
    this.transition('concluded');
    trace(jobEndChannel, { id: this.id, type: this.type, ...result });
    this.resolveDone(result);
    if (this.autoDismiss || !this.started) this.transition('null');
  }
}
