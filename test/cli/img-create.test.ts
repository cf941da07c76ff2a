import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { qemuImgCheck, runOk, skipUnlessTools } from '../helpers/tools.js';
import { tempDir } from '../helpers/temp-dir.js';
import { livebackup, livebackupOk } from './cli-runner.js';
import { qemuImgInfo } from './qemu-images.js';

const needsQemuImg = { skip: skipUnlessTools('qemu-img') };

test('img create -f raw: qemu-img sees the size and format', needsQemuImg, async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'disk.raw');
  const stdout = await livebackupOk('img', 'create', '-f', 'raw', file, '10M');
  assert.equal(stdout, `Formatting '${file}', fmt=raw size=10485760\n`);
  const info = await qemuImgInfo(file);
  assert.equal(info['virtual-size'], 10 * 1024 * 1024);
  assert.equal(info.format, 'raw');
});

test('img create without -f makes a raw image; sizes take K/M/G suffixes and fractions, rounded up to 512', needsQemuImg, async (t) => {
  const dir = await tempDir(t);
  const cases: [string, number][] = [
    ['512K', 512 * 1024],
    ['1.5M', 1.5 * 1024 * 1024],
    ['1g', 1024 ** 3],
    ['12345', 12800], // rounded up to whole sectors, as qemu-img does
  ];
  for (const [text, bytes] of cases) {
    const file = join(dir, `disk-${text}.img`);
    await livebackupOk('img', 'create', file, text);
    const info = await qemuImgInfo(file);
    assert.equal(info['virtual-size'], bytes, `size ${text}`);
    assert.equal(info.format, 'raw');
  }
});

test('img create -f qcow2: qemu-img info agrees on size, format and cluster size; qemu-img check is clean', needsQemuImg, async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'disk.qcow2');
  const stdout = await livebackupOk('img', 'create', '-f', 'qcow2', file, '1G');
  assert.match(stdout, new RegExp(`^Formatting '${file}', fmt=qcow2 .*size=1073741824`));
  const info = await qemuImgInfo(file);
  assert.equal(info['virtual-size'], 1024 ** 3);
  assert.equal(info.format, 'qcow2');
  assert.equal(info['cluster-size'], 65536);
  assert.equal((await qemuImgCheck(file)).code, 0);
});

test('img create -o cluster_size passes format options to qcow2', needsQemuImg, async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'small.qcow2');
  const stdout = await livebackupOk('img', 'create', '-f', 'qcow2', '-o', 'cluster_size=4096', file, '64M');
  assert.match(stdout, /cluster_size=4096/);
  const info = await qemuImgInfo(file);
  assert.equal(info['cluster-size'], 4096);
  assert.equal(info['virtual-size'], 64 * 1024 * 1024);
  assert.equal((await qemuImgCheck(file)).code, 0);
});

test('img create -b/-F without SIZE takes the backing file size; the backing link is what qemu-img reads', needsQemuImg, async (t) => {
  const dir = await tempDir(t);
  const base = join(dir, 'base.qcow2');
  await runOk('qemu-img', ['create', '-f', 'qcow2', base, '96M']);
  const overlay = join(dir, 'overlay.qcow2');
  const stdout = await livebackupOk('img', 'create', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', overlay);
  assert.match(stdout, /size=100663296 backing_file=base\.qcow2 backing_fmt=qcow2/);
  const info = await qemuImgInfo(overlay);
  assert.equal(info['virtual-size'], 96 * 1024 * 1024);
  assert.equal(info['backing-filename'], 'base.qcow2');
  assert.equal(info['backing-filename-format'], 'qcow2');
  assert.equal(info['full-backing-filename'], base);
  assert.equal((await qemuImgCheck(overlay)).code, 0);
  // A raw backing file, with an explicit size larger than it.
  const rawBase = join(dir, 'base.raw');
  await runOk('qemu-img', ['create', '-f', 'raw', rawBase, '1M']);
  const overRaw = join(dir, 'over-raw.qcow2');
  await livebackupOk('img', 'create', '-f', 'qcow2', '-b', rawBase, '-F', 'raw', overRaw, '2M');
  const rawInfo = await qemuImgInfo(overRaw);
  assert.equal(rawInfo['virtual-size'], 2 * 1024 * 1024);
  assert.equal(rawInfo['backing-filename'], rawBase);
  assert.equal(rawInfo['backing-filename-format'], 'raw');
});

test('img create usage errors exit 2 with a one-line message naming the problem', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'x.img');
  const cases: { args: string[]; message: RegExp }[] = [
    { args: ['img', 'create', '-f', 'raw', file], message: /needs a size/ },
    { args: ['img', 'create', '-f', 'raw', file, '10Q'], message: /Invalid image size '10Q'/ },
    { args: ['img', 'create', '-f', 'raw', file, '1.5'], message: /'1\.5'.*unit suffix/ },
    { args: ['img', 'create', '-f', 'vmdk', file, '1M'], message: /Format 'vmdk' cannot be created/ },
    { args: ['img', 'create', '-f', 'raw', '-o', 'bogus', file, '1M'], message: /Invalid format option 'bogus'/ },
    { args: ['img', 'create', '-f', 'raw', '-o', 'bogus=1', file, '1M'], message: /Invalid option 'bogus'/ },
    { args: ['img', 'create', '-f', 'raw', '-b', 'base.img', '-F', 'raw', file], message: /Format 'raw' does not support backing files/ },
    { args: ['img', 'create', '-f', 'raw', '-F', 'raw', file, '1M'], message: /without a backing file/ },
  ];
  for (const { args, message } of cases) {
    const result = await livebackup(...args);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.equal(result.stdout, '', `nothing is formatted by ${args.join(' ')}`);
    assert.match(result.stderr, message, args.join(' '));
    assert.equal(result.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}: ${result.stderr}`);
    assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  }
});

test('img create -b: without -F names the detected format; a missing backing file is an error unless -u', needsQemuImg, async (t) => {
  const dir = await tempDir(t);
  await runOk('qemu-img', ['create', '-f', 'qcow2', join(dir, 'base.qcow2'), '1M']);
  const result = await livebackup('img', 'create', '-f', 'qcow2', '-b', 'base.qcow2', join(dir, 'top.qcow2'));
  assert.equal(result.code, 2);
  assert.match(result.stderr, /without backing format \(detected format: qcow2; add -F qcow2\)/);
  for (const size of [[], ['1M']]) {
    const missing = await livebackup('img', 'create', '-f', 'qcow2', '-b', 'nope.qcow2', '-F', 'qcow2', join(dir, 'top.qcow2'), ...size);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /nope\.qcow2.*No such file or directory/);
    assert.equal(missing.stdout, '');
  }
  // -u: the backing file is not opened, so it need not exist yet; SIZE is then required.
  const unsafe = join(dir, 'unsafe.qcow2');
  await livebackupOk('img', 'create', '-f', 'qcow2', '-u', '-b', 'later.qcow2', '-F', 'qcow2', unsafe, '1M');
  const info = await qemuImgInfo(unsafe);
  assert.equal(info['backing-filename'], 'later.qcow2');
  assert.equal(info['virtual-size'], 1024 * 1024);
  const noSize = await livebackup('img', 'create', '-f', 'qcow2', '-u', '-b', 'later.qcow2', '-F', 'qcow2', unsafe);
  assert.equal(noSize.code, 2);
  assert.match(noSize.stderr, /needs a size/);
});
