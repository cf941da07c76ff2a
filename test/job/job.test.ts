import { test } from 'node:test';
import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { LivebackupError } from '../../src/errors.js';
import { ChunkJob, EventLog, settle, type ChunkJobOptions } from './chunk-job.js';

/** A hang fails the test instead of stalling the suite. */
const LIMIT = { timeout: 30_000 };
const CHUNK = 65_536;
const EIO = new LivebackupError('IO_ERROR', 'write to node tgt failed: injected', { errno: 'EIO' });
const ENOSPC = new LivebackupError('IO_ERROR', 'write to node tgt failed: full', { errno: 'ENOSPC' });

function makeJob(overrides: Partial<ChunkJobOptions> = {}): { job: ChunkJob; log: EventLog } {
  const log = new EventLog();
  const job = new ChunkJob({ id: 'j1', type: 'backup', chunks: 8, chunkBytes: CHUNK, onEvent: log.listener, ...overrides });
  return { job, log };
}

function assertRefused(fn: () => unknown, code: string, message: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof LivebackupError, `expected a LivebackupError, got ${String(error)}`);
    assert.equal(error.message, message);
    assert.equal(error.code, code);
    return true;
  });
}

test('a successful job emits QEMU\'s sequence and commits', LIMIT, async () => {
  const { job, log } = makeJob();
  assert.equal(job.status, 'created');
  job.start();
  const result = await job.done;
  assert.deepEqual(result, { status: 'completed' });
  assert.deepEqual(log.names, ['created', 'running', 'waiting', 'pending', 'BLOCK_JOB_COMPLETED', 'concluded', 'null']);
  assert.deepEqual(log.find('BLOCK_JOB_COMPLETED')!.data, { type: 'backup', device: 'j1', len: 8 * CHUNK, offset: 8 * CHUNK, speed: 0 });
  assert.deepEqual(job.calls, ['commit', 'clean']);
  assert.equal(job.status, 'null');
  assert.equal(job.error, undefined);
});

test('drainedStart reproduces qemu-storage-daemon\'s created, running, paused, running', LIMIT, async () => {
  const { job, log } = makeJob({ drainedStart: true, chunks: 2 });
  job.start();
  // The drain pause and its end happen inside start(), before it returns.
  assert.deepEqual(log.names, ['created', 'running', 'paused', 'running']);
  await job.done;
  assert.deepEqual(log.names, ['created', 'running', 'paused', 'running', 'waiting', 'pending', 'BLOCK_JOB_COMPLETED', 'concluded', 'null']);
});

test('cancel mid-way: aborting, BLOCK_JOB_CANCELLED with offset < len, abort and clean', LIMIT, async () => {
  const { job, log } = makeJob({ afterChunk: (index, self) => { if (index === 2) self.cancel(); } });
  job.start();
  const result = await job.done;
  assert.deepEqual(result, { status: 'cancelled', error: 'Operation canceled' });
  assert.deepEqual(log.names, ['created', 'running', 'aborting', 'BLOCK_JOB_CANCELLED', 'concluded', 'null']);
  const cancelled = log.find('BLOCK_JOB_CANCELLED')!.data;
  assert.deepEqual(cancelled, { type: 'backup', device: 'j1', len: 8 * CHUNK, offset: 3 * CHUNK, speed: 0 });
  assert.ok(cancelled.offset < cancelled.len);
  assert.deepEqual(job.calls, ['abort', 'clean']);
  assert.ok(job.signal.aborted);
  assert.ok(job.signal.reason instanceof LivebackupError && job.signal.reason.code === 'CANCELLED');
});

test('cancelling a paused job resumes it (running) before aborting', LIMIT, async () => {
  const { job, log } = makeJob({ afterChunk: (index, self) => { if (index === 1) self.pause(); } });
  const paused = log.next('paused');
  job.start();
  await paused;
  assert.equal(job.info().paused, true);
  job.cancel();
  await job.done;
  assert.deepEqual(log.names, ['created', 'running', 'paused', 'running', 'aborting', 'BLOCK_JOB_CANCELLED', 'concluded', 'null']);
  assert.equal(log.find('BLOCK_JOB_CANCELLED')!.data.offset, 2 * CHUNK);
});

