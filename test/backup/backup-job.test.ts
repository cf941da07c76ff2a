import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BlockGraph } from '../../src/block/block-graph.js';
import { createImage } from '../../src/block/image-file.js';
import { startBackup } from '../../src/backup/start-backup.js';
import { JobRegistry } from '../../src/job/job-registry.js';
import type { JobEvent } from '../../src/job/job.js';
import { LivebackupError } from '../../src/errors.js';
import { BlkdebugDriver, type BlkdebugRule } from '../../src/block/drivers/blkdebug.js';
import { SeededRandom } from '../helpers/random.js';
import { tempDir } from '../helpers/temp-dir.js';
import { MemoryDriver, memoryNode, writableNodeOver } from '../helpers/memory-driver.js';
import type { BlockNode } from '../../src/block/block-node.js';
import type { TestContext } from 'node:test';

const MiB = 1024 * 1024;

interface Setup {
  graph: BlockGraph;
  source: BlockNode;
  target: BlockNode;
  sourcePath: string;
  targetPath: string;
  pointInTime: Buffer;
}

/** A raw source with random content and an empty raw target, optionally behind blkdebug nodes. */
async function setup(t: TestContext, size = 8 * MiB, faults: { source?: BlkdebugRule[]; target?: BlkdebugRule[] } = {}): Promise<Setup> {
  const dir = await tempDir(t);
  const sourcePath = join(dir, 'source.raw');
  const targetPath = join(dir, 'target.raw');
  const pointInTime = Buffer.from(new SeededRandom(size).bytes(size));
  pointInTime.fill(0, MiB, 2 * MiB);
  await writeFile(sourcePath, pointInTime);
  await createImage(targetPath, 'raw', size);
  const graph = new BlockGraph();
  const rawOf = (path: string) => ({ driver: 'raw', discard: 'unmap', file: { driver: 'file', filename: path } });
  const wrap = (path: string, rules: BlkdebugRule[] | undefined, name: string) =>
    graph.open(rules ? { driver: 'blkdebug', 'node-name': name, 'inject-error': rules, image: rawOf(path) } : { ...rawOf(path), 'node-name': name });
  const source = await wrap(sourcePath, faults.source, 'src');
  const target = await wrap(targetPath, faults.target, 'tgt');
  t.after(() => graph.closeAll());
  return { graph, source, target, sourcePath, targetPath, pointInTime };
}

function recordEvents(job: { onEvent(listener: (event: JobEvent) => void): () => void }): JobEvent[] {
  const events: JobEvent[] = [];
  job.onEvent((event) => events.push(event));
  return events;
}

function statuses(events: JobEvent[]): string[] {
  return events.map((event) => (event.event === 'JOB_STATUS_CHANGE' ? event.data.status : event.event));
}

async function targetEquals(s: Setup): Promise<boolean> {
  return (await readFile(s.targetPath)).equals(s.pointInTime);
}

test('full backup completes exact, with BLOCK_JOB_COMPLETED len = offset = size', async (t) => {
  const s = await setup(t);
  const job = startBackup({ source: s.source, target: s.target, sync: 'full', jobId: 'j1' });
  const events = recordEvents(job);
  const result = await job.done;
  assert.equal(result.status, 'completed');
  const completed = events.find((event) => event.event === 'BLOCK_JOB_COMPLETED');
  assert.deepEqual(completed?.data, { type: 'backup', device: 'j1', len: 8 * MiB, offset: 8 * MiB, speed: 0 });
  assert.ok(await targetEquals(s));
  assert.equal(s.source.busyReason, undefined, 'the source is released after the job');
});

test('writes during the job copy the old data first (copy-before-write)', async (t) => {
  const s = await setup(t);
  const job = startBackup({ source: s.source, target: s.target, sync: 'full', speed: 4 * MiB, maxWorkers: 1 });
  const random = new SeededRandom(7);
  for (let i = 0; i < 20; i++) {
    const offset = random.int(0, 8 * MiB - 70000);
    await s.source.write(offset, random.bytes(random.int(1, 70000)));
  }
  if (job.status === 'running') job.setSpeed(0);
  assert.equal((await job.done).status, 'completed');
  assert.ok(job.cowStats.copies > 0);
  assert.ok(await targetEquals(s));
});

