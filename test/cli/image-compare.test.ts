import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BlockGraph } from '../../src/block/block-graph.js';
import { compareImages, firstDifference, firstNonZero } from '../../src/cli/image-compare.js';
import { LivebackupError } from '../../src/errors.js';
import { SeededRandom } from '../helpers/random.js';
import { tempDir } from '../helpers/temp-dir.js';

const MIB = 1024 * 1024;

/** Two raw files with the same seeded random content; `change` edits the second's bytes first. */
async function twinFiles(dir: string, size: number, seed: number, change: (bytes: Uint8Array) => void): Promise<[string, string]> {
  const content = new SeededRandom(seed).bytes(size);
  const a = join(dir, 'a.raw');
  const b = join(dir, 'b.raw');
  await writeFile(a, content);
  change(content);
  await writeFile(b, content);
  return [a, b];
}

function rawNode(graph: BlockGraph, filename: string, extra: Record<string, unknown> = {}) {
  return graph.open({ driver: 'raw', 'read-only': true, file: { driver: 'file', filename }, ...extra });
}

test('compareImages reports the first difference although later chunks, read at the same time, differ too', async (t) => {
  const dir = await tempDir(t);
  const seed = 41;
  const random = new SeededRandom(seed);
  const first = 5 * MIB + random.int(0, MIB);
  const [a, b] = await twinFiles(dir, 24 * MIB + 100, seed, (bytes) => {
    for (const offset of [first, first + 3 * MIB, 13 * MIB, 24 * MIB + 99]) bytes[offset]! ^= 0xff;
  });
  const graph = new BlockGraph();
  t.after(() => graph.closeAll());
  const result = await compareImages(await rawNode(graph, a), await rawNode(graph, b));
  assert.deepEqual(result, { identical: false, mismatchOffset: first, sizeMismatch: false }, `seed ${seed}`);
});

test('compareImages rejects with the read error of either image and leaves no read pending', async (t) => {
  const dir = await tempDir(t);
  const [a, b] = await twinFiles(dir, 20 * MIB, 42, () => undefined);
  const graph = new BlockGraph();
  t.after(() => graph.closeAll());
  const failingSector = (9 * MIB) / 512;
  const broken = await graph.open({
    driver: 'raw',
    'read-only': true,
    file: {
      driver: 'blkdebug',
      'inject-error': [{ event: 'read_aio', sector: failingSector, errno: 5 }],
      image: { driver: 'file', filename: b },
    },
  });
  const healthy = await rawNode(graph, a);
  for (const [left, right] of [
    [healthy, broken],
    [broken, healthy],
  ] as const) {
    await assert.rejects(compareImages(left, right), (error: unknown) => error instanceof LivebackupError && error.errno === 'EIO');
    assert.equal(left.inFlight + right.inFlight, 0);
  }
});

test('firstDifference and firstNonZero find the exact byte, at block edges too', () => {
  const size = 200 * 1024 + 3;
  for (const index of [0, 1, 65535, 65536, 131071, size - 1]) {
    const a = new Uint8Array(size);
    const b = new Uint8Array(size);
    b[index] = 1;
    assert.equal(firstDifference(a, b), index);
    assert.equal(firstNonZero(b), index);
  }
  assert.equal(firstDifference(new Uint8Array(10), new Uint8Array(10)), -1);
  assert.equal(firstNonZero(new Uint8Array(size)), -1);
  assert.equal(firstNonZero(new Uint8Array(0)), -1);
});
