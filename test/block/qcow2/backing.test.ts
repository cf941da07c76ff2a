/**
 * Backing nodes of qcow2 images: named in the image (relative to the
 * overlay, format honoured or probed), given by node-name, or none; and the
 * depth limit of a chain.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../../helpers/temp-dir.js';
import { SeededRandom } from '../../helpers/random.js';
import { skipUnlessTools } from '../../helpers/tools.js';
import { BlockGraph } from '../../../src/block/block-graph.js';
import { createImage } from '../../../src/block/image-file.js';
import { LivebackupError } from '../../../src/errors.js';
import { MAX_BACKING_DEPTH } from '../../../src/block/qcow2/backing-chain.js';
import { assertSameBytes, openQcow2, qemuRaw, readAll, writeRaw } from './qcow2-test-kit.js';
import { qemuImg } from './qemu-made-images.js';

const MiB = 1024 * 1024;

test('backing_fmt from the header is honoured, even against the content', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const dir = await tempDir(t);
  const inner = join(dir, 'inner.qcow2');
  await createImage(inner, 'qcow2', MiB, {});
  // The backing file is a qcow2 file, but the overlay says raw: its bytes are the guest data.
  const top = join(dir, 'top.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', '-b', 'inner.qcow2', '-F', 'raw', top, String(2 * MiB));
  const { graph, node } = await openQcow2(top, { readOnly: true });
  try {
    assert.equal(node.backing?.driver.driverName, 'raw');
    assertSameBytes(await readAll(node), await qemuRaw(top, join(dir, 'top.raw')), 'raw-interpreted backing');
  } finally {
    await graph.closeAll();
  }
});

test('backing given by node-name or as null overrides the image', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const dir = await tempDir(t);
  const random = new SeededRandom(9);
  const baseBytes = random.bytes(MiB);
  await writeRaw(join(dir, 'base.raw'), baseBytes);
  const otherBytes = random.bytes(MiB);
  await writeRaw(join(dir, 'other.raw'), otherBytes);
  const top = join(dir, 'top.qcow2');
  await createImage(top, 'qcow2', MiB, { backing_file: 'base.raw', backing_fmt: 'raw' });
  const graph = new BlockGraph({ allowBackingFromImage: false });
  try {
    await graph.open({ driver: 'raw', 'node-name': 'other', 'read-only': true, file: { driver: 'file', filename: join(dir, 'other.raw') } });
    const byName = await graph.open({ driver: 'qcow2', 'node-name': 'top', backing: 'other', file: { driver: 'file', filename: top } });
    assert.equal(byName.backing?.nodeName, 'other');
    assertSameBytes(await readAll(byName), otherBytes, 'reads fall through to the named node');
    await byName.write(100, new Uint8Array([1, 2, 3]));
    const expected = otherBytes.slice();
    expected.set([1, 2, 3], 100);
    assertSameBytes(await readAll(byName), expected, 'copy-on-write fills from the named node');
    await graph.remove('top');
    assert.ok(graph.get('other'), 'a backing node given by name is not closed with the overlay');
    const none = await graph.open({ driver: 'qcow2', 'node-name': 'none', 'read-only': true, backing: null, file: { driver: 'file', filename: top } });
    const noneBytes = new Uint8Array(MiB);
    // Cluster 0 was copied from 'other' on the write above; the rest is unallocated and reads as zeroes.
    noneBytes.set(otherBytes.subarray(0, 65536));
    noneBytes.set([1, 2, 3], 100);
    assertSameBytes(await readAll(none), noneBytes, 'backing: null reads unallocated clusters as zeroes');
  } finally {
    await graph.closeAll();
  }
  const { graph: fromImage, node } = await openQcow2(top, { readOnly: true });
  try {
    assert.equal(node.backing?.driver.driverName, 'raw');
    const piece = new Uint8Array(1000);
    await node.read(MiB - 1000, piece);
    assertSameBytes(piece, baseBytes.subarray(MiB - 1000), 'relative backing path resolved next to the overlay');
  } finally {
    await fromImage.closeAll();
  }
});

test(`backing chains deeper than ${MAX_BACKING_DEPTH} images are refused`, async (t) => {
  const dir = await tempDir(t);
  await writeRaw(join(dir, 'layer0.raw'), new Uint8Array(65536));
  for (let layer = 1; layer <= MAX_BACKING_DEPTH + 1; layer++) {
    const below = layer === 1 ? 'layer0.raw' : `layer${layer - 1}.qcow2`;
    await createImage(join(dir, `layer${layer}.qcow2`), 'qcow2', 65536, { backing_file: below, backing_fmt: layer === 1 ? 'raw' : 'qcow2' });
  }
  await assert.rejects(openQcow2(join(dir, `layer${MAX_BACKING_DEPTH + 1}.qcow2`), { readOnly: true }), (error: unknown) => {
    assert.ok(error instanceof LivebackupError && error.code === 'CORRUPT_IMAGE', String(error));
    assert.match(error.message, /deeper than/);
    return true;
  });
  const { graph, node } = await openQcow2(join(dir, `layer${MAX_BACKING_DEPTH - 1}.qcow2`), { readOnly: true });
  try {
    assertSameBytes(await readAll(node), new Uint8Array(65536), 'a chain within the limit opens');
  } finally {
    await graph.closeAll();
  }
});
