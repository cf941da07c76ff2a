/**
 * Malformed and unsupported qcow2 images: each gives a clear
 * LivebackupError (CORRUPT_IMAGE, UNSUPPORTED, ...) naming the problem,
 * never a crash, a hang or garbage data. Ends with a seeded mutation fuzz
 * over the header, extensions and tables.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../../helpers/temp-dir.js';
import { SeededRandom } from '../../helpers/random.js';
import { run, skipUnlessTools } from '../../helpers/tools.js';
import { BlockGraph } from '../../../src/block/block-graph.js';
import { createImage } from '../../../src/block/image-file.js';
import { LivebackupError } from '../../../src/errors.js';
import { HeaderField } from '../../../src/block/qcow2/qcow2-format.js';
import { openQcow2, readAll, writeRaw } from './qcow2-test-kit.js';
import { patternFiles, qemuImg, qemuIo } from './qemu-made-images.js';

const KiB = 1024;

/** Offsets of the metadata of an image, read from its header. */
function layout(bytes: Uint8Array): { l1: number; reftable: number; clusterSize: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  return {
    l1: Number(view.getBigUint64(HeaderField.l1TableOffset)),
    reftable: Number(view.getBigUint64(HeaderField.refcountTableOffset)),
    clusterSize: 2 ** view.getUint32(HeaderField.clusterBits),
  };
}

/** A small image with data, zero and compressed clusters (4 KiB clusters, 1 MiB). */
async function sampleImage(dir: string): Promise<string> {
  const image = join(dir, 'sample.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', image, String(1024 * KiB));
  const [pattern] = await patternFiles(dir, 91, 1, 256 * KiB);
  await qemuIo(image, [
    `write -q -s ${pattern} 0 ${64 * KiB}`,
    `write -q -c -P 7 ${128 * KiB} ${8 * KiB}`,
    `write -q -z ${192 * KiB} ${16 * KiB}`,
    `write -q -s ${pattern} ${700 * KiB + 3} 5000`,
  ]);
  return image;
}

