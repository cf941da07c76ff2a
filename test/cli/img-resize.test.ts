import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { qemuImgCheck, qemuImgCompare, runOk, skipUnlessTools } from '../helpers/tools.js';
import { tempDir } from '../helpers/temp-dir.js';
import { SeededRandom } from '../helpers/random.js';
import { livebackup, livebackupOk } from './cli-runner.js';
import { patternFile, qemuImgInfo, qemuIo } from './qemu-images.js';

const needsQemu = { skip: skipUnlessTools('qemu-img', 'qemu-io') };
const MIB = 1024 * 1024;

/** An image of `format` with seeded random data at a few places, and a copy of it as it was. */
async function imageWithData(dir: string, format: string, seed: number): Promise<{ file: string; before: string }> {
  const file = join(dir, `disk.${format}`);
  await runOk('qemu-img', ['create', '-f', format, file, '8M']);
  const pattern = await patternFile(dir, 'pattern.bin', new SeededRandom(seed), MIB);
  await qemuIo(file, format, [`write -s ${pattern} 0 1M`, `write -s ${pattern} 5M 512k`, `write -s ${pattern} ${8 * MIB - 4096} 4096`]);
  const before = join(dir, `before.${format}`);
  await copyFile(file, before);
  return { file, before };
}

test('img resize grows qcow2 and raw images: qemu-img sees the new size, the old content, zeroes after it', needsQemu, async (t) => {
  for (const [format, seed] of [
    ['qcow2', 1],
    ['raw', 2],
  ] as const) {
    const dir = await tempDir(t);
    const { file, before } = await imageWithData(dir, format, seed);
    assert.equal(await livebackupOk('img', 'resize', file, '+24M'), 'Image resized.\n');
    assert.equal((await qemuImgInfo(file))['virtual-size'], 32 * MIB, format);
    assert.equal(await livebackupOk('img', 'resize', file, '40M'), 'Image resized.\n');
    assert.equal((await qemuImgInfo(file))['virtual-size'], 40 * MIB, format);
    // Identical over the old size, zeroes after it.
    assert.equal(await qemuImgCompare(before, file, format, format), true, format);
    if (format === 'qcow2') assert.equal((await qemuImgCheck(file)).code, 0);
  }
});

test('img resize --shrink shrinks raw images; without it, or on qcow2, shrinking is refused', needsQemu, async (t) => {
  const dir = await tempDir(t);
  const raw = await imageWithData(dir, 'raw', 3);
  const refused = await livebackup('img', 'resize', raw.file, '4M');
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /Use the --shrink option/);
  assert.equal((await stat(raw.file)).size, 8 * MIB, 'a refused shrink leaves the image alone');

  assert.equal(await livebackupOk('img', 'resize', '--shrink', raw.file, '--', '-3M'), 'Image resized.\n');
  assert.equal((await qemuImgInfo(raw.file))['virtual-size'], 5 * MIB);
  const shortened = join(dir, 'shortened.raw');
  await copyFile(raw.before, shortened);
  await runOk('truncate', ['-s', String(5 * MIB), shortened]);
  assert.equal(await qemuImgCompare(shortened, raw.file, 'raw', 'raw'), true);

  const qcow2 = join(dir, 'disk.qcow2');
  await runOk('qemu-img', ['create', '-f', 'qcow2', qcow2, '8M']);
  const unsupported = await livebackup('img', 'resize', '--shrink', qcow2, '4M');
  assert.equal(unsupported.code, 1);
  assert.match(unsupported.stderr, /shrinking qcow2 image .* is not supported/);
  assert.equal((await qemuImgInfo(qcow2))['virtual-size'], 8 * MIB);
});

test('img resize argument errors exit 2 naming the bad value', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'small.raw');
  await runOk('truncate', ['-s', '1M', file]);
  for (const [args, message] of [
    [[file, '1X'], /Invalid image size '1X'/],
    [[file, '--', '-2M'], /Invalid image size change '-2M': the image has only 1048576 bytes/],
    [[file], /missing required argument 'size'/],
  ] as const) {
    const result = await livebackup('img', 'resize', ...args);
    assert.equal(result.code, 2, args.join(' '));
    assert.match(result.stderr, message);
  }
  const missing = await livebackup('img', 'resize', join(dir, 'nope.raw'), '2M');
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /nope\.raw': No such file or directory/);
});