test('cancelling a job that never started: aborting, concluded, null without BLOCK_JOB_CANCELLED', LIMIT, async () => {
  const { job, log } = makeJob();
  job.cancel();
  assert.deepEqual(await job.done, { status: 'cancelled', error: 'Operation canceled' });
  assert.deepEqual(log.names, ['created', 'aborting', 'concluded', 'null']);
  assert.deepEqual(job.calls, ['abort', 'clean']);
  assertRefused(() => job.start(), 'INVALID_STATE', "Job 'j1' in state 'null' cannot be started");
});

test('error policy report: BLOCK_JOB_ERROR, aborting, BLOCK_JOB_COMPLETED with the strerror text', LIMIT, async () => {
  const { job, log } = makeJob({ policy: 'report', failures: new Map([[2, Infinity]]), failError: EIO });
  job.start();
  const result = await job.done;
  assert.deepEqual(result, { status: 'failed', error: 'Input/output error' });
  assert.deepEqual(log.names, ['created', 'running', 'BLOCK_JOB_ERROR', 'aborting', 'BLOCK_JOB_COMPLETED', 'concluded', 'null']);
  assert.deepEqual(log.find('BLOCK_JOB_ERROR')!.data, { device: 'j1', operation: 'write', action: 'report' });
  assert.deepEqual(log.find('BLOCK_JOB_COMPLETED')!.data,
    { type: 'backup', device: 'j1', len: 8 * CHUNK, offset: 2 * CHUNK, speed: 0, error: 'Input/output error' });
  assert.deepEqual(job.calls, ['abort', 'clean']);
});

test('a failure that is not an I/O error reports its own message', LIMIT, async () => {
  const { job, log } = makeJob({ failures: new Map([[0, Infinity]]), failError: new LivebackupError('CORRUPT_IMAGE', 'L2 table offset 0x123 unaligned') });
  job.start();
  assert.deepEqual(await job.done, { status: 'failed', error: 'L2 table offset 0x123 unaligned' });
  assert.equal(log.find('BLOCK_JOB_COMPLETED')!.data.error, 'L2 table offset 0x123 unaligned');
});

test('error policy ignore: BLOCK_JOB_ERROR action ignore, the chunk is retried and the job completes', LIMIT, async () => {
  const { job, log } = makeJob({ policy: 'ignore', operation: 'read', failures: new Map([[3, 2]]), failError: EIO });
  job.start();
  assert.deepEqual(await job.done, { status: 'completed' });
  assert.deepEqual(log.names, ['created', 'running', 'BLOCK_JOB_ERROR', 'BLOCK_JOB_ERROR', 'waiting', 'pending', 'BLOCK_JOB_COMPLETED', 'concluded', 'null']);
  assert.deepEqual(log.find('BLOCK_JOB_ERROR')!.data, { device: 'j1', operation: 'read', action: 'ignore' });
  assert.equal(job.attempts.get(3), 3);
});

test('error policy stop: paused with io-status failed until resume, then retried and completed', LIMIT, async () => {
  const { job, log } = makeJob({ policy: 'stop', failures: new Map([[4, 1]]), failError: EIO, autoDismiss: false });
  const paused = log.next('paused');
  job.start();
  await paused;
  assert.deepEqual(log.names, ['created', 'running', 'BLOCK_JOB_ERROR', 'paused']);
  assert.deepEqual(log.find('BLOCK_JOB_ERROR')!.data, { device: 'j1', operation: 'write', action: 'stop' });
  const info = job.info();
  assert.equal(info['io-status'], 'failed');
  assert.equal(info.paused, true);
  assert.equal(info.busy, false);
  assert.equal(info.status, 'paused');
  assertRefused(() => job.dismiss(), 'INVALID_STATE', "Job 'j1' in state 'paused' cannot accept command verb 'dismiss'");
  await settle();
  assert.equal(job.progressCurrent, 4 * CHUNK, 'a stopped job makes no progress');
  job.resume();
  assert.equal(job.status, 'running', 'resume changes the status before it returns');
  assert.equal(job.ioStatus, 'ok');
  assert.deepEqual(await job.done, { status: 'completed' });
  assert.deepEqual(log.names.slice(4), ['running', 'waiting', 'pending', 'BLOCK_JOB_COMPLETED', 'concluded']);
  assert.equal(job.attempts.get(4), 2);
  job.dismiss();
  assert.equal(job.status, 'null');
});

