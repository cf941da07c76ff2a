/**
 * Writes on images with internal snapshots (copy-on-write keeps them
 * intact), compressed clusters, preallocated zero clusters, version 2
 * images, lazy refcounts, refcount table growth, and the number of
 * metadata writes of a sequential copy.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../../helpers/temp-dir.js';
import { SeededRandom } from '../../helpers/random.js';
import { qemuImgCompare, runOk, skipUnlessTools } from '../../helpers/tools.js';
import { createImage } from '../../../src/block/image-file.js';
import type { BlockNode } from '../../../src/block/block-node.js';
import { HeaderField, INCOMPAT_DIRTY } from '../../../src/block/qcow2/qcow2-format.js';
import { applyToReference, assertCleanCheck, assertSameBytes, openQcow2, qemuRaw, readAll, writeRaw, type ReferenceOp } from './qcow2-test-kit.js';
import { mixedCommands, patternFiles, qemuImg, qemuIo } from './qemu-made-images.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Random sequential write/zero/discard ops on node, mirrored into reference (v3 discard semantics). */
async function randomOps(node: BlockNode, reference: Uint8Array, random: SeededRandom, count: number, clusterSize: number): Promise<void> {
  for (let index = 0; index < count; index++) {
    const bytes = random.int(1, 6 * clusterSize);
    const offset = random.int(0, reference.length - bytes);
    const roll = random.int(0, 9);
    const op: ReferenceOp = { kind: roll < 6 ? 'write' : roll < 8 ? 'zero' : 'discard', offset, bytes };
    if (op.kind === 'write') {
      op.data = random.bytes(bytes);
      await node.write(offset, op.data);
    } else if (op.kind === 'zero') {
      await node.writeZeroes(offset, bytes, { mayUnmap: roll === 7 });
    } else {
      await node.discard(offset, bytes);
    }
    applyToReference(reference, op, clusterSize);
  }
}

async function assertMatchesReference(image: string, reference: Uint8Array, dir: string, what: string): Promise<void> {
  const raw = join(dir, `reference-${Math.random().toString(36).slice(2)}.raw`);
  await writeRaw(raw, reference);
  assert.ok(await qemuImgCompare(image, raw, 'qcow2', 'raw'), `${what}: qemu-img compare differs`);
}

test('writes on an image with internal snapshots copy shared clusters and keep the snapshots intact', { skip: skipUnlessTools('qemu-img', 'qemu-io') }, async (t) => {
  const dir = await tempDir(t);
  const image = join(dir, 'snap.qcow2');
  const clusterSize = 16384;
  const random = new SeededRandom(303);
  const patterns = await patternFiles(dir, 303);
  await qemuImg('create', '-q', '-f', 'qcow2', '-o', `cluster_size=${clusterSize}`, image, String(4 * MiB));
  await qemuIo(image, mixedCommands(random, patterns, 4 * MiB, clusterSize, 40));
  await qemuIo(image, [`write -q -c -P 9 ${2 * MiB} ${4 * clusterSize}`]);
  await qemuImg('snapshot', '-c', 's1', image);
  const s1 = await qemuRaw(image, join(dir, 's1-before.raw'), ['-l', 's1']);
  const reference = s1.slice();

  let { graph, node } = await openQcow2(image);
  try {
    await randomOps(node, reference, random, 150, clusterSize);
    // Every byte of the compressed, shared clusters gets rewritten partly.
    for (let cluster = 0; cluster < 4; cluster++) {
      const data = random.bytes(100);
      const offset = 2 * MiB + cluster * clusterSize + 7;
      reference.set(data, offset);
      await node.write(offset, data);
    }
    assertSameBytes(await readAll(node), reference, 'active layer');
  } finally {
    await graph.closeAll();
  }
  await assertCleanCheck(image);
  assert.match(await runOk('qemu-img', ['snapshot', '-l', image]), /\bs1\b/);
  assertSameBytes(await qemuRaw(image, join(dir, 's1-after.raw'), ['-l', 's1']), s1, 'snapshot s1 after our writes');
  await assertMatchesReference(image, reference, dir, 'active layer');

  // A second snapshot taken by QEMU over our writes, then more of ours.
  await qemuImg('snapshot', '-c', 's2', image);
  const s2 = reference.slice();
  ({ graph, node } = await openQcow2(image));
  try {
    await randomOps(node, reference, random, 100, clusterSize);
  } finally {
    await graph.closeAll();
  }
  await assertCleanCheck(image);
  assertSameBytes(await qemuRaw(image, join(dir, 's1-last.raw'), ['-l', 's1']), s1, 'snapshot s1 at the end');
  assertSameBytes(await qemuRaw(image, join(dir, 's2-last.raw'), ['-l', 's2']), s2, 'snapshot s2 at the end');
  await assertMatchesReference(image, reference, dir, 'active layer at the end');
});

