import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { runOk, skipUnlessTools, type QemuMapEntry } from '../helpers/tools.js';
import { tempDir } from '../helpers/temp-dir.js';
import { SeededRandom } from '../helpers/random.js';
import { livebackup, livebackupOk } from './cli-runner.js';
import { patternFile, qemuIo } from './qemu-images.js';

const needsQemu = { skip: skipUnlessTools('qemu-img', 'qemu-io') };

/** Both maps of `file` (ours and qemu-img's), as JSON text. */
async function bothJsonMaps(file: string, format?: string): Promise<{ ours: string; theirs: string }> {
  const formatArgs = format ? ['-f', format] : [];
  const ours = await livebackupOk('img', 'map', '--output=json', ...formatArgs, file);
  const theirs = await runOk('qemu-img', ['map', '--output=json', '-U', ...formatArgs, file]);
  return { ours, theirs };
}

function parseMap(text: string): QemuMapEntry[] {
  return JSON.parse(text) as QemuMapEntry[];
}

test('img map of a fully written raw image equals qemu-img map, byte for byte (json and human)', needsQemu, async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'disk.raw');
  await runOk('qemu-img', ['create', '-f', 'raw', file, '3M']);
  await qemuIo(file, 'raw', ['write -P 0x11 0 1M', 'write -P 0 1M 1M', 'write -P 0x33 2M 1M']);
  const { ours, theirs } = await bothJsonMaps(file);
  assert.equal(ours, theirs.endsWith('\n') ? theirs : `${theirs}\n`);
  assert.equal(await livebackupOk('img', 'map', file), await runOk('qemu-img', ['map', '-U', file]));
});

test('img map of an empty raw image prints an empty list', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'empty.raw');
  await livebackupOk('img', 'create', file, '0');
  assert.equal(await livebackupOk('img', 'map', '--output=json', file), '[]\n');
});

interface ChainShape {
  seed: number;
  clusterSize: number;
  /** qemu-io zero writes: 'write -z -u' leaves plain zero clusters, 'write -z' over data keeps the allocation. */
  zeroWrite: 'write -z -u' | 'write -z';
  /** Extra bytes of the overlay past the end of its backing file. */
  overlayExtra?: number;
}

/**
 * A qcow2 chain written by qemu-io from a seed: a base with data and zero
 * clusters, and an overlay with data and zero clusters over both.
 */
async function buildChain(dir: string, shape: ChainShape): Promise<string> {
  const { clusterSize, zeroWrite } = shape;
  const random = new SeededRandom(shape.seed);
  const size = 64 * clusterSize + random.int(0, 7) * 512;
  const base = join(dir, 'base.qcow2');
  const top = join(dir, 'top.qcow2');
  await runOk('qemu-img', ['create', '-f', 'qcow2', '-o', `cluster_size=${clusterSize}`, base, String(size)]);
  const topSize = String(size + (shape.overlayExtra ?? 0));
  await runOk('qemu-img', ['create', '-f', 'qcow2', '-o', `cluster_size=${clusterSize}`, '-b', 'base.qcow2', '-F', 'qcow2', top, topSize]);
  const pattern = await patternFile(dir, 'pattern.bin', random, 8 * clusterSize);
  for (const [file, writes] of [
    [base, 12],
    [top, 10],
  ] as const) {
    const commands: string[] = [];
    for (let index = 0; index < writes; index++) {
      const clusters = random.int(1, 4);
      const offset = random.int(0, 63 - clusters) * clusterSize;
      const length = clusters * clusterSize;
      commands.push(random.chance(0.3) ? `${zeroWrite} ${offset} ${length}` : `write -s ${pattern} ${offset} ${length}`);
    }
    commands.push(`${zeroWrite} ${random.int(0, 60) * clusterSize} ${clusterSize}`);
    // A partial-cluster write allocates a whole cluster; one that ends at the (unaligned) end too.
    commands.push(`write -s ${pattern} ${random.int(0, 60) * clusterSize + 512} 1024`);
    commands.push(`write -s ${pattern} ${size - 1024} 1024`);
    await qemuIo(file, 'qcow2', commands);
  }
  return top;
}