test('error policies enospc and auto stop on ENOSPC (io-status nospace) and report other errors', LIMIT, async () => {
  for (const policy of ['enospc', 'auto'] as const) {
    const stopped = makeJob({ policy, failures: new Map([[1, 1]]), failError: ENOSPC });
    const paused = stopped.log.next('paused');
    stopped.job.start();
    await paused;
    assert.equal(stopped.job.ioStatus, 'nospace', policy);
    assert.equal(stopped.log.find('BLOCK_JOB_ERROR')!.data.action, 'stop');
    stopped.job.resume();
    assert.equal((await stopped.job.done).status, 'completed');

    const reported = makeJob({ policy, failures: new Map([[1, 1]]), failError: EIO });
    reported.job.start();
    assert.deepEqual(await reported.job.done, { status: 'failed', error: 'Input/output error' }, policy);
    assert.equal(reported.log.find('BLOCK_JOB_ERROR')!.data.action, 'report');
  }
});

test('cancelling a job stopped on an error ends it cancelled', LIMIT, async () => {
  const { job, log } = makeJob({ policy: 'stop', failures: new Map([[2, Infinity]]), failError: EIO });
  const paused = log.next('paused');
  job.start();
  await paused;
  job.cancel();
  assert.equal(job.ioStatus, 'ok');
  assert.deepEqual(await job.done, { status: 'cancelled', error: 'Operation canceled' });
  assert.deepEqual(log.names, ['created', 'running', 'BLOCK_JOB_ERROR', 'paused', 'running', 'aborting', 'BLOCK_JOB_CANCELLED', 'concluded', 'null']);
});

test('autoFinalize=false waits in pending (BLOCK_JOB_PENDING) until finalize', LIMIT, async () => {
  const { job, log } = makeJob({ autoFinalize: false, chunks: 3 });
  const pending = log.next('BLOCK_JOB_PENDING');
  job.start();
  await pending;
  await settle();
  assert.equal(job.status, 'pending');
  assert.deepEqual(log.names, ['created', 'running', 'waiting', 'pending', 'BLOCK_JOB_PENDING']);
  assert.deepEqual(log.find('BLOCK_JOB_PENDING')!.data, { type: 'backup', id: 'j1' });
  assert.deepEqual(job.calls, []);
  assert.equal(job.info().busy, false);
  assertRefused(() => job.dismiss(), 'INVALID_STATE', "Job 'j1' in state 'pending' cannot accept command verb 'dismiss'");
  assertRefused(() => job.pause(), 'INVALID_STATE', "Job 'j1' in state 'pending' cannot accept command verb 'pause'");
  job.finalize();
  assert.deepEqual(await job.done, { status: 'completed' });
  assert.deepEqual(log.names.slice(5), ['BLOCK_JOB_COMPLETED', 'concluded', 'null']);
  assert.deepEqual(job.calls, ['commit', 'clean']);
});