test('compressed clusters are rewritten, zeroed and discarded correctly', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const dir = await tempDir(t);
  const random = new SeededRandom(404);
  const source = new Uint8Array(2 * MiB);
  for (let offset = 0; offset < source.length; offset += 4096) source.fill(random.int(0, 255), offset, offset + random.int(1, 4096));
  const raw = join(dir, 'source.raw');
  await writeRaw(raw, source);
  const image = join(dir, 'compressed.qcow2');
  await qemuImg('convert', '-q', '-c', '-f', 'raw', '-O', 'qcow2', '-o', 'cluster_size=4096', raw, image);
  const reference = source.slice();
  const { graph, node } = await openQcow2(image);
  try {
    await randomOps(node, reference, random, 300, 4096);
    assertSameBytes(await readAll(node), reference, 'after rewriting compressed clusters');
  } finally {
    await graph.closeAll();
  }
  await assertCleanCheck(image);
  await assertMatchesReference(image, reference, dir, 'compressed image');
});

test('zeroing preallocated clusters keeps them allocated and partial rewrites reuse them', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const dir = await tempDir(t);
  const image = join(dir, 'prealloc.qcow2');
  await createImage(image, 'qcow2', 4 * MiB, { preallocation: 'metadata', cluster_size: 65536 });
  await assertCleanCheck(image);
  const reference = new Uint8Array(4 * MiB);
  const random = new SeededRandom(505);
  const { graph, node } = await openQcow2(image);
  try {
    const data = random.bytes(4 * MiB);
    reference.set(data);
    await node.write(0, data);
    await node.writeZeroes(MiB, MiB, { mayUnmap: false });
    reference.fill(0, MiB, 2 * MiB);
    const piece = random.bytes(1000);
    reference.set(piece, MiB + 5000);
    await node.write(MiB + 5000, piece);
    await node.writeZeroes(3 * MiB, MiB, { mayUnmap: true });
    reference.fill(0, 3 * MiB);
  } finally {
    await graph.closeAll();
  }
  await assertCleanCheck(image);
  await assertMatchesReference(image, reference, dir, 'preallocated image');
  const map = JSON.parse(await runOk('qemu-img', ['map', '--output=json', image])) as Array<{ start: number; zero: boolean; data: boolean; offset?: number }>;
  const zeroAllocated = map.find((entry) => entry.start === MiB + 65536);
  assert.ok(zeroAllocated?.zero && zeroAllocated.offset !== undefined, `zeroed preallocated cluster keeps its host cluster: ${JSON.stringify(zeroAllocated)}`);
  const unmapped = map.find((entry) => entry.start === 3 * MiB);
  assert.ok(unmapped?.zero && unmapped.offset === undefined, `zeroed with unmap frees the cluster: ${JSON.stringify(unmapped)}`);
});