test('cancel mid-way ends with BLOCK_JOB_CANCELLED and offset < len', async (t) => {
  const s = await setup(t);
  const job = startBackup({ source: s.source, target: s.target, sync: 'full', speed: 2 * MiB, maxWorkers: 1, maxChunk: 64 * 1024 });
  const events = recordEvents(job);
  await new Promise((resolve) => setTimeout(resolve, 50));
  job.cancel();
  assert.equal((await job.done).status, 'cancelled');
  const cancelled = events.find((event) => event.event === 'BLOCK_JOB_CANCELLED');
  assert.ok(cancelled && cancelled.event === 'BLOCK_JOB_CANCELLED');
  assert.ok(cancelled.data.offset < cancelled.data.len, `offset ${cancelled.data.offset} len ${cancelled.data.len}`);
  assert.deepEqual(statuses(events).slice(-4), ['aborting', 'BLOCK_JOB_CANCELLED', 'concluded', 'null']);
});

test('pause freezes progress; resume completes exact; set-speed shows in info', async (t) => {
  const s = await setup(t);
  const job = startBackup({ source: s.source, target: s.target, sync: 'full', speed: 8 * MiB, maxWorkers: 2, maxChunk: 64 * 1024 });
  await new Promise((resolve) => setTimeout(resolve, 30));
  job.pause();
  await new Promise((resolve) => setTimeout(resolve, 60));
  const frozen = job.progressCurrent;
  assert.equal(job.status, 'paused');
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal(job.progressCurrent, frozen, 'progress moved while paused');
  job.setSpeed(123456);
  assert.equal(job.info().speed, 123456);
  job.setSpeed(0);
  job.resume();
  assert.equal((await job.done).status, 'completed');
  assert.ok(await targetEquals(s));
});

test('refusals: same node, size mismatch, busy source, duplicate job id, negative speed', async (t) => {
  const s = await setup(t);
  assert.throws(() => startBackup({ source: s.source, target: s.source, sync: 'full' }), /Source and target cannot be the same/);
  const small = await s.graph.open({ driver: 'null-co', 'node-name': 'small', size: 4096 });
  assert.throws(() => startBackup({ source: s.source, target: small, sync: 'full' }), /Source and target image have different sizes/);
  assert.throws(() => startBackup({ source: s.source, target: s.target, sync: 'full', speed: -1 }), /Parameter 'speed' expects a non-negative value/);
  const registry = new JobRegistry();
  const other = await s.graph.open({ driver: 'null-co', 'node-name': 'other', size: 8 * MiB });
  const job = startBackup({ source: s.source, target: s.target, sync: 'none', jobId: 'dup', registry });
  assert.throws(() => startBackup({ source: other, target: s.target, sync: 'full', jobId: 'x', registry }), /is busy: block device is in use by block job: backup/);
  const third = await s.graph.open({ driver: 'null-co', 'node-name': 'third', size: 8 * MiB });
  assert.throws(() => startBackup({ source: other, target: third, sync: 'full', jobId: 'dup', registry }), (e: unknown) => e instanceof LivebackupError && e.code === 'ALREADY_EXISTS');
  job.cancel();
  await job.done;
});

test('auto-dismiss=false stays concluded until dismiss; auto-finalize=false waits in pending until finalize', async (t) => {
  const s = await setup(t);
  const job = startBackup({ source: s.source, target: s.target, sync: 'full', autoFinalize: false, autoDismiss: false });
  const events = recordEvents(job);
  while (job.status !== 'pending') await new Promise((resolve) => setTimeout(resolve, 5));
  assert.ok(events.some((event) => event.event === 'BLOCK_JOB_PENDING'));
  assert.throws(() => job.dismiss(), /Job '.*' in state 'pending' cannot accept command verb 'dismiss'/);
  job.finalize();
  const result = await job.done;
  assert.equal(result.status, 'completed');
  assert.equal(job.status, 'concluded');
  job.dismiss();
  assert.equal(job.status, 'null');
  assert.ok(await targetEquals(s));
});

test('on-target-error=stop with an injected EIO: BLOCK_JOB_ERROR, paused, dismiss refused, resume completes exact', async (t) => {
  const s = await setup(t, 8 * MiB, { target: [{ event: 'write_aio', errno: 5, sector: 4096, once: true }] });
  const job = startBackup({ source: s.source, target: s.target, sync: 'full', onTargetError: 'stop', jobId: 'j1' });
  const events = recordEvents(job);
  while (!events.some((event) => event.event === 'BLOCK_JOB_ERROR')) await new Promise((resolve) => setTimeout(resolve, 5));
  const error = events.find((event) => event.event === 'BLOCK_JOB_ERROR');
  assert.deepEqual(error?.data, { device: 'j1', operation: 'write', action: 'stop' });
  while (job.status !== 'paused') await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(job.ioStatus, 'failed');
  assert.throws(() => job.dismiss(), /Job 'j1' in state 'paused' cannot accept command verb 'dismiss'/);
  job.resume();
  assert.equal((await job.done).status, 'completed');
  assert.ok(await targetEquals(s));
});

