import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BlockGraph } from '../../src/block/block-graph.js';
import type { BlockNode } from '../../src/block/block-node.js';
import { createImage, openImage } from '../../src/block/image-file.js';
import { hostSeek, hostSeekUnavailableReason } from '../../src/block/host-seek.js';
import { startBackup } from '../../src/backup/start-backup.js';
import { collectImageMap, renderImageMapJson } from '../../src/cli/image-map.js';
import { SeededRandom } from '../helpers/random.js';
import { tempDir } from '../helpers/temp-dir.js';
import { runOk, qemuImgCompare, skipUnlessTools, type QemuMapEntry } from '../helpers/tools.js';
import { CLI_MAIN } from '../cli/cli-runner.js';

const execFileAsync = promisify(execFile);

const KiB = 1024;
const MiB = 1024 * KiB;

const helperSkip = hostSeek ? false : `native SEEK_DATA helper not loaded: ${hostSeekUnavailableReason}`;
/** Needs the helper (under CI it must be there: see host-seek.test.ts) and qemu-img. */
const needsHelperAndQemu = { skip: helperSkip || skipUnlessTools('qemu-img') };

/** Write a sparse file: `size` bytes, with seeded random bytes over each [offset, length] extent. */
function writeSparseFile(path: string, size: number, extents: ReadonlyArray<readonly [number, number]>, random: SeededRandom): void {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, size);
    for (const [offset, length] of extents) {
      const bytes = random.bytes(length);
      bytes[0] = 0xff; // never a block that happens to be all zero
      writeSync(fd, bytes, 0, length, offset);
    }
  } finally {
    closeSync(fd);
  }
}

async function openRaw(t: TestContext, path: string): Promise<{ graph: BlockGraph; raw: BlockNode; file: BlockNode }> {
  const graph = new BlockGraph();
  t.after(() => graph.closeAll());
  const raw = await openImage(path, { graph, format: 'raw', nodeName: 'disk', readOnly: true });
  const file = raw.children().find((link) => link.role === 'file')!.node;
  return { graph, raw, file };
}

async function qemuMap(path: string): Promise<QemuMapEntry[]> {
  return JSON.parse(await runOk('qemu-img', ['map', '--output=json', '-U', '-f', 'raw', path])) as QemuMapEntry[];
}

/** The data/zero runs of `node` by walking its block status (adjacent equal runs merged). */
async function statusRuns(node: BlockNode): Promise<Array<{ start: number; length: number; data: boolean; zero: boolean }>> {
  const runs: Array<{ start: number; length: number; data: boolean; zero: boolean }> = [];
  for (let position = 0; position < node.length; ) {
    const status = await node.blockStatus(position, node.length - position);
    assert.ok(status.bytes >= 1 && status.bytes <= node.length - position, `run length ${status.bytes} at ${position}`);
    const last = runs.at(-1);
    if (last && last.data === status.data && last.zero === status.zero) last.length += status.bytes;
    else runs.push({ start: position, length: status.bytes, data: status.data, zero: status.zero });
    position += status.bytes;
  }
  return runs;
}

/** Compare our raw node's map (JSON text too) and our file node's block status of `path` with qemu-img map's. */
async function assertMapsMatchQemu(t: TestContext, path: string, label: string): Promise<void> {
  const theirsText = await runOk('qemu-img', ['map', '--output=json', '-U', '-f', 'raw', path]);
  const theirs = JSON.parse(theirsText) as QemuMapEntry[];
  const { raw, file } = await openRaw(t, path);
  const ourMap = await collectImageMap(raw);
  assert.deepEqual(
    ourMap.map(({ host: _host, ...entry }) => entry),
    theirs,
    `${label}: raw node map`,
  );
  assert.equal(renderImageMapJson(ourMap), theirsText.endsWith('\n') ? theirsText : `${theirsText}\n`, `${label}: JSON text`);
  assert.deepEqual(
    await statusRuns(file),
    theirs.map(({ start, length, data, zero }) => ({ start, length, data, zero })),
    `${label}: file node block status`,
  );
}

