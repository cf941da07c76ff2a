/**
 * Our Job against the real qemu-storage-daemon 7.2: the same scenario is run
 * as a blockdev-backup job in qsd and as a ChunkJob here, and the event
 * sequences, query-block-jobs answers and refusal texts must agree.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { skipUnlessTools } from '../helpers/tools.js';
import { tempDir } from '../helpers/temp-dir.js';
import { SeededRandom } from '../helpers/random.js';
import { LivebackupError } from '../../src/errors.js';
import { QsdMonitor, type QmpReply } from './qsd-monitor.js';
import { ChunkJob, EventLog, settle, type ChunkJobOptions } from './chunk-job.js';

const skip = skipUnlessTools('qemu-storage-daemon');
const LIMIT = { skip, timeout: 60_000 };
const MiB = 1024 * 1024;
const NULL_DEVICES = ['--blockdev', `null-co,node-name=src,size=${64 * MiB}`, '--blockdev', `null-co,node-name=tgt,size=${64 * MiB}`];
const EIO = new LivebackupError('IO_ERROR', 'injected', { errno: 'EIO' });

function ourJob(overrides: Partial<ChunkJobOptions>): { job: ChunkJob; log: EventLog } {
  const log = new EventLog();
  const job = new ChunkJob({ id: 'j1', type: 'backup', chunks: 64, chunkBytes: MiB, drainedStart: true, onEvent: log.listener, ...overrides });
  return { job, log };
}

/** The error text of a QMP reply, or '' when it succeeded. */
function qmpError(reply: QmpReply): string {
  return 'error' in reply ? reply.error.desc : '';
}

/** The error text our verb throws, or '' when it succeeds. */
function ourError(verb: () => void): string {
  try {
    verb();
    return '';
  } catch (error) {
    return (error as Error).message;
  }
}

async function queryJob(qsd: QsdMonitor): Promise<Record<string, unknown>> {
  const reply = await qsd.execute('query-block-jobs');
  assert.ok('return' in reply);
  return (reply.return as Array<Record<string, unknown>>)[0]!;
}

/** A 4 MiB source with random data, and a target behind blkdebug failing writes with EIO. */
async function errorDevices(t: Parameters<typeof tempDir>[0], once: boolean): Promise<string[]> {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'src.raw'), new SeededRandom(3).bytes(4 * MiB));
  await writeFile(join(dir, 'tgt.raw'), new Uint8Array(4 * MiB));
  return [
    '--blockdev', `driver=file,node-name=src,filename=${join(dir, 'src.raw')}`,
    '--blockdev', `driver=raw,node-name=tgt,file.driver=blkdebug,file.image.driver=file,file.image.filename=${join(dir, 'tgt.raw')},` +
      `file.inject-error.0.event=write_aio,file.inject-error.0.errno=5,file.inject-error.0.once=${once ? 'on' : 'off'}`,
  ];
}

test('success: same event sequence as a qsd backup job', LIMIT, async (t) => {
  const qsd = await QsdMonitor.start(t, NULL_DEVICES);
  assert.equal(qmpError(await qsd.execute('blockdev-backup', { 'job-id': 'j1', device: 'src', target: 'tgt', sync: 'full' })), '');
  await qsd.waitForStatus('null');
  const { job, log } = ourJob({});
  job.start();
  await job.done;
  assert.deepEqual(log.names, qsd.names);
  assert.deepEqual(log.find('BLOCK_JOB_COMPLETED'), qsd.events.find((event) => event.event === 'BLOCK_JOB_COMPLETED'));
});

test('manual finalize and dismiss: same events, query-block-jobs answers and refusals as qsd', LIMIT, async (t) => {
  const qsd = await QsdMonitor.start(t, NULL_DEVICES);
  await qsd.execute('blockdev-backup', { 'job-id': 'j1', device: 'src', target: 'tgt', sync: 'full', 'auto-finalize': false, 'auto-dismiss': false });
  await qsd.waitFor((event) => event.event === 'BLOCK_JOB_PENDING');
  const { job, log } = ourJob({ autoFinalize: false, autoDismiss: false });
  const pending = log.next('BLOCK_JOB_PENDING');
  job.start();
  await pending;
  await settle();

  assert.deepEqual(job.info(), await queryJob(qsd));
  assert.equal(ourError(() => job.dismiss()), qmpError(await qsd.execute('job-dismiss', { id: 'j1' })));
  assert.equal(ourError(() => job.pause()), qmpError(await qsd.execute('job-pause', { id: 'j1' })));
  assert.equal(ourError(() => job.finalize()), qmpError(await qsd.execute('job-finalize', { id: 'j1' })));
  await qsd.waitForStatus('concluded');
  await job.done;
  assert.deepEqual(job.info(), await queryJob(qsd));
  assert.equal(ourError(() => job.cancel()), qmpError(await qsd.execute('job-cancel', { id: 'j1' })));
  assert.equal(ourError(() => job.dismiss()), qmpError(await qsd.execute('job-dismiss', { id: 'j1' })));
  await qsd.waitForStatus('null');
  assert.deepEqual(log.names, qsd.names);
});

