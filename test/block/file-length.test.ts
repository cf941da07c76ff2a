import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../helpers/temp-dir.js';
import { run, runOk, qemuImgCompare, skipUnlessTools } from '../helpers/tools.js';
import { CLI_MAIN } from '../cli/cli-runner.js';

/** Our CLI's stdout, failing the test on a non-zero exit. */
async function livebackup(...args: string[]): Promise<string> {
  const result = await run(process.execPath, [CLI_MAIN, ...args]);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout;
}

test('a raw file whose size is not a multiple of 512 is as long as QEMU says: info, map and backup agree with qemu-img', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const dir = await tempDir(t);
  for (const size of [1, 511, 513, 1000, 4097, 65537]) {
    const path = join(dir, `odd-${size}.raw`);
    await writeFile(path, randomBytes(size));
    const theirs = JSON.parse(await runOk('qemu-img', ['info', '--output=json', '-f', 'raw', path])) as { 'virtual-size': number };
    const ours = JSON.parse(await livebackup('img', 'info', '--output=json', '-f', 'raw', path)) as { 'virtual-size': number };
    assert.equal(ours['virtual-size'], theirs['virtual-size'], `virtual size of a ${size}-byte file`);
    assert.equal(ours['virtual-size'] % 512, 0);
    const theirMap = JSON.parse(await runOk('qemu-img', ['map', '--output=json', '-f', 'raw', path])) as unknown[];
    const ourMap = JSON.parse(await livebackup('img', 'map', '--output=json', '-f', 'raw', path)) as unknown[];
    assert.deepEqual(ourMap, theirMap, `map of a ${size}-byte file`);
    const target = join(dir, `backup-${size}.qcow2`);
    await livebackup('backup', '--no-progress', path, target);
    assert.ok(await qemuImgCompare(path, target, 'raw', 'qcow2'), `backup of a ${size}-byte file differs`);
    assert.equal((await stat(path)).size, size, 'the source file is not changed');
  }
});

test('-f file opens the file protocol itself, as qemu-img does: info and map are the same', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'plain.img');
  await writeFile(path, randomBytes(3000));
  for (const args of [['info', '--output=json'], ['map', '--output=json'], ['map']]) {
    const theirs = await runOk('qemu-img', [...args, '-f', 'file', path]);
    const ours = await livebackup('img', ...args, '-f', 'file', path);
    assert.deepEqual(args.includes('--output=json') ? JSON.parse(ours) : ours, args.includes('--output=json') ? JSON.parse(theirs) : theirs, `img ${args.join(' ')} -f file`);
  }
});
