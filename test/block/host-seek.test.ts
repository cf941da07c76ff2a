import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, writeSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import { hostSeek, hostSeekUnavailableReason } from '../../src/block/host-seek.js';
import { tempDir } from '../helpers/temp-dir.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Skip (with the reason) when the helper is not loaded; under CI the dedicated test below fails instead. */
const needsHelper = { skip: hostSeek ? false : `native SEEK_DATA helper not loaded: ${hostSeekUnavailableReason}` };

test('under CI the native SEEK_DATA helper is built and loaded', () => {
  if (process.env.CI !== 'true') {
    if (!hostSeek) console.log(`# native SEEK_DATA helper not loaded: ${hostSeekUnavailableReason}`);
    return;
  }
  assert.ok(hostSeek, `native SEEK_DATA helper not loaded under CI: ${hostSeekUnavailableReason}`);
});

/** A sparse file of `size` bytes with `extents` ([offset, length], 4 KiB aligned) written; returns an open fd. */
async function sparseFile(t: Parameters<typeof tempDir>[0], size: number, extents: ReadonlyArray<readonly [number, number]>): Promise<number> {
  const path = join(await tempDir(t), 'sparse.raw');
  const fd = openSync(path, 'w+');
  t.after(() => closeSync(fd));
  ftruncateSync(fd, size);
  for (const [offset, length] of extents) writeSync(fd, new Uint8Array(length).fill(0xa5), 0, length, offset);
  return fd;
}

test('seekData and seekHole find the extents of a sparse file', needsHelper, async (t) => {
  const size = 16 * MiB;
  const fd = await sparseFile(t, size, [
    [1 * MiB, 64 * KiB],
    [8 * MiB, 1 * MiB],
  ]);
  const seek = hostSeek!;
  assert.equal(seek.seekData(fd, 0), 1 * MiB);
  assert.equal(seek.seekHole(fd, 0), 0);
  assert.equal(seek.seekData(fd, 1 * MiB + 100), 1 * MiB + 100, 'inside data: the offset itself');
  assert.equal(seek.seekHole(fd, 1 * MiB), 1 * MiB + 64 * KiB);
  assert.equal(seek.seekData(fd, 1 * MiB + 64 * KiB), 8 * MiB);
  assert.equal(seek.seekHole(fd, 8 * MiB + 5), 9 * MiB);
  assert.equal(seek.seekHole(fd, 9 * MiB), 9 * MiB, 'inside a hole: the offset itself');
  assert.equal(seek.seekData(fd, 9 * MiB), -1, 'only a hole up to the end: ENXIO');
  assert.equal(seek.seekHole(fd, size - 1), size - 1);
});

test('a file ending in data: the end of the file is the last hole; at or past the end both return -1', needsHelper, async (t) => {
  const size = 4 * MiB;
  const fd = await sparseFile(t, size, [[size - 64 * KiB, 64 * KiB]]);
  const seek = hostSeek!;
  assert.equal(seek.seekData(fd, 0), size - 64 * KiB);
  assert.equal(seek.seekHole(fd, size - 64 * KiB), size, 'the end of the file counts as a hole');
  assert.equal(seek.seekData(fd, size), -1);
  assert.equal(seek.seekHole(fd, size), -1);
  assert.equal(seek.seekData(fd, size + 12345), -1);
  assert.equal(seek.seekHole(fd, 2 ** 52), -1);
});

test('an empty file has neither data nor holes', needsHelper, async (t) => {
  const fd = await sparseFile(t, 0, []);
  assert.equal(hostSeek!.seekData(fd, 0), -1);
  assert.equal(hostSeek!.seekHole(fd, 0), -1);
});

test('a file descriptor that is not open throws with code EBADF', needsHelper, async (t) => {
  const fd = await sparseFile(t, MiB, []);
  for (const bad of [1_000_000, 2_000_000_000]) {
    assert.throws(() => hostSeek!.seekData(bad, 0), (error: NodeJS.ErrnoException) => error.code === 'EBADF' && /SEEK_DATA/.test(error.message));
    assert.throws(() => hostSeek!.seekHole(bad, 0), (error: NodeJS.ErrnoException) => error.code === 'EBADF' && /SEEK_HOLE/.test(error.message));
  }
  assert.equal(hostSeek!.seekHole(fd, 0), 0, 'the open fd still works');
});

test('a file that cannot seek (a pipe) throws with code ESPIPE', needsHelper, async (t) => {
  const path = join(await tempDir(t), 'fifo');
  assert.equal(spawnSync('mkfifo', [path]).status, 0);
  const fd = openSync(path, 'r+');
  t.after(() => closeSync(fd));
  assert.throws(() => hostSeek!.seekData(fd, 0), (error: NodeJS.ErrnoException) => error.code === 'ESPIPE');
});

test('arguments that are not non-negative safe integers throw a TypeError', needsHelper, async (t) => {
  const fd = await sparseFile(t, MiB, []);
  const seek = hostSeek as unknown as { seekData(...args: unknown[]): number; seekHole(...args: unknown[]): number };
  const badOffsets: unknown[] = [-1, 1.5, Number.NaN, Infinity, 2 ** 53, '0', undefined, null, 0n, {}];
  for (const offset of badOffsets) {
    assert.throws(() => seek.seekData(fd, offset), TypeError, `offset ${String(offset)}`);
    assert.throws(() => seek.seekHole(fd, offset), TypeError, `offset ${String(offset)}`);
  }
  for (const badFd of [-1, 0.5, 2 ** 31, '3', Number.NaN]) {
    assert.throws(() => seek.seekData(badFd, 0), TypeError, `fd ${String(badFd)}`);
  }
  assert.throws(() => seek.seekData(fd), TypeError);
  assert.throws(() => seek.seekHole(), TypeError);
});