test('cancelling a pending job aborts it instead of committing', LIMIT, async () => {
  const { job, log } = makeJob({ autoFinalize: false, chunks: 2 });
  const pending = log.next('BLOCK_JOB_PENDING');
  job.start();
  await pending;
  job.cancel();
  const result = await job.done;
  assert.equal(result.status, 'cancelled');
  assert.deepEqual(log.names.slice(5), ['aborting', 'BLOCK_JOB_CANCELLED', 'concluded', 'null']);
  assert.deepEqual(job.calls, ['abort', 'clean']);
  // A listener may finalize synchronously when pending is announced.
  const eager = makeJob({ id: 'j2', autoFinalize: false, chunks: 1 });
  eager.job.onEvent((event) => { if (event.event === 'JOB_STATUS_CHANGE' && event.data.status === 'pending') eager.job.finalize(); });
  eager.job.start();
  assert.equal((await eager.job.done).status, 'completed');
});

test('autoDismiss=false stays concluded until dismiss', LIMIT, async () => {
  const { job, log } = makeJob({ autoDismiss: false, chunks: 2 });
  job.start();
  await job.done;
  await settle();
  assert.equal(job.status, 'concluded');
  assert.deepEqual(job.info(), {
    type: 'backup', device: 'j1', len: 2 * CHUNK, offset: 2 * CHUNK, busy: false, paused: false, speed: 0,
    'io-status': 'ok', ready: false, status: 'concluded', 'auto-finalize': true, 'auto-dismiss': false,
  });
  assertRefused(() => job.cancel(), 'INVALID_STATE', "Job 'j1' in state 'concluded' cannot accept command verb 'cancel'");
  job.dismiss();
  assert.deepEqual(log.names, ['created', 'running', 'waiting', 'pending', 'BLOCK_JOB_COMPLETED', 'concluded', 'null']);
  assertRefused(() => job.dismiss(), 'INVALID_STATE', "Job 'j1' in state 'null' cannot accept command verb 'dismiss'");
});

test('a cancelled job kept for dismissal reports "Operation canceled" like QEMU', LIMIT, async () => {
  const { job } = makeJob({ autoDismiss: false, afterChunk: (index, self) => { if (index === 0) self.cancel(); } });
  job.start();
  await job.done;
  assert.equal(job.info().error, 'Operation canceled');
  assert.deepEqual(job.jobInfo(), {
    id: 'j1', type: 'backup', status: 'concluded', 'current-progress': CHUNK, 'total-progress': 8 * CHUNK, error: 'Operation canceled',
  });
});

test('verbs refused with QEMU\'s exact texts', LIMIT, async () => {
  const { job, log } = makeJob({ afterChunk: (index, self) => { if (index === 0) self.pause(); } });
  const paused = log.next('paused');
  job.start();
  assertRefused(() => job.complete(), 'INVALID_STATE', "Job 'j1' in state 'running' cannot accept command verb 'complete'");
  assertRefused(() => job.finalize(), 'INVALID_STATE', "Job 'j1' in state 'running' cannot accept command verb 'finalize'");
  assertRefused(() => job.dismiss(), 'INVALID_STATE', "Job 'j1' in state 'running' cannot accept command verb 'dismiss'");
  await paused;
  assertRefused(() => job.pause(), 'INVALID_STATE', 'Job is already paused');
  job.resume();
  assertRefused(() => job.resume(), 'INVALID_STATE', "Can't resume a job that was not paused");
  await job.done;
  assertRefused(() => job.setSpeed(1), 'INVALID_STATE', "Job 'j1' in state 'null' cannot accept command verb 'set-speed'");
  assertRefused(() => job.resume(), 'INVALID_STATE', "Can't resume a job that was not paused");
});

test('pause freezes progress until resume', LIMIT, async () => {
  const { job, log } = makeJob({ chunks: 10, afterChunk: (index, self) => { if (index === 3) self.pause(); } });
  const paused = log.next('paused');
  job.start();
  await paused;
  const frozenAt = job.progressCurrent;
  assert.equal(frozenAt, 4 * CHUNK);
  await settle(50);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(job.progressCurrent, frozenAt);
  assert.equal(job.status, 'paused');
  assert.equal(job.busy, false);
  job.resume();
  assert.deepEqual(await job.done, { status: 'completed' });
  assert.deepEqual(log.names, ['created', 'running', 'paused', 'running', 'waiting', 'pending', 'BLOCK_JOB_COMPLETED', 'concluded', 'null']);
});