test('version 2 images take writes; zeroes fall back to zero data; discard without backing unallocates', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const dir = await tempDir(t);
  const image = join(dir, 'v2.qcow2');
  await createImage(image, 'qcow2', 8 * MiB, { compat: '0.10', cluster_size: 8192 });
  assert.match(await runOk('qemu-img', ['info', image]), /compat: 0\.10/);
  const reference = new Uint8Array(8 * MiB);
  const { graph, node } = await openQcow2(image);
  try {
    await randomOps(node, reference, new SeededRandom(606), 300, 8192);
  } finally {
    await graph.closeAll();
  }
  await assertCleanCheck(image);
  await assertMatchesReference(image, reference, dir, 'v2 image');
});

async function headerIncompatible(image: string): Promise<number> {
  const handle = await open(image, 'r');
  try {
    const buf = new Uint8Array(4);
    await handle.read(buf, 0, 4, HeaderField.incompatibleFeatures + 4);
    return new DataView(buf.buffer).getUint32(0);
  } finally {
    await handle.close();
  }
}

test('lazy refcounts set the dirty bit before the first write and clear it on flush', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const dir = await tempDir(t);
  const image = join(dir, 'lazy.qcow2');
  await createImage(image, 'qcow2', 4 * MiB, { lazy_refcounts: true });
  const { graph, node } = await openQcow2(image);
  try {
    assert.equal((await headerIncompatible(image)) & INCOMPAT_DIRTY, 0);
    await node.write(12345, new Uint8Array(70000).fill(3));
    assert.equal((await headerIncompatible(image)) & INCOMPAT_DIRTY, INCOMPAT_DIRTY, 'dirty on disk after the first write');
    assert.equal((await node.driver.describe!()).dirtyFlag, true);
    await node.flush();
    assert.equal((await headerIncompatible(image)) & INCOMPAT_DIRTY, 0, 'clean on disk after flush');
    await node.write(2 * MiB, new Uint8Array(10).fill(4));
  } finally {
    await graph.closeAll();
  }
  assert.equal((await headerIncompatible(image)) & INCOMPAT_DIRTY, 0, 'clean after close');
  await assertCleanCheck(image);
});

test('the refcount table moves and grows as the file grows (512 B clusters, 64-bit refcounts)', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const dir = await tempDir(t);
  const image = join(dir, 'grow.qcow2');
  await createImage(image, 'qcow2', 8 * MiB, { cluster_size: 512, refcount_bits: 64 });
  const before = JSON.parse(await runOk('qemu-img', ['info', '--output=json', image])) as Record<string, unknown>;
  const reference = new SeededRandom(707).bytes(8 * MiB);
  const { graph, node } = await openQcow2(image);
  try {
    const writes: Promise<void>[] = [];
    for (let offset = 0; offset < reference.length; offset += MiB) writes.push(node.write(offset, reference.subarray(offset, offset + MiB)));
    await Promise.all(writes);
  } finally {
    await graph.closeAll();
  }
  await assertCleanCheck(image);
  await assertMatchesReference(image, reference, dir, 'grown image');
  const handle = await open(image, 'r');
  try {
    const buf = new Uint8Array(12);
    await handle.read(buf, 0, 12, HeaderField.refcountTableOffset);
    const view = new DataView(buf.buffer);
    assert.ok(view.getUint32(8) > 1, `refcount table grew to ${view.getUint32(8)} clusters`);
  } finally {
    await handle.close();
  }
  assert.equal(before['virtual-size'], 8 * MiB);
});

test('a sequential copy into a fresh image makes few metadata writes', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const dir = await tempDir(t);
  const image = join(dir, 'sequential.qcow2');
  await createImage(image, 'qcow2', 64 * MiB, {});
  const reference = new SeededRandom(808).bytes(64 * MiB);
  const { graph, node } = await openQcow2(image);
  let fileWrites = 0;
  try {
    node.file!.addBeforeWriteNotifier(async () => {
      fileWrites++;
    });
    const inFlight: Promise<void>[] = [];
    for (let offset = 0; offset < reference.length; offset += MiB) inFlight.push(node.write(offset, reference.subarray(offset, offset + MiB)));
    await Promise.all(inFlight);
    await node.flush();
  } finally {
    await graph.closeAll();
  }
  // 64 data writes, then one L2 table, one refcount block, the L1 entry.
  assert.ok(fileWrites <= 64 + 6, `file writes: ${fileWrites}`);
  await assertCleanCheck(image);
  await assertMatchesReference(image, reference, dir, 'sequential copy');
});