test('block status of a sparse raw file: holes are zero, data runs end at the next hole, like qemu-img map', needsHelperAndQemu, async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'sparse.raw');
  // Hole first, data in the middle, a 1-block extent, and data up to an end that is not 4 KiB aligned.
  // (Sizes stay multiples of 512: QEMU rounds a raw file's length up to one, livebackup does not.)
  const size = 32 * MiB + 1024;
  writeSparseFile(
    path,
    size,
    [
      [1 * MiB, 64 * KiB],
      [4 * MiB, 3 * MiB],
      [20 * MiB + 8 * KiB, 4 * KiB],
      [32 * MiB - 8 * KiB, 8 * KiB + 1024],
    ],
    new SeededRandom(1),
  );
  await assertMapsMatchQemu(t, path, 'fixed layout');

  const { raw, file } = await openRaw(t, path);
  // Runs are clamped to the requested length, inside holes and inside data.
  assert.deepEqual(pick(await raw.blockStatus(100, 200)), { bytes: 200, data: false, zero: true });
  assert.deepEqual(pick(await raw.blockStatus(1 * MiB + 10, 10)), { bytes: 10, data: true, zero: false });
  assert.deepEqual(pick(await raw.blockStatus(1 * MiB, 10 * MiB)), { bytes: 64 * KiB, data: true, zero: false });
  assert.deepEqual(pick(await raw.blockStatus(1 * MiB + 64 * KiB, 10 * MiB)), { bytes: 3 * MiB - 64 * KiB, data: false, zero: true });
  assert.deepEqual(pick(await raw.blockStatus(7 * MiB, size - 7 * MiB)), { bytes: 13 * MiB + 8 * KiB, data: false, zero: true });
  assert.deepEqual(pick(await file.blockStatus(size - 1, 1)), { bytes: 1, data: true, zero: false });
});

test('a file that shrank under the node: the bytes past its new end read as zeroes and block status says zero', needsHelperAndQemu, async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'shrinking.raw');
  const size = 4 * MiB;
  writeSparseFile(path, size, [[0, size]], new SeededRandom(2));
  const { raw } = await openRaw(t, path);
  assert.deepEqual(pick(await raw.blockStatus(0, size)), { bytes: size, data: true, zero: false });
  await truncate(path, 1 * MiB);
  assert.deepEqual(pick(await raw.blockStatus(0, size)), { bytes: 1 * MiB, data: true, zero: false });
  assert.deepEqual(pick(await raw.blockStatus(1 * MiB, 3 * MiB)), { bytes: 3 * MiB, data: false, zero: true });
  assert.deepEqual(pick(await raw.blockStatus(3 * MiB, 1 * MiB)), { bytes: 1 * MiB, data: false, zero: true });
  const tail = new Uint8Array(3 * MiB).fill(1);
  await raw.read(1 * MiB, tail);
  assert.ok(tail.every((byte) => byte === 0));
});

test('random sparse layouts: block status equals qemu-img map', needsHelperAndQemu, async (t) => {
  const dir = await tempDir(t);
  for (const seed of [11, 12, 13, 14]) {
    const random = new SeededRandom(seed);
    const size = random.int(1, 48) * MiB + 512 * random.pick([0, 0, random.int(1, 7), random.int(1, 128)]);
    const extents: Array<[number, number]> = [];
    for (let count = random.int(1, 24); count > 0; count--) {
      const length = random.pick([random.int(1, 512), random.int(1, 64 * KiB), random.int(1, 3 * MiB)]);
      const offset = random.int(0, Math.max(0, size - length));
      extents.push([offset, Math.min(length, size - offset)]);
    }
    const path = join(dir, `random-${seed}.raw`);
    writeSparseFile(path, size, extents, random);
    await assertMapsMatchQemu(t, path, `seed ${seed} (size ${size}, extents ${JSON.stringify(extents)})`);
  }
});

function pick(status: { bytes: number; data: boolean; zero: boolean }): { bytes: number; data: boolean; zero: boolean } {
  return { bytes: status.bytes, data: status.data, zero: status.zero };
}

/** Allocated bytes of a host file (st_blocks is in 512-byte units). */
async function allocatedBytes(path: string): Promise<number> {
  return (await stat(path)).blocks * 512;
}

/**
 * The most a sparse backup of `extents` may allocate in its target: every
 * chunk of `maxChunk` bytes a data extent touches is written whole (one more
 * when a claim starts inside the grid), plus 1 MiB for copy-before-write of
 * data clusters. A target that is not sparse allocates everything.
 */
function sparseTargetBound(extents: ReadonlyArray<readonly [number, number]>, maxChunk: number): number {
  return extents.reduce((sum, [, length]) => sum + (Math.ceil(length / maxChunk) + 1) * maxChunk, 1 * MiB);
}