test('a drained section pauses the job until drainEnd; resume() cannot end it', LIMIT, async () => {
  const { job, log } = makeJob({ chunks: 4, afterChunk: (index, self) => { if (index === 1) self.drainBegin(); } });
  const paused = log.next('paused');
  job.start();
  await paused;
  assert.equal(job.progressCurrent, 2 * CHUNK);
  assertRefused(() => job.resume(), 'INVALID_STATE', "Can't resume a job that was not paused");
  job.pause();
  job.drainEnd();
  await settle();
  assert.equal(job.status, 'paused', 'the user pause still holds');
  assertRefused(() => job.drainEnd(), 'INVALID_STATE', "Job 'j1' is not drained");
  job.resume();
  assert.equal((await job.done).status, 'completed');
  assert.deepEqual(log.names, ['created', 'running', 'paused', 'running', 'waiting', 'pending', 'BLOCK_JOB_COMPLETED', 'concluded', 'null']);
});

test('a pause requested before start takes effect at the first pause point', LIMIT, async () => {
  const { job, log } = makeJob({ chunks: 2 });
  job.pause();
  assert.equal(job.info().paused, true);
  job.start();
  await settle();
  assert.deepEqual(log.names, ['created', 'running', 'paused']);
  assert.equal(job.progressCurrent, 0);
  job.resume();
  await job.done;
  assert.deepEqual(log.names.slice(3), ['running', 'waiting', 'pending', 'BLOCK_JOB_COMPLETED', 'concluded', 'null']);
});

test('speed: set at creation and by setSpeed, reported by info(), negative refused', LIMIT, async () => {
  assertRefused(() => makeJob({ speed: -1 }), 'INVALID_ARGUMENT', "Parameter 'speed' expects a non-negative value");
  // 1 byte/s against 64 KiB chunks: the job sleeps in the rate limit after its first chunk.
  const { job, log } = makeJob({ speed: 1, chunks: 3 });
  assert.equal(job.info().speed, 1);
  job.start();
  while (job.busy || job.progressCurrent === 0) await settle(1);
  assert.equal(job.progressCurrent, CHUNK);
  assert.equal(job.info().busy, false, 'sleeping in the rate limit is not busy');
  // A pause while sleeping takes effect at once.
  job.pause();
  assert.equal(job.status, 'paused');
  job.setSpeed(2048);
  assert.equal(job.info().speed, 2048);
  assertRefused(() => job.setSpeed(-5), 'INVALID_ARGUMENT', "Parameter 'speed' expects a non-negative value");
  job.resume();
  // Unlimited again: the job must finish without waiting out its slices.
  job.setSpeed(0);
  assert.deepEqual(await job.done, { status: 'completed' });
  assert.equal(log.find('BLOCK_JOB_COMPLETED')!.data.speed, 0);
  assert.deepEqual(log.names, ['created', 'running', 'paused', 'running', 'waiting', 'pending', 'BLOCK_JOB_COMPLETED', 'concluded', 'null']);
});

test('cancel wakes a job sleeping in the rate limit', LIMIT, async () => {
  const { job, log } = makeJob({ speed: 1, chunks: 3 });
  job.start();
  while (job.busy || job.progressCurrent === 0) await settle(1);
  job.cancel();
  assert.equal((await job.done).status, 'cancelled');
  assert.deepEqual(log.find('BLOCK_JOB_CANCELLED')!.data, { type: 'backup', device: 'j1', len: 3 * CHUNK, offset: CHUNK, speed: 1 });
});

test('job IDs must be well formed', LIMIT, () => {
  for (const id of ['', '1abc', 'a b', 'x/y', '#block1']) {
    assertRefused(() => makeJob({ id }), 'INVALID_ARGUMENT', `Invalid job ID '${id}'`);
  }
  assert.equal(makeJob({ id: 'backup-0.a_b' }).job.id, 'backup-0.a_b');
});

