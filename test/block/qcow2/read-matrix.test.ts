/**
 * Every read feature of images made by qemu-img 7.2 and qemu-io:
 * - our full read must equal `qemu-img convert -O raw` byte for byte;
 * - block status through the backing chain must agree with `qemu-img map
 *   --output=json` on data, zero and depth for every byte. The file
 *   protocol reports every byte as data (no SEEK_HOLE) while QEMU looks for
 *   holes in the host file, so where qemu-img says `data`, the `zero` flag
 *   (a hole in the host file) is not compared.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../../helpers/temp-dir.js';
import { runOk, skipUnlessTools, type QemuMapEntry } from '../../helpers/tools.js';
import type { BlockNode, BlockStatus } from '../../../src/block/block-node.js';
import { IMAGE_CASES } from './qemu-made-images.js';
import { assertSameBytes, openQcow2, qemuRaw, readAll } from './qcow2-test-kit.js';

/** Our block status runs over the whole node. */
async function statusRuns(node: BlockNode): Promise<BlockStatus[]> {
  const runs: BlockStatus[] = [];
  for (let offset = 0; offset < node.length; ) {
    const status = await node.blockStatus(offset, node.length - offset);
    runs.push(status);
    offset += status.bytes;
  }
  return runs;
}

/**
 * Our depth, adjusted for one known difference in BlockNode (shared code):
 * past the end of a backing node that is shorter than its overlay, QEMU
 * names the overlay as the last layer looked at, BlockNode the short
 * backing node one level deeper.
 */
function actualDepth(node: BlockNode, actual: BlockStatus, offset: number, expected: QemuMapEntry): number {
  if (actual.present || expected.present || actual.depth !== expected.depth + 1) return actual.depth;
  let layer: BlockNode | undefined = node;
  for (let depth = 0; depth < expected.depth && layer; depth++) layer = layer.backing;
  const shortBacking = layer?.backing;
  return shortBacking && offset >= shortBacking.length ? expected.depth : actual.depth;
}

/** Compare our block status of the whole node with qemu-img map. */
async function assertStatusMatchesMap(name: string, image: string, node: BlockNode): Promise<void> {
  const map = JSON.parse(await runOk('qemu-img', ['map', '-U', '--output=json', image])) as QemuMapEntry[];
  const runs = await statusRuns(node);
  let mapIndex = 0;
  let runIndex = 0;
  for (let offset = 0; offset < node.length; ) {
    while (map[mapIndex]!.start + map[mapIndex]!.length <= offset) mapIndex++;
    while (runs[runIndex]!.offset + runs[runIndex]!.bytes <= offset) runIndex++;
    const expected = map[mapIndex]!;
    const actual = runs[runIndex]!;
    const where = `${name} at ${offset}: qemu ${JSON.stringify(expected)} ours ${JSON.stringify({ ...actual, hostNode: undefined })}`;
    assert.equal(actual.data, expected.data, where);
    assert.equal(actualDepth(node, actual, offset, expected), expected.depth, where);
    if (!expected.data) assert.equal(actual.zero, expected.zero, where);
    if (expected.data && expected.offset !== undefined && expected.depth === 0) {
      assert.equal(actual.hostOffset! + (offset - actual.offset), expected.offset + (offset - expected.start), where);
    }
    offset = Math.min(expected.start + expected.length, actual.offset + actual.bytes);
  }
}

for (const imageCase of IMAGE_CASES) {
  test(`qemu-made image reads and maps like qemu-img: ${imageCase.name}`, { skip: skipUnlessTools('qemu-img', 'qemu-io') }, async (t) => {
    const dir = await tempDir(t);
    const image = await imageCase.build(dir);
    const expected = await qemuRaw(image, join(dir, 'expected.raw'));
    const { graph, node } = await openQcow2(image, { readOnly: true });
    try {
      assertSameBytes(await readAll(node), expected, imageCase.name);
      // Odd-sized reads at odd offsets exercise sub-cluster paths.
      for (const [offset, bytes] of [[1, 777], [65535, 3], [511, 131075], [node.length - 1000, 1000]] as const) {
        const piece = new Uint8Array(bytes);
        await node.read(offset, piece);
        assertSameBytes(piece, expected.subarray(offset, offset + bytes), `${imageCase.name} [${offset}, +${bytes})`);
      }
      await assertStatusMatchesMap(imageCase.name, image, node);
    } finally {
      await graph.closeAll();
    }
  });
}
