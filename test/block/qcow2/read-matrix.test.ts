/**
 * Every read feature of images made by qemu-img 7.2 and qemu-io: our full
 * read must equal `qemu-img convert -O raw` byte for byte.
 */
import { test } from 'node:test';
import { join } from 'node:path';
import { tempDir } from '../../helpers/temp-dir.js';
import { skipUnlessTools } from '../../helpers/tools.js';
import { IMAGE_CASES } from './qemu-made-images.js';
import { assertSameBytes, openQcow2, qemuRaw, readAll } from './qcow2-test-kit.js';

for (const imageCase of IMAGE_CASES) {
  test(`full read equals qemu-img convert: ${imageCase.name}`, { skip: skipUnlessTools('qemu-img', 'qemu-io') }, async (t) => {
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
    } finally {
      await graph.closeAll();
    }
  });
}