test('complete() on a ready job that does not support completion uses QEMU\'s text', LIMIT, async () => {
  class ReadyJob extends ChunkJob {
    protected override async run(): Promise<void> {
      this.transitionToReady();
      await this.pausePoint();
      await new Promise<void>((resolve) => this.signal.addEventListener('abort', () => resolve()));
      await this.pausePoint();
    }
  }
  const log = new EventLog();
  const job = new ReadyJob({ id: 'm1', type: 'mirror', chunks: 1, chunkBytes: 1, onEvent: log.listener });
  const ready = log.next('BLOCK_JOB_READY');
  job.start();
  await ready;
  assert.equal(job.info().ready, true);
  assertRefused(() => job.complete(), 'INVALID_STATE', "The active block job 'm1' cannot be completed");
  job.cancel();
  await job.done;
  assert.deepEqual(log.names, ['created', 'running', 'ready', 'BLOCK_JOB_READY', 'aborting', 'BLOCK_JOB_CANCELLED', 'concluded', 'null']);
});

test('trace points: start, error-action and end on diagnostics channels', LIMIT, async () => {
  const seen: Array<[string, unknown]> = [];
  const subscribers = ['livebackup:job:start', 'livebackup:job:error-action', 'livebackup:job:end'].map((name) => {
    const onMessage = (message: unknown): void => { seen.push([name, message]); };
    diagnosticsChannel.subscribe(name, onMessage);
    return () => diagnosticsChannel.unsubscribe(name, onMessage);
  });
  try {
    const { job } = makeJob({ id: 'traced', policy: 'ignore', failures: new Map([[0, 1]]), failError: ENOSPC, chunks: 1 });
    job.start();
    await job.done;
  } finally {
    for (const unsubscribe of subscribers) unsubscribe();
  }
  const mine = seen.filter(([, message]) => (message as { id: string }).id === 'traced');
  assert.deepEqual(mine, [
    ['livebackup:job:start', { id: 'traced', type: 'backup' }],
    ['livebackup:job:error-action', { id: 'traced', operation: 'write', action: 'ignore', errno: 'ENOSPC' }],
    ['livebackup:job:end', { id: 'traced', type: 'backup', status: 'completed' }],
  ]);
});

test('several workers: one paused status for all, two error stops share one pause, resume retries both', LIMIT, async () => {
  class WorkersJob extends ChunkJob {
    readonly failing = new Set([5, 6]);
    protected override async run(): Promise<void> {
      let next = 0;
      const worker = async (): Promise<void> => {
        for (let chunk = next++; chunk < 12; chunk = next++) {
          await this.pausePoint();
          await settle(1); // the "I/O"
          while (this.failing.has(chunk)) {
            if ((await this.handleError('stop', 'write', EIO)) === 'fail') throw EIO;
            this.failing.delete(chunk);
          }
          this.progressCurrent += CHUNK;
          await this.rateLimit(CHUNK);
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
    }
  }
  const log = new EventLog();
  const job = new WorkersJob({ id: 'w1', type: 'backup', chunks: 12, chunkBytes: CHUNK, onEvent: log.listener });
  const paused = log.next('paused');
  job.start();
  await paused;
  await settle();
  assert.deepEqual(log.names, ['created', 'running', 'BLOCK_JOB_ERROR', 'paused', 'BLOCK_JOB_ERROR']);
  const frozenAt = job.progressCurrent;
  await settle();
  assert.equal(job.progressCurrent, frozenAt);
  job.resume();
  assert.deepEqual(await job.done, { status: 'completed' });
  assert.equal(job.progressCurrent, 12 * CHUNK);
  assert.deepEqual(log.names.slice(5), ['running', 'waiting', 'pending', 'BLOCK_JOB_COMPLETED', 'concluded', 'null']);
});