async function expectError(promise: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof LivebackupError, `expected a LivebackupError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    assert.match(error.message, pattern);
    return true;
  });
}

/** Open read-only and read everything. */
async function openAndRead(filename: string, extra: Record<string, unknown> = {}): Promise<void> {
  const { graph, node } = await openQcow2(filename, { readOnly: true, extra });
  try {
    await readAll(node);
  } finally {
    await graph.closeAll();
  }
}

async function mutated(dir: string, source: string, name: string, mutate: (bytes: Uint8Array, view: DataView) => Uint8Array | void): Promise<string> {
  const bytes = new Uint8Array(await readFile(source));
  const result = mutate(bytes, new DataView(bytes.buffer, bytes.byteOffset)) ?? bytes;
  const path = join(dir, name);
  await writeFile(path, result);
  return path;
}

test('malformed headers and tables are clear errors', { skip: skipUnlessTools('qemu-img', 'qemu-io') }, async (t) => {
  const dir = await tempDir(t);
  const sample = await sampleImage(dir);
  const original = new Uint8Array(await readFile(sample));
  const { l1, clusterSize } = layout(original);
  const l2 = Number(new DataView(original.buffer).getBigUint64(l1) & 0x00fffffffffffe00n);

  await expectError(openAndRead(await mutated(dir, sample, 'short.qcow2', (b) => b.subarray(0, 50))), 'CORRUPT_IMAGE', /truncated/);
  await expectError(openAndRead(await mutated(dir, sample, 'magic.qcow2', (b) => void (b[0] = 0x52))), 'CORRUPT_IMAGE', /magic/);
  await expectError(openAndRead(await mutated(dir, sample, 'version.qcow2', (_b, v) => v.setUint32(HeaderField.version, 4))), 'UNSUPPORTED', /version 4/);
  for (const bits of [8, 22, 63]) {
    const path = await mutated(dir, sample, `bits${bits}.qcow2`, (_b, v) => v.setUint32(HeaderField.clusterBits, bits));
    await expectError(openAndRead(path), 'CORRUPT_IMAGE', /cluster_bits/);
  }
  await expectError(
    openAndRead(await mutated(dir, sample, 'l1-past-end.qcow2', (_b, v) => v.setBigUint64(HeaderField.l1TableOffset, 1n << 30n))),
    'CORRUPT_IMAGE',
    /L1 table.*outside the file/,
  );
  await expectError(
    openAndRead(await mutated(dir, sample, 'l1-unaligned.qcow2', (_b, v) => v.setBigUint64(HeaderField.l1TableOffset, BigInt(l1 + 8)))),
    'CORRUPT_IMAGE',
    /L1 table offset .* not cluster aligned/,
  );
  await expectError(
    openAndRead(await mutated(dir, sample, 'reftable-past-end.qcow2', (_b, v) => v.setBigUint64(HeaderField.refcountTableOffset, 1n << 40n))),
    'CORRUPT_IMAGE',
    /refcount table/,
  );
  await expectError(
    openAndRead(await mutated(dir, sample, 'l1-huge.qcow2', (_b, v) => v.setUint32(HeaderField.l1Size, 0x7fffffff))),
    'CORRUPT_IMAGE',
    /L1 table/,
  );
  await expectError(
    openAndRead(await mutated(dir, sample, 'size-huge.qcow2', (_b, v) => v.setBigUint64(HeaderField.size, 1n << 52n))),
    'CORRUPT_IMAGE',
    /L1 table too small/,
  );
  await expectError(
    openAndRead(await mutated(dir, sample, 'l1-entry-outside.qcow2', (_b, v) => v.setBigUint64(l1, (1n << 63n) | (1n << 40n)))),
    'CORRUPT_IMAGE',
    /L2 table at \d+ lies outside/,
  );
  await expectError(
    openAndRead(await mutated(dir, sample, 'l1-entry-unaligned.qcow2', (_b, v) => v.setBigUint64(l1, (1n << 63n) | BigInt(l2 + 512)))),
    'CORRUPT_IMAGE',
    /unaligned L2 table offset/,
  );
  await expectError(
    openAndRead(await mutated(dir, sample, 'l2-entry-outside.qcow2', (_b, v) => v.setBigUint64(l2 + 8, (1n << 63n) | (1n << 36n)))),
    'CORRUPT_IMAGE',
    /points to host offset \d+, outside the image file/,
  );
  await expectError(
    openAndRead(await mutated(dir, sample, 'l2-entry-unaligned.qcow2', (_b, v) => v.setBigUint64(l2 + 8, (1n << 63n) | BigInt(clusterSize * 3 + 1024)))),
    'CORRUPT_IMAGE',
    /unaligned host offset/,
  );
  await expectError(
    openAndRead(await mutated(dir, sample, 'l1-entry-self.qcow2', (_b, v) => v.setBigUint64(l1, (1n << 63n) | BigInt(l1)))),
    'CORRUPT_IMAGE',
    /L2 table at \d+ .*overlaps the header, L1 table or refcount table/,
  );
  await expectError(
    openAndRead(await mutated(dir, sample, 'l2-entry-reftable.qcow2', (_b, v) => v.setBigUint64(l2 + 8, (1n << 63n) | BigInt(layout(original).reftable)))),
    'CORRUPT_IMAGE',
    /inside the image's own metadata/,
  );
  // Guest cluster 32 (128 KiB) is compressed: point its data past the end of the file.
  await expectError(
    openAndRead(await mutated(dir, sample, 'compressed-outside.qcow2', (_b, v) => v.setBigUint64(l2 + 32 * 8, (1n << 62n) | (1n << 40n)))),
    'CORRUPT_IMAGE',
    /compressed cluster .* outside the image file/,
  );
  await expectError(
    openAndRead(await mutated(dir, sample, 'compressed-garbage.qcow2', (_b, v) => v.setBigUint64(l2 + 32 * 8, (1n << 62n) | BigInt(l1)))),
    'CORRUPT_IMAGE',
    /compressed cluster/,
  );
  await expectError(
    openAndRead(await mutated(dir, sample, 'unknown-incompat.qcow2', (_b, v) => v.setUint32(HeaderField.incompatibleFeatures + 4, 1 << 9))),
    'UNSUPPORTED',
    /incompatible qcow2 features: bit 9/,
  );
});

test('a refcount table entry pointing outside the file fails the first allocating write', { skip: skipUnlessTools('qemu-img', 'qemu-io') }, async (t) => {
  const dir = await tempDir(t);
  const sample = await sampleImage(dir);
  const { reftable } = layout(new Uint8Array(await readFile(sample)));
  const path = await mutated(dir, sample, 'refblock-outside.qcow2', (_b, v) => v.setBigUint64(reftable, 1n << 40n));
  const { graph, node } = await openQcow2(path);
  try {
    await expectError(node.write(900 * KiB, new Uint8Array(10)), 'CORRUPT_IMAGE', /refcount block at \d+ lies outside/);
  } finally {
    await graph.closeAll().catch(() => undefined);
  }
});

test('unsupported features are refused at open, naming the feature', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const dir = await tempDir(t);
  const zstd = join(dir, 'zstd.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'compression_type=zstd', zstd, '1M');
  await expectError(openAndRead(zstd), 'UNSUPPORTED', /zstd/);
  const luks = join(dir, 'luks.qcow2');
  await createLuksImage(luks);
  await expectError(openAndRead(luks), 'UNSUPPORTED', /encrypt/);
  const external = join(dir, 'external.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', '-o', `data_file=${join(dir, 'external.raw')}`, external, '1M');
  await expectError(openAndRead(external), 'UNSUPPORTED', /external data file/);
  const plain = join(dir, 'plain.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', plain, '1M');
  await expectError(openAndRead(plain, { 'data-file': { driver: 'file', filename: join(dir, 'x') } }), 'UNSUPPORTED', /data-file/);
  await expectError(openAndRead(plain, { encrypt: { format: 'luks' } }), 'UNSUPPORTED', /encrypt/);
});

test('corrupt and dirty images are refused for writing with a repair hint, but read', { skip: skipUnlessTools('qemu-img', 'qemu-io') }, async (t) => {
  const dir = await tempDir(t);
  const sample = await sampleImage(dir);
  const corrupt = await mutated(dir, sample, 'corrupt.qcow2', (_b, v) => v.setUint32(HeaderField.incompatibleFeatures + 4, 2));
  await expectError(openQcow2(corrupt), 'CORRUPT_IMAGE', /marked corrupt.*qemu-img check -r all/);
  await openAndRead(corrupt);
  const dirty = await mutated(dir, sample, 'dirty.qcow2', (_b, v) => v.setUint32(HeaderField.incompatibleFeatures + 4, 1));
  await expectError(openQcow2(dirty), 'INVALID_STATE', /dirty bit.*qemu-img check -r all/);
  await openAndRead(dirty);
  const extended = join(dir, 'extl2.qcow2');
  await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on', extended, '1M');
  await expectError(openQcow2(extended), 'UNSUPPORTED', /extended L2/);
});

test('backing chain loops and untrusted backing names are refused', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const dir = await tempDir(t);
  const a = join(dir, 'a.qcow2');
  const b = join(dir, 'b.qcow2');
  await createImage(a, 'qcow2', 1024 * KiB, { backing_file: 'b.qcow2', backing_fmt: 'qcow2' });
  await createImage(b, 'qcow2', 1024 * KiB, { backing_file: 'a.qcow2' });
  await expectError(openAndRead(a), 'CORRUPT_IMAGE', /backing chain loop: .*a\.qcow2 -> .*b\.qcow2 -> .*a\.qcow2/);
  const self = join(dir, 'self.qcow2');
  await createImage(self, 'qcow2', 1024 * KiB, { backing_file: 'self.qcow2' });
  await expectError(openAndRead(self), 'CORRUPT_IMAGE', /backing chain loop/);
  // With backing: null the loop is never followed.
  await openAndRead(a, { backing: null });

  const graph = new BlockGraph({ allowBackingFromImage: false });
  await expectError(
    graph.open({ driver: 'qcow2', 'read-only': true, file: { driver: 'file', filename: a } }),
    'INVALID_ARGUMENT',
    /pass 'backing' explicitly/,
  );
  assert.equal(graph.list().length, 0, 'nothing stays open after a failed open');
  const missing = join(dir, 'missing.qcow2');
  await createImage(missing, 'qcow2', 1024 * KiB, { backing_file: 'nowhere.raw' });
  await expectError(openAndRead(missing), 'NOT_FOUND', /nowhere\.raw/);
});

test('mutation fuzz: open and read either succeed or throw LivebackupError', { skip: skipUnlessTools('qemu-img', 'qemu-io') }, async (t) => {
  const dir = await tempDir(t);
  const sample = await sampleImage(dir);
  // Give the sample a backing name and format extension too, so they get mutated.
  const withBacking = join(dir, 'with-backing.qcow2');
  await copyFile(sample, withBacking);
  await qemuImg('rebase', '-u', '-b', 'base.raw', '-F', 'raw', withBacking);
  await writeRaw(join(dir, 'base.raw'), new Uint8Array(64 * KiB));
  const seed = 20261127;
  const random = new SeededRandom(seed);
  const sources = [new Uint8Array(await readFile(sample)), new Uint8Array(await readFile(withBacking))];
  const target = join(dir, 'fuzz.qcow2');
  let succeeded = 0;
  let refused = 0;
  for (let iteration = 0; iteration < 2000; iteration++) {
    const source = random.pick(sources);
    const bytes = source.slice();
    const { l1, reftable, clusterSize } = layout(source);
    const regions = [
      [0, 512],
      [l1, 64],
      [reftable, 64],
      [0, Math.min(bytes.length, 8 * clusterSize)],
    ] as const;
    const mutations = random.int(1, 4);
    for (let m = 0; m < mutations; m++) {
      const [start, length] = random.pick(regions);
      const at = start + random.int(0, length - 1);
      if (at >= bytes.length) continue;
      const kind = random.int(0, 3);
      if (kind === 0) bytes[at] = random.int(0, 255);
      else if (kind === 1) bytes[at] ^= 1 << random.int(0, 7);
      else if (kind === 2) bytes[at] = 0xff;
      else bytes.fill(0, at, Math.min(bytes.length, at + 8));
    }
    await writeFile(target, random.chance(0.05) ? bytes.subarray(0, random.int(0, bytes.length)) : bytes);
    const graph = new BlockGraph();
    try {
      const node = await graph.open({ driver: 'qcow2', 'read-only': true, backing: null, file: { driver: 'file', filename: target } });
      const window = Math.min(node.length, 2 * 1024 * KiB);
      await node.read(0, new Uint8Array(window));
      if (node.length > window) await node.read(node.length - 4096 > 0 ? node.length - 4096 : 0, new Uint8Array(Math.min(4096, node.length)));
      for (let offset = 0, steps = 0; offset < window && steps < 64; steps++) offset += (await node.blockStatus(offset, window - offset)).bytes;
      await node.driver.describe!();
      succeeded++;
    } catch (error) {
      if (!(error instanceof LivebackupError)) {
        assert.fail(`seed ${seed}, iteration ${iteration}: ${String((error as Error)?.stack ?? error)}`);
      }
      refused++;
    } finally {
      await graph.closeAll();
    }
  }
  assert.ok(succeeded > 0 && refused > 0, `both outcomes occur (ok ${succeeded}, refused ${refused})`);
});

test('mutation fuzz: writes on damaged images either succeed or throw LivebackupError', { skip: skipUnlessTools('qemu-img', 'qemu-io') }, async (t) => {
  const dir = await tempDir(t);
  const source = new Uint8Array(await readFile(await sampleImage(dir)));
  const { l1, reftable, clusterSize } = layout(source);
  const seed = 20261128;
  const random = new SeededRandom(seed);
  const target = join(dir, 'fuzz-write.qcow2');
  let succeeded = 0;
  for (let iteration = 0; iteration < 200; iteration++) {
    const bytes = source.slice();
    const regions = [[l1, 64], [reftable, 64], [0, Math.min(bytes.length, 8 * clusterSize)], [0, bytes.length]] as const;
    for (let m = random.int(1, 3); m > 0; m--) {
      const [start, length] = random.pick(regions);
      const at = start + random.int(0, length - 1);
      if (at < bytes.length) bytes[at] = random.int(0, 255);
    }
    await writeFile(target, bytes);
    const graph = new BlockGraph();
    try {
      const node = await graph.open({ driver: 'qcow2', backing: null, discard: 'unmap', file: { driver: 'file', filename: target } });
      const size = Math.min(node.length, 1024 * KiB);
      for (let op = 0; op < 4 && size > 0; op++) {
        const length = random.int(1, Math.min(size, 3 * clusterSize));
        const offset = random.int(0, size - length);
        const kind = random.int(0, 2);
        if (kind === 0) await node.write(offset, random.bytes(length));
        else if (kind === 1) await node.writeZeroes(offset, length, { mayUnmap: random.chance(0.5) });
        else await node.discard(offset, length);
        await node.read(offset, new Uint8Array(length));
      }
      await node.flush();
      succeeded++;
    } catch (error) {
      if (!(error instanceof LivebackupError)) {
        assert.fail(`seed ${seed}, iteration ${iteration}: ${String((error as Error)?.stack ?? error)}`);
      }
    } finally {
      await graph.closeAll().catch((error: unknown) => {
        if (!(error instanceof LivebackupError)) assert.fail(`seed ${seed}, iteration ${iteration}, close: ${String(error)}`);
      });
    }
  }
  assert.ok(succeeded > 0, 'some damaged images still take writes');
});

/**
 * qemu-img create of a LUKS-encrypted qcow2. QEMU times PBKDF2 with the
 * process's CPU clock to pick an iteration count, and on a loaded machine
 * that measurement can fail ("Unable to get accurate CPU usage"): try again.
 */
async function createLuksImage(path: string): Promise<void> {
  const args = ['create', '-q', '--object', 'secret,id=sec0,data=123456', '-f', 'qcow2', '-o', 'encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10', path, '1M'];
  for (let attempt = 1; ; attempt++) {
    const result = await run('qemu-img', args);
    if (result.code === 0) return;
    if (attempt === 5 || !result.stderr.includes('Unable to get accurate CPU usage')) {
      throw new Error(`qemu-img ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
    }
  }
}
