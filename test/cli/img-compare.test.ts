import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { qemuImgCompare, runOk, skipUnlessTools } from '../helpers/tools.js';
import { tempDir } from '../helpers/temp-dir.js';
import { SeededRandom } from '../helpers/random.js';
import { livebackup } from './cli-runner.js';
import { patternFile, qemuIo } from './qemu-images.js';

const needsQemu = { skip: skipUnlessTools('qemu-img', 'qemu-io') };

const MIB = 1024 * 1024;

/** A raw image of `size` bytes with seeded random data in a few places. */
async function randomRaw(dir: string, name: string, size: number, seed: number): Promise<string> {
  const random = new SeededRandom(seed);
  const file = join(dir, name);
  await runOk('qemu-img', ['create', '-f', 'raw', file, String(size)]);
  const pattern = await patternFile(dir, `${name}.pattern`, random, MIB);
  const commands: string[] = [];
  for (let index = 0; index < 6; index++) {
    const length = random.int(1, MIB);
    commands.push(`write -s ${pattern} ${random.int(0, size - length)} ${length}`);
  }
  await qemuIo(file, 'raw', commands);
  return file;
}

async function expectCompare(a: string, b: string, code: number, stdout: string, extra: string[] = []): Promise<void> {
  const result = await livebackup('img', 'compare', ...extra, a, b);
  assert.equal(result.stderr, '', `stderr of compare ${a} ${b}`);
  assert.equal(result.stdout, stdout, `stdout of compare ${a} ${b}`);
  assert.equal(result.code, code, `exit code of compare ${a} ${b}`);
}

test('img compare: identical copies, then the exact first differing byte', needsQemu, async (t) => {
  const dir = await tempDir(t);
  const size = 9 * MIB + 4096;
  const a = await randomRaw(dir, 'a.raw', size, 11);
  const b = join(dir, 'b.raw');
  await runOk('cp', ['--sparse=always', a, b]);
  await expectCompare(a, b, 0, 'Images are identical.\n');

  const content = await readFile(a);
  const random = new SeededRandom(12);
  for (let round = 0; round < 3; round++) {
    const offset = random.int(0, size - 1);
    const copy = join(dir, `c${round}.raw`);
    await runOk('cp', ['--sparse=always', a, copy]);
    // Change one byte at offset, and a later one, and make sure the first is reported.
    await qemuIo(copy, 'raw', [`write -P 0x5a ${offset} 1`, `write -P 0xa5 ${Math.min(size - 1, offset + 5000)} 1`]);
    if (content[offset] === 0x5a) continue; // the byte already was 0x5a: no difference there
    await expectCompare(a, copy, 1, `Content mismatch at offset ${offset}!\n`);
    await expectCompare(copy, a, 1, `Content mismatch at offset ${offset}!\n`);
    assert.equal(await qemuImgCompare(a, copy), false);
  }
});

test('img compare with different sizes: a zero tail is identical, a non-zero tail is not', needsQemu, async (t) => {
  const dir = await tempDir(t);
  const short = await randomRaw(dir, 'short.raw', 3 * MIB, 21);
  const long = join(dir, 'long.raw');
  await runOk('cp', ['--sparse=always', short, long]);
  await runOk('truncate', ['-s', String(7 * MIB + 512), long]);
  await expectCompare(short, long, 0, 'Warning: Image size mismatch!\nImages are identical.\n');
  await expectCompare(long, short, 0, 'Warning: Image size mismatch!\nImages are identical.\n');
  assert.equal(await qemuImgCompare(short, long), true);

  const tailOffset = 5 * MIB + 777;
  await qemuIo(long, 'raw', [`write -P 1 ${tailOffset} 10`]);
  await expectCompare(short, long, 1, `Warning: Image size mismatch!\nContent mismatch at offset ${tailOffset}!\n`);
  await expectCompare(long, short, 1, `Warning: Image size mismatch!\nContent mismatch at offset ${tailOffset}!\n`);
  assert.equal(await qemuImgCompare(short, long), false);
  // -q: only the exit code.
  await expectCompare(short, long, 1, '', ['-q']);
  await expectCompare(short, short, 0, '', ['-q']);
});

test('img compare across formats: a qcow2 chain equals its flattened raw copy', needsQemu, async (t) => {
  const dir = await tempDir(t);
  const random = new SeededRandom(31);
  const base = join(dir, 'base.qcow2');
  const top = join(dir, 'top.qcow2');
  await runOk('qemu-img', ['create', '-f', 'qcow2', base, '24M']);
  await runOk('qemu-img', ['create', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', top]);
  const pattern = await patternFile(dir, 'pattern.bin', random, 2 * MIB);
  await qemuIo(base, 'qcow2', [`write -s ${pattern} 0 2M`, `write -s ${pattern} 10M 1M`, 'write -z 20M 1M']);
  await qemuIo(top, 'qcow2', [`write -s ${pattern} 1M 2M`, 'write -z 10M 64k', `write -s ${pattern} 23M 1M`]);
  const flat = join(dir, 'flat.raw');
  await runOk('qemu-img', ['convert', '-O', 'raw', top, flat]);
  await expectCompare(top, flat, 0, 'Images are identical.\n');
  await expectCompare(flat, top, 0, 'Images are identical.\n', ['-f', 'raw', '-F', 'qcow2']);
  // The base alone differs from the chain where the overlay wrote: first at 1M + the first differing byte.
  const result = await livebackup('img', 'compare', base, top);
  assert.equal(result.code, 1);
  const offset = Number(/Content mismatch at offset (\d+)!/.exec(result.stdout)?.[1]);
  assert.ok(offset >= MIB && offset < 3 * MIB, result.stdout);
});

test('img compare errors exit 2: missing file, unknown format, missing argument', async (t) => {
  const dir = await tempDir(t);
  const present = join(dir, 'present.raw');
  await runOk('truncate', ['-s', '1M', present]);
  const missing = join(dir, 'missing.raw');
  for (const args of [
    [present, missing],
    [missing, present],
  ]) {
    const result = await livebackup('img', 'compare', ...args);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, `livebackup: Could not open '${missing}': No such file or directory\n`);
    assert.equal(result.stdout, '');
  }
  const unknown = await livebackup('img', 'compare', '-F', 'nbd-magic', present, present);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /Unknown image format 'nbd-magic'/);
  const usage = await livebackup('img', 'compare', present);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /missing required argument 'file2'/);
});
