import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JobRegistry } from '../../src/job/job-registry.js';
import { LivebackupError } from '../../src/errors.js';
import { ChunkJob, EventLog } from './chunk-job.js';

function job(id: string, autoDismiss = true): ChunkJob {
  return new ChunkJob({ id, type: 'backup', chunks: 2, chunkBytes: 4096, autoDismiss });
}

function assertError(fn: () => unknown, code: string, message: string): void {
  assert.throws(fn, (error: unknown) => error instanceof LivebackupError && error.code === code && error.message === message);
}

test('JobRegistry: IDs are unique, lookups fail with QEMU\'s texts, list is newest first', () => {
  const registry = new JobRegistry();
  const first = job('j1');
  const second = job('j2');
  registry.add(first);
  registry.add(second);
  assertError(() => registry.add(job('j1')), 'ALREADY_EXISTS', "Job ID 'j1' already in use");
  assert.equal(registry.get('j1'), first);
  assert.equal(registry.require('j2'), second);
  assert.equal(registry.get('nope'), undefined);
  assertError(() => registry.require('nope'), 'NOT_FOUND', 'Job not found');
  assertError(() => registry.requireBlockJob('nope'), 'NOT_FOUND', "Block job 'nope' not found");
  assert.deepEqual(registry.list().map((entry) => entry.id), ['j2', 'j1']);
});

test('JobRegistry: a job leaves on dismissal (auto or manual) and its ID becomes free', async () => {
  const registry = new JobRegistry();
  const log = new EventLog();
  registry.onEvent(log.listener);
  const auto = job('a1');
  registry.add(auto);
  auto.start();
  await auto.done;
  assert.equal(registry.get('a1'), undefined);
  const manual = job('m1', false);
  registry.add(manual);
  manual.start();
  await manual.done;
  assert.equal(registry.require('m1'), manual);
  manual.dismiss();
  assert.equal(registry.get('m1'), undefined);
  assert.deepEqual(registry.list(), []);
  registry.add(job('a1'));
  // Registry listeners see every job's whole sequence, starting with 'created'.
  const sequence = (id: string): string[] => log.events
    .filter((event) => ('id' in event.data ? event.data.id : (event.data as { device: string }).device) === id)
    .map((event) => (event.event === 'JOB_STATUS_CHANGE' ? event.data.status : event.event));
  assert.deepEqual(sequence('m1'), ['created', 'running', 'waiting', 'pending', 'BLOCK_JOB_COMPLETED', 'concluded', 'null']);
  assert.deepEqual(sequence('a1'), ['created', 'running', 'waiting', 'pending', 'BLOCK_JOB_COMPLETED', 'concluded', 'null', 'created']);
});

test('JobRegistry refuses a job that was already dismissed', async () => {
  const registry = new JobRegistry();
  const gone = job('g1');
  gone.cancel();
  await gone.done;
  assertError(() => registry.add(gone), 'INVALID_STATE', "Job 'g1' has already been dismissed");
});