/** A 64 MiB sparse raw source with eight data extents (about 6 MiB), from a seed. */
function sparseSource(path: string, seed: number): { size: number; extents: Array<[number, number]> } {
  const random = new SeededRandom(seed);
  const size = 64 * MiB;
  const extents: Array<[number, number]> = [];
  for (let slot = 0; slot < 8; slot++) {
    const length = random.int(4 * KiB, 1536 * KiB);
    extents.push([slot * 8 * MiB + random.int(0, 6 * MiB), length]);
  }
  writeSparseFile(path, size, extents, random);
  return { size, extents };
}

test('a backup of a sparse raw file under guest writes holds the point in time, skips the holes, and keeps the target sparse', needsHelperAndQemu, async (t) => {
  const seed = 21;
  const dir = await tempDir(t);
  const sourcePath = join(dir, 'source.raw');
  const { size, extents } = sparseSource(sourcePath, seed);
  const graph = new BlockGraph();
  t.after(() => graph.closeAll());
  const source = await openImage(sourcePath, { graph, format: 'raw', nodeName: 'source' });
  const pointInTime = new Uint8Array(size);
  await source.read(0, pointInTime);
  const referencePath = join(dir, 'reference.raw');
  await writeFile(referencePath, pointInTime);
  const targetPath = join(dir, 'target.raw');
  await createImage(targetPath, 'raw', size);
  const target = await openImage(targetPath, { graph, format: 'raw', nodeName: 'target' });

  let zeroClaimed = 0;
  const onTask = (message: unknown) => {
    const task = message as { phase: string; bytes: number; zero: boolean };
    if (task.phase === 'start' && task.zero) zeroClaimed += task.bytes;
  };
  subscribe('livebackup:backup:copy-task', onTask);
  t.after(() => unsubscribe('livebackup:backup:copy-task', onTask));

  const maxChunk = 1 * MiB;
  const job = startBackup({ source, target, sync: 'full', maxChunk, maxWorkers: 4, targetZeroInitialized: true, jobId: 'sparse-backup' });
  // Guests write into holes and data alike while the job runs: 2 x 20 writes of at most 64 KiB.
  const writers = [1, 2].map(async (index) => {
    const random = new SeededRandom(seed * 100 + index);
    for (let op = 0; op < 20; op++) {
      const length = random.int(1, 64 * KiB);
      await source.write(random.int(0, size - length), random.bytes(length));
      await new Promise((resolve) => setImmediate(resolve));
    }
  });
  const result = await job.done;
  await Promise.all(writers);
  assert.equal(result.status, 'completed', String(result.error ?? ''));
  await graph.closeAll();

  assert.ok(await qemuImgCompare(referencePath, targetPath, 'raw', 'raw'), `seed ${seed}: target differs from the point in time`);
  // Holes were claimed as zero runs without reading them: all but the data (at most 12 MiB), the data
  // claims' chunk tails (8 x 1 MiB) and the copy-before-write copies (at most 40 x 64 KiB).
  assert.ok(zeroClaimed >= size / 2, `only ${zeroClaimed} bytes were claimed as zero runs`);
  const targetAllocated = await allocatedBytes(targetPath);
  assert.ok(targetAllocated <= sparseTargetBound(extents, maxChunk), `target allocates ${targetAllocated} of ${size} bytes`);
});

/** Run the built CLI in a child process with LIVEBACKUP_NO_SEEK_DATA=1 (the helper is never loaded there); resolves to stdout. */
async function livebackupWithoutSeekData(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(process.execPath, [CLI_MAIN, ...args], {
    env: { ...process.env, LIVEBACKUP_NO_SEEK_DATA: '1' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return stdout;
}

test('with LIVEBACKUP_NO_SEEK_DATA=1 block status reports data everywhere and a backup is still exact', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const dir = await tempDir(t);
  const sourcePath = join(dir, 'source.raw');
  const { size, extents } = sparseSource(sourcePath, 31);
  const map = JSON.parse(await livebackupWithoutSeekData('img', 'map', '--output=json', '-f', 'raw', sourcePath)) as QemuMapEntry[];
  assert.deepEqual(map, [{ start: 0, length: size, depth: 0, present: true, zero: false, data: true, offset: 0 }]);
  const targetPath = join(dir, 'target.raw');
  await livebackupWithoutSeekData('backup', '--no-progress', sourcePath, targetPath);
  assert.ok(await qemuImgCompare(sourcePath, targetPath, 'raw', 'raw'));
  // Without block status the holes are read, found all zero and still not written.
  const targetAllocated = await allocatedBytes(targetPath);
  assert.ok(targetAllocated <= sparseTargetBound(extents, 1 * MiB), `target allocates ${targetAllocated} of ${size} bytes`);
});