test('on-source-error=report fails the job with the error text', async (t) => {
  const s = await setup(t, 8 * MiB, { source: [{ event: 'read_aio', errno: 5, sector: 8192 }] });
  const job = startBackup({ source: s.source, target: s.target, sync: 'full' });
  const events = recordEvents(job);
  const result = await job.done;
  assert.equal(result.status, 'failed');
  const completed = events.find((event) => event.event === 'BLOCK_JOB_COMPLETED');
  assert.ok(completed && completed.event === 'BLOCK_JOB_COMPLETED' && /Input\/output error/.test(completed.data.error ?? ''), JSON.stringify(completed));
  assert.ok(events.some((event) => event.event === 'BLOCK_JOB_ERROR' && event.data.action === 'report' && event.data.operation === 'read'));
});

test('on-target-error=ignore retries and completes exact once the fault is gone', async (t) => {
  const s = await setup(t, 8 * MiB, { target: [{ event: 'write_aio', errno: 28, sector: 100, once: true }] });
  const job = startBackup({ source: s.source, target: s.target, sync: 'full', onTargetError: 'ignore' });
  const events = recordEvents(job);
  assert.equal((await job.done).status, 'completed');
  assert.ok(events.some((event) => event.event === 'BLOCK_JOB_ERROR' && event.data.action === 'ignore'));
  assert.ok(await targetEquals(s));
});

test('a failed copy-before-write fails the guest write with EIO and the target stays point-in-time exact', async (t) => {
  const s = await setup(t, 8 * MiB, { target: [] });
  const debug = s.target.driver as BlkdebugDriver;
  const job = startBackup({ source: s.source, target: s.target, sync: 'full', speed: 1024 * 1024, maxWorkers: 1, maxChunk: 64 * 1024, onTargetError: 'ignore' });
  // The tail of the disk is not copied yet at this speed; make its copy fail once.
  debug.rules.push({ event: 'write_aio', errno: 5, sector: (7 * MiB) / 512, once: true });
  await assert.rejects(s.source.write(7 * MiB, Buffer.alloc(4096, 0xee)), (e: unknown) => e instanceof LivebackupError && e.errno === 'EIO');
  // The refused write did not happen, so the source still holds the point-in-time data there.
  const check = Buffer.alloc(4096);
  await s.source.read(7 * MiB, check);
  assert.ok(check.equals(s.pointInTime.subarray(7 * MiB, 7 * MiB + 4096)));
  await s.source.write(7 * MiB + 100, Buffer.alloc(10, 0xdd));
  if (job.status === 'running') job.setSpeed(0);
  assert.equal((await job.done).status, 'completed');
  assert.ok(await targetEquals(s));
});

test('a write in flight when the job starts lands whole in the backup, never half (the job waits for it)', async () => {
  const size = MiB;
  let reachedHalfway!: () => void;
  const halfway = new Promise<void>((resolve) => (reachedHalfway = resolve));
  /** Lands the first half of each write, pauses, then the second half: a write caught in flight is torn. */
  class TearingDriver extends MemoryDriver {
    override async write(offset: number, buf: Uint8Array): Promise<void> {
      const half = buf.length / 2;
      this.data.set(buf.subarray(0, half), offset);
      reachedHalfway();
      await new Promise((resolve) => setTimeout(resolve, 30));
      this.data.set(buf.subarray(half), offset + half);
    }
  }
  const source = writableNodeOver(new TearingDriver(size), size, 'torn');
  const { node: target } = memoryNode(size);
  const write = source.write(0, new Uint8Array(128 * 1024).fill(7));
  await halfway;
  const job = startBackup({ source, target, sync: 'full', jobId: 'torn-backup' });
  await write;
  const result = await job.done;
  assert.equal(result.status, 'completed');
  const copied = new Uint8Array(128 * 1024);
  await target.read(0, copied);
  assert.ok(copied.every((byte) => byte === 7), `the backup holds a torn write: byte ${copied.findIndex((byte) => byte !== 7)} differs`);
});
