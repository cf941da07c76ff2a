import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runOk, skipUnlessTools } from '../helpers/tools.js';
import { tempDir } from '../helpers/temp-dir.js';
import { livebackup, livebackupOk } from './cli-runner.js';
import { qemuImgInfo, qemuIo } from './qemu-images.js';

const needsQemu = { skip: skipUnlessTools('qemu-img', 'qemu-io') };

/** The keys of `qemu-img info --output=json` we reproduce exactly (actual-size may differ slightly). */
const EXACT_KEYS = [
  'virtual-size',
  'filename',
  'format',
  'cluster-size',
  'backing-filename',
  'backing-filename-format',
  'full-backing-filename',
  'dirty-flag',
  'format-specific',
];

async function assertInfoMatchesQemu(file: string, format?: string): Promise<Record<string, unknown>> {
  const formatArgs = format ? ['-f', format] : [];
  const ours = JSON.parse(await livebackupOk('img', 'info', '--output=json', ...formatArgs, file)) as Record<string, unknown>;
  const theirs = await qemuImgInfo(file, formatArgs);
  for (const key of EXACT_KEYS) assert.deepEqual(ours[key], theirs[key], `key '${key}' of ${file}`);
  assert.equal(typeof ours['actual-size'], 'number');
  return ours;
}

/** The first lines of `qemu-img info` that do not depend on host allocation. */
function stableHumanLines(text: string): string[] {
  return text.split('\n').filter((line) => line !== '' && !line.startsWith('disk size:'));
}

test('img info on raw images matches qemu-img info (json and human)', needsQemu, async (t) => {
  const dir = await tempDir(t);
  for (const size of ['1M', '1000000', '3G']) {
    const file = join(dir, `disk-${size}.raw`);
    await runOk('qemu-img', ['create', '-f', 'raw', file, size]);
    await qemuIo(file, 'raw', ['write -P 7 0 64k']);
    await assertInfoMatchesQemu(file);
    const ours = await livebackupOk('img', 'info', file);
    const theirs = await runOk('qemu-img', ['info', '-U', file]);
    assert.deepEqual(stableHumanLines(ours), stableHumanLines(theirs));
    assert.match(ours, /^disk size: \d/m);
  }
});