test('pause, resume, set-speed and cancel while rate limited: same events and refusals as qsd', LIMIT, async (t) => {
  const qsd = await QsdMonitor.start(t, NULL_DEVICES);
  await qsd.execute('blockdev-backup', { 'job-id': 'j1', device: 'src', target: 'tgt', sync: 'full', speed: MiB, 'auto-dismiss': false });
  const { job, log } = ourJob({ speed: MiB, autoDismiss: false });
  job.start();
  // Our job copies one 1 MiB chunk and then sleeps in the rate limit, like qsd's.
  while (job.busy || job.progressCurrent === 0) await settle(1);

  const steps: Array<[() => void, string, Record<string, unknown>]> = [
    [() => job.complete(), 'job-complete', { id: 'j1' }],
    [() => job.resume(), 'job-resume', { id: 'j1' }],
    [() => job.pause(), 'job-pause', { id: 'j1' }],
    [() => job.pause(), 'job-pause', { id: 'j1' }],
    [() => job.setSpeed(-1), 'block-job-set-speed', { device: 'j1', speed: -1 }],
    [() => job.setSpeed(2 * MiB), 'block-job-set-speed', { device: 'j1', speed: 2 * MiB }],
  ];
  const beforeSteps = qsd.events.length - 1;
  for (const [ours, command, args] of steps) {
    assert.equal(ourError(ours), qmpError(await qsd.execute(command, args)), command);
  }
  // qsd pauses at its next pause point: at once when sleeping, a moment later when busy.
  await qsd.waitForStatus('paused', beforeSteps);
  const theirs = await queryJob(qsd);
  const mine = job.info();
  for (const key of ['type', 'device', 'len', 'busy', 'paused', 'speed', 'io-status', 'ready', 'status', 'auto-finalize', 'auto-dismiss'] as const) {
    assert.deepEqual(mine[key], theirs[key], key);
  }
  for (const [ours, command] of [[() => job.resume(), 'job-resume'], [() => job.resume(), 'job-resume'], [() => job.cancel(), 'job-cancel']] as const) {
    assert.equal(ourError(ours), qmpError(await qsd.execute(command, { id: 'j1' })), command);
  }
  await qsd.waitForStatus('concluded');
  await job.done;
  assert.equal(job.info().error, (await queryJob(qsd)).error);
  assert.deepEqual(log.names, qsd.names);
  const cancelled = log.find('BLOCK_JOB_CANCELLED')!.data;
  assert.ok(cancelled.offset < cancelled.len);
});

test('on-target-error=stop: same events, io-status and refusals as qsd, completes after resume', LIMIT, async (t) => {
  const qsd = await QsdMonitor.start(t, await errorDevices(t, true));
  await qsd.execute('blockdev-backup', { 'job-id': 'j1', device: 'src', target: 'tgt', sync: 'full', 'on-target-error': 'stop' });
  await qsd.waitForStatus('running');
  await qsd.waitFor((event) => event.event === 'BLOCK_JOB_ERROR');
  await qsd.waitForStatus('paused', qsd.indexOf('BLOCK_JOB_ERROR'));
  const { job, log } = ourJob({ chunks: 4, policy: 'stop', failures: new Map([[1, 1]]), failError: EIO });
  const paused = log.next('BLOCK_JOB_ERROR');
  job.start();
  await paused;
  await settle();
  const theirs = await queryJob(qsd);
  const mine = job.info();
  for (const key of ['busy', 'paused', 'io-status', 'status'] as const) assert.deepEqual(mine[key], theirs[key], key);
  assert.equal(ourError(() => job.dismiss()), qmpError(await qsd.execute('job-dismiss', { id: 'j1' })));
  assert.equal(ourError(() => job.resume()), qmpError(await qsd.execute('job-resume', { id: 'j1' })));
  await qsd.waitForStatus('null');
  assert.equal((await job.done).status, 'completed');
  assert.deepEqual(log.names, qsd.names);
  assert.deepEqual(log.find('BLOCK_JOB_ERROR'), qsd.events.find((event) => event.event === 'BLOCK_JOB_ERROR'));
});

test('on-target-error=report: same events and error text as qsd', LIMIT, async (t) => {
  const qsd = await QsdMonitor.start(t, await errorDevices(t, false));
  await qsd.execute('blockdev-backup', { 'job-id': 'j1', device: 'src', target: 'tgt', sync: 'full', 'on-target-error': 'report' });
  await qsd.waitForStatus('null');
  const { job, log } = ourJob({ chunks: 4, policy: 'report', failures: new Map([[1, Infinity]]), failError: EIO });
  job.start();
  await job.done;
  assert.deepEqual(log.names, qsd.names);
  const theirs = qsd.events.find((event) => event.event === 'BLOCK_JOB_COMPLETED')!.data;
  assert.equal(log.find('BLOCK_JOB_COMPLETED')!.data.error, theirs.error);
});
