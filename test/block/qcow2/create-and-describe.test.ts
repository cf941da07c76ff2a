/**
 * qcow2 create: every supported option gives an image that qemu-img check
 * accepts and qemu-img info describes as asked; bad options are clear
 * errors. describe() reports what `qemu-img info --output=json` shows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../../helpers/temp-dir.js';
import { runOk, skipUnlessTools } from '../../helpers/tools.js';
import { createImage } from '../../../src/block/image-file.js';
import { LivebackupError } from '../../../src/errors.js';
import { assertCleanCheck, openQcow2, writeRaw } from './qcow2-test-kit.js';
import { IMAGE_CASES } from './qemu-made-images.js';

const MiB = 1024 * 1024;

interface QemuInfo {
  'virtual-size': number;
  'cluster-size': number;
  'backing-filename'?: string;
  'backing-filename-format'?: string;
  'dirty-flag': boolean;
  'format-specific': { type: string; data: Record<string, unknown> };
}

async function qemuInfo(image: string): Promise<QemuInfo> {
  return JSON.parse(await runOk('qemu-img', ['info', '-U', '--output=json', image])) as QemuInfo;
}

/** Our describe() must equal qemu-img info on every field both have. */
async function assertDescribeMatches(image: string): Promise<void> {
  const info = await qemuInfo(image);
  const { graph, node } = await openQcow2(image, { readOnly: true, extra: { backing: null } });
  try {
    const description = await node.driver.describe!();
    assert.equal(node.length, info['virtual-size']);
    assert.equal(description.clusterSize, info['cluster-size']);
    assert.equal(description.dirtyFlag, info['dirty-flag']);
    assert.equal(description.backingFilename, info['backing-filename']);
    assert.equal(description.backingFormat, info['backing-filename-format']);
    assert.deepEqual(description.formatSpecific, info['format-specific']);
  } finally {
    await graph.closeAll();
  }
}

const CREATE_CASES: Array<{ size: number; options: Record<string, string | number | boolean> }> = [
  { size: 0, options: {} },
  { size: 1000, options: {} },
  { size: 16 * MiB, options: { cluster_size: 512 } },
  { size: 16 * MiB, options: { cluster_size: '4k', refcount_bits: 1 } },
  { size: 64 * MiB, options: { cluster_size: 2 * MiB, refcount_bits: 64 } },
  { size: 64 * MiB, options: { refcount_bits: 8, lazy_refcounts: 'on' } },
  { size: 64 * MiB, options: { compat: '0.10' } },
  { size: 64 * MiB, options: { compat: 'v3', compression_type: 'zlib', extended_l2: false } },
  { size: 8 * MiB, options: { preallocation: 'metadata', cluster_size: 4096 } },
  { size: 3 * MiB + 512, options: { preallocation: 'metadata', cluster_size: 512, refcount_bits: 2 } },
  { size: 1024 * 1024 * MiB, options: { cluster_size: 65536 } },
  { size: 64 * MiB, options: { backing_file: 'base.raw', backing_fmt: 'raw' } },
  { size: 64 * MiB, options: { backing_file: 'base.raw' } },
];

test('created images pass qemu-img check and match qemu-img info', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const dir = await tempDir(t);
  await writeRaw(join(dir, 'base.raw'), new Uint8Array(MiB));
  for (const [index, { size, options }] of CREATE_CASES.entries()) {
    const image = join(dir, `created-${index}.qcow2`);
    await createImage(image, 'qcow2', size, options);
    await assertCleanCheck(image);
    const info = await qemuInfo(image);
    const what = `${size} ${JSON.stringify(options)}`;
    assert.equal(info['virtual-size'], Math.ceil(size / 512) * 512, what);
    const clusterSize = options.cluster_size === '4k' ? 4096 : ((options.cluster_size as number | undefined) ?? 65536);
    assert.equal(info['cluster-size'], clusterSize, what);
    const data = info['format-specific'].data;
    const v2 = options.compat === '0.10';
    assert.equal(data.compat, v2 ? '0.10' : '1.1', what);
    assert.equal(data['refcount-bits'], (options.refcount_bits as number | undefined) ?? 16, what);
    if (!v2) assert.equal(data['lazy-refcounts'], options.lazy_refcounts === 'on', what);
    assert.equal(info['backing-filename'], options.backing_file, what);
    assert.equal(info['backing-filename-format'], options.backing_fmt, what);
    if (options.preallocation === 'metadata') {
      const map = JSON.parse(await runOk('qemu-img', ['map', '--output=json', image])) as Array<{ data: boolean; length: number }>;
      assert.ok(map.every((entry) => entry.data), `${what}: every cluster preallocated`);
    }
    await assertDescribeMatches(image);
  }
});

test('bad create options are clear errors naming the option', async (t) => {
  const dir = await tempDir(t);
  const image = join(dir, 'bad.qcow2');
  const cases: Array<[Record<string, string | number | boolean>, string, RegExp]> = [
    [{ bogus: 1 }, 'INVALID_ARGUMENT', /Invalid option 'bogus'/],
    [{ cluster_size: 1000 }, 'INVALID_ARGUMENT', /Cluster size/],
    [{ cluster_size: 4 * MiB }, 'INVALID_ARGUMENT', /Cluster size/],
    [{ refcount_bits: 3 }, 'INVALID_ARGUMENT', /Refcount width/],
    [{ refcount_bits: 128 }, 'INVALID_ARGUMENT', /Refcount width/],
    [{ compat: '0.10', refcount_bits: 8 }, 'INVALID_ARGUMENT', /compatibility level 1\.1/],
    [{ compat: '0.10', lazy_refcounts: true }, 'INVALID_ARGUMENT', /Lazy refcounts/],
    [{ compat: '2.0' }, 'INVALID_ARGUMENT', /compatibility level/],
    [{ compression_type: 'zstd' }, 'UNSUPPORTED', /zstd/],
    [{ compression_type: 'lz4' }, 'INVALID_ARGUMENT', /compression_type/],
    [{ extended_l2: 'on' }, 'UNSUPPORTED', /extended_l2/],
    [{ preallocation: 'full' }, 'UNSUPPORTED', /preallocation=full/],
    [{ preallocation: 'sideways' }, 'INVALID_ARGUMENT', /preallocation/],
    [{ lazy_refcounts: 'maybe' }, 'INVALID_ARGUMENT', /lazy_refcounts/],
    [{ backing_fmt: 'raw' }, 'INVALID_ARGUMENT', /backing_fmt/],
    [{ backing_file: 'x'.repeat(2000) }, 'INVALID_ARGUMENT', /Backing file name/],
    [{ backing_file: 'b', preallocation: 'metadata' }, 'INVALID_ARGUMENT', /preallocation/],
  ];
  for (const [options, code, pattern] of cases) {
    await assert.rejects(createImage(image, 'qcow2', MiB, options), (error: unknown) => {
      assert.ok(error instanceof LivebackupError, String(error));
      assert.equal(error.code, code, `${JSON.stringify(options)}: ${error.message}`);
      assert.match(error.message, pattern);
      return true;
    });
  }
});

test('describe() matches qemu-img info for images made by qemu-img', { skip: skipUnlessTools('qemu-img', 'qemu-io') }, async (t) => {
  for (const imageCase of IMAGE_CASES.slice(0, 14)) {
    const dir = await tempDir(t);
    await assertDescribeMatches(await imageCase.build(dir));
  }
});