test('img info on qcow2 images with and without a backing file matches qemu-img info', needsQemu, async (t) => {
  const dir = await tempDir(t);
  const base = join(dir, 'base.qcow2');
  await runOk('qemu-img', ['create', '-f', 'qcow2', '-o', 'cluster_size=4096', base, '100M']);
  await qemuIo(base, 'qcow2', ['write -P 1 0 1M', 'write -z 2M 64k']);
  const top = join(dir, 'top.qcow2');
  await runOk('qemu-img', ['create', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', top]);
  const lazy = join(dir, 'lazy.qcow2');
  await runOk('qemu-img', ['create', '-f', 'qcow2', '-o', 'lazy_refcounts=on', lazy, '5G']);

  const baseInfo = await assertInfoMatchesQemu(base);
  assert.equal(baseInfo['cluster-size'], 4096);
  const topInfo = await assertInfoMatchesQemu(top);
  assert.equal(topInfo['backing-filename'], 'base.qcow2');
  await assertInfoMatchesQemu(lazy);
  // Killed while writing with lazy refcounts: the dirty flag stays set.
  const killed = spawnSync('qemu-io', ['-f', 'qcow2', '-c', 'write 0 64k', '-c', 'sigraise 9', lazy], { stdio: 'ignore' });
  assert.equal(killed.signal, 'SIGKILL');
  const dirty = await assertInfoMatchesQemu(lazy);
  assert.equal(dirty['dirty-flag'], true);
  assert.deepEqual(stableHumanLines(await livebackupOk('img', 'info', lazy)), stableHumanLines(await runOk('qemu-img', ['info', '-U', lazy])));
  const v2 = join(dir, 'v2.qcow2');
  await runOk('qemu-img', ['create', '-f', 'qcow2', '-o', 'compat=0.10', v2, '10M']);
  await assertInfoMatchesQemu(v2);

  const ours = await livebackupOk('img', 'info', top);
  const theirs = await runOk('qemu-img', ['info', '-U', top]);
  assert.deepEqual(stableHumanLines(ours), stableHumanLines(theirs));

  // Like qemu-img info, the backing file is not opened: info works without it.
  await rm(base);
  const orphan = await assertInfoMatchesQemu(top);
  assert.equal(orphan['backing-filename'], 'base.qcow2');
});

test('img info --backing-chain describes every image of a raw <- qcow2 <- qcow2 chain like qemu-img', needsQemu, async (t) => {
  const dir = await tempDir(t);
  await runOk('qemu-img', ['create', '-f', 'raw', join(dir, 'base.raw'), '8M']);
  await runOk('qemu-img', ['create', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', join(dir, 'mid.qcow2')]);
  await runOk('qemu-img', ['create', '-f', 'qcow2', '-o', 'cluster_size=16384', '-b', 'mid.qcow2', '-F', 'qcow2', join(dir, 'top.qcow2')]);
  const top = join(dir, 'top.qcow2');
  const ours = JSON.parse(await livebackupOk('img', 'info', '--backing-chain', '--output=json', top)) as Record<string, unknown>[];
  const theirs = JSON.parse(await runOk('qemu-img', ['info', '--backing-chain', '--output=json', '-U', top])) as Record<string, unknown>[];
  assert.equal(ours.length, 3);
  assert.equal(theirs.length, 3);
  for (let index = 0; index < 3; index++) {
    for (const key of EXACT_KEYS) assert.deepEqual(ours[index]![key], theirs[index]![key], `image ${index}, key '${key}'`);
  }
  const human = await livebackupOk('img', 'info', '--backing-chain', top);
  assert.deepEqual(stableHumanLines(human), stableHumanLines(await runOk('qemu-img', ['info', '--backing-chain', '-U', top])));
  // Unlike plain info, the chain needs every backing file.
  await rm(join(dir, 'base.raw'));
  const broken = await livebackup('img', 'info', '--backing-chain', top);
  assert.equal(broken.code, 1);
  assert.match(broken.stderr, /base\.raw.*No such file or directory/);
});

test('img info errors: missing file exits 1, unknown format and bad --output exit 2; no stack traces', async (t) => {
  const dir = await tempDir(t);
  const missing = join(dir, 'missing.img');
  const notFound = await livebackup('img', 'info', missing);
  assert.equal(notFound.code, 1);
  assert.equal(notFound.stderr, `livebackup: Could not open '${missing}': No such file or directory\n`);

  const folder = await livebackup('img', 'info', '-f', 'raw', dir);
  assert.equal(folder.code, 2);
  assert.match(folder.stderr, new RegExp(`'${dir}' is not a regular file`));

  const probedFolder = await livebackup('img', 'info', dir);
  assert.equal(probedFolder.code, 1);
  assert.match(probedFolder.stderr, new RegExp(`^livebackup: Could not open '${dir}': .*\\n$`));

  const unknownFormat = await livebackup('img', 'info', '-f', 'vhdx', missing);
  assert.equal(unknownFormat.code, 2);
  assert.match(unknownFormat.stderr, /Unknown image format 'vhdx'/);

  const badOutput = await livebackup('img', 'info', '--output=xml', missing);
  assert.equal(badOutput.code, 2);
  assert.match(badOutput.stderr, /'xml' is invalid/);
  for (const result of [notFound, folder, probedFolder, unknownFormat, badOutput]) assert.doesNotMatch(result.stderr, /internal error|\n\s+at /);
});

test('img info on a damaged qcow2 file exits 1 with a one-line message, no stack trace', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'damaged.qcow2');
  const header = Buffer.alloc(4096, 0xff);
  header.writeUInt32BE(0x514649fb, 0); // the qcow2 magic, then garbage
  await writeFile(file, header);
  const result = await livebackup('img', 'info', file);
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /^livebackup: .+\n$/);
  assert.doesNotMatch(result.stderr, /internal error|\n\s+at /);
});