test('growing an image extends the L1 table in place or moves it; a longer backing file stays hidden', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const dir = await tempDir(t);
  const random = new SeededRandom(909);
  for (const { clusterSize, from, to, backing } of [
    { clusterSize: 65536, from: MiB, to: 64 * 1024 * MiB, backing: false },
    { clusterSize: 512, from: MiB, to: 8 * MiB, backing: false },
    { clusterSize: 4096, from: MiB, to: 3 * MiB, backing: true },
    { clusterSize: 512, from: 0, to: 2 * MiB, backing: false },
  ]) {
    const image = join(dir, `grow-${clusterSize}-${to}.qcow2`);
    const options: Record<string, string | number | boolean> = { cluster_size: clusterSize };
    const baseBytes = random.bytes(4 * MiB);
    if (backing) {
      await writeRaw(join(dir, 'base.raw'), baseBytes);
      options.backing_file = 'base.raw';
      options.backing_fmt = 'raw';
    }
    await createImage(image, 'qcow2', from, options);
    const checkedSize = Math.min(to, 16 * MiB);
    const reference = new Uint8Array(checkedSize);
    if (backing) reference.set(baseBytes.subarray(0, from));
    const { graph, node } = await openQcow2(image);
    try {
      const before = random.bytes(Math.min(from, 300000));
      reference.set(before, 0);
      if (before.length > 0) await node.write(0, before);
      await node.truncate(to);
      assert.equal(node.length, to);
      const after = random.bytes(100000);
      reference.set(after, checkedSize - after.length);
      await node.write(checkedSize - after.length, after);
      const tail = random.bytes(777);
      await node.write(to - 777, tail);
      if (to === checkedSize) reference.set(tail, to - 777);
      const readBack = new Uint8Array(checkedSize);
      await node.read(0, readBack);
      assertSameBytes(readBack, reference, `grown image ${clusterSize}`);
      await assert.rejects(node.truncate(to - 512), /shrinking/);
      await assert.rejects(node.truncate(to + 100), /multiple of 512/);
    } finally {
      await graph.closeAll();
    }
    await assertCleanCheck(image);
    const info = JSON.parse(await runOk('qemu-img', ['info', '--output=json', image])) as Record<string, number>;
    assert.equal(info['virtual-size'], to);
    if (to === checkedSize) assertSameBytes(await qemuRaw(image, join(dir, 'grown.raw')), reference, `qemu-img reads the grown image ${clusterSize}`);
  }
});

test('partial writes into new clusters read zeroes around the data, both in reused host clusters and past the end of the file', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const dir = await tempDir(t);
  const image = join(dir, 'reuse.qcow2');
  await createImage(image, 'qcow2', 8 * MiB, { cluster_size: 65536 });
  const reference = new Uint8Array(8 * MiB);
  const random = new SeededRandom(611);
  const { graph, node } = await openQcow2(image);
  try {
    // Fill host clusters with non-zero data, then free them: their host space holds stale bytes.
    await node.write(0, new Uint8Array(2 * MiB).fill(0xee));
    await node.discard(0, 2 * MiB);
    await node.flush();
    // Small writes into unallocated clusters get those stale host clusters back, or fresh ones past the end.
    for (let i = 0; i < 64; i++) {
      const cluster = random.int(0, 127);
      const at = cluster * 65536 + random.int(0, 60000);
      const piece = random.bytes(random.int(1, 4096));
      reference.set(piece, at);
      await node.write(at, piece);
    }
    assertSameBytes(await readAll(node), reference, 'after partial writes (our reads)');
  } finally {
    await graph.closeAll();
  }
  await assertCleanCheck(image);
  await assertMatchesReference(image, reference, dir, 'partial writes into new clusters');
});