/** Build the chain and check that both maps, JSON and human, are the same as qemu-img's. */
async function assertChainMapMatchesQemu(dir: string, shape: ChainShape): Promise<void> {
  const top = await buildChain(dir, shape);
  const message = `seed ${shape.seed}, cluster size ${shape.clusterSize}, ${shape.zeroWrite}`;
  const { ours, theirs } = await bothJsonMaps(top);
  const ourEntries = parseMap(ours);
  const theirEntries = parseMap(theirs);
  // qemu-io wrote the images, so the host layout is QEMU's own: offsets agree too.
  assert.deepEqual(ourEntries, theirEntries, message);
  assert.ok(theirEntries.some((entry) => entry.depth === 1 && entry.data), `${message}: data from the backing file`);
  assert.ok(theirEntries.some((entry) => entry.depth === 0 && entry.zero && entry.present), `${message}: zero clusters`);
  // Human output: only data runs, with offsets and host files.
  assert.equal(await livebackupOk('img', 'map', top), await runOk('qemu-img', ['map', '-U', top]), message);
}

test('img map of qcow2 chains equals qemu-img map (data, zero clusters, backing file; json and human)', needsQemu, async (t) => {
  for (const [seed, clusterSize] of [
    [1, 65536],
    [2, 4096],
    [3, 65536],
    [4, 512],
  ] as const) {
    await assertChainMapMatchesQemu(await tempDir(t), { seed, clusterSize, zeroWrite: 'write -z -u' });
  }
});

test('img map --start-offset/--max-length maps part of a chain exactly as qemu-img map does', needsQemu, async (t) => {
  const top = await buildChain(await tempDir(t), { seed: 7, clusterSize: 65536, zeroWrite: 'write -z -u' });
  for (const [start, length] of [
    ['600000', '1000000'],
    ['1M', '2M'],
    ['0', '1'],
    ['4000000', '100M'],
    ['100M', '1M'],
  ]) {
    const args = [`--start-offset=${start}`, `--max-length=${length}`, top];
    const ours = await livebackupOk('img', 'map', '--output=json', ...args);
    const theirs = parseMap(await runOk('qemu-img', ['map', '--output=json', '-U', ...args]));
    // Past the end qemu-img prints one empty entry; we print an empty list.
    assert.deepEqual(parseMap(ours), theirs.filter((entry) => entry.length > 0), `${start} + ${length}`);
    assert.equal(await livebackupOk('img', 'map', ...args), await runOk('qemu-img', ['map', '-U', ...args]), `${start} + ${length}`);
  }
  const bad = await livebackup('img', 'map', '--start-offset=-5', top);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Invalid start offset '-5'/);
});

test(
  'img map of qcow2 zero clusters that keep their allocation reports their host offsets, like qemu-img map',
  needsQemu,
  async (t) => {
    await assertChainMapMatchesQemu(await tempDir(t), { seed: 5, clusterSize: 65536, zeroWrite: 'write -z' });
  },
);

test(
  'img map of an overlay larger than its backing file: depth 0 past the backing end, like qemu-img map',
  needsQemu,
  async (t) => {
    await assertChainMapMatchesQemu(await tempDir(t), { seed: 6, clusterSize: 65536, zeroWrite: 'write -z -u', overlayExtra: 3 * 65536 });
  },
);

test('img map of a compressed qcow2 image: json equals qemu-img map; the human map refuses, like qemu-img', needsQemu, async (t) => {
  const dir = await tempDir(t);
  const raw = join(dir, 'pattern.raw');
  await runOk('qemu-img', ['create', '-f', 'raw', raw, '3M']);
  await qemuIo(raw, 'raw', ['write -P 0x41 0 1M', 'write -P 0x42 2M 512k']);
  const compressed = join(dir, 'compressed.qcow2');
  await runOk('qemu-img', ['convert', '-c', '-O', 'qcow2', raw, compressed]);
  const { ours, theirs } = await bothJsonMaps(compressed);
  assert.deepEqual(parseMap(ours), parseMap(theirs));
  assert.ok(parseMap(theirs).some((entry) => entry.data && entry.offset === undefined), 'compressed data has no host offset');
  const human = await livebackup('img', 'map', compressed);
  assert.equal(human.code, 1);
  assert.match(human.stderr, /^livebackup: File contains external, encrypted or compressed clusters/);
});

test('img map of a missing file exits 1 with a message naming it', async (t) => {
  const dir = await tempDir(t);
  const missing = join(dir, 'nope.qcow2');
  const result = await livebackup('img', 'map', missing);
  assert.equal(result.code, 1);
  assert.equal(result.stderr, `livebackup: Could not open '${missing}': No such file or directory\n`);
});
