/**
 * A growing write that fails under a filter must not wedge the image: after
 * one injected ENOSPC on the write that would grow a qcow2 file under
 * blkdebug, the filter node has taken the grown length but its file has
 * not, and the qcow2 metadata written there later must still reach the file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { BlockGraph } from '../../src/block/block-graph.js';
import type { BlkdebugDriver } from '../../src/block/drivers/blkdebug.js';
import { createImage } from '../../src/block/image-file.js';
import { tempDir } from '../helpers/temp-dir.js';
import { qemuImgCheck, skipUnlessTools } from '../helpers/tools.js';

test(
  'after a failed growing write under blkdebug, the qcow2 image still flushes, closes and checks clean',
  { skip: skipUnlessTools('qemu-img') },
  async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'image.qcow2');
    await createImage(path, 'qcow2', 4 * 1024 * 1024);
    const graph = new BlockGraph();
    t.after(() => graph.closeAll().catch(() => undefined));
    const node = await graph.open({ driver: 'qcow2', 'node-name': 'disk', file: { driver: 'blkdebug', 'node-name': 'faults', image: { driver: 'file', filename: path } } });
    (graph.require('faults').driver as BlkdebugDriver).rules.push({ event: 'write_aio', errno: 28, once: true });
    await assert.rejects(node.write(0, new Uint8Array(65536).fill(1)));
    await node.flush();
    await node.write(0, new Uint8Array(65536).fill(2));
    await graph.closeAll();
    const check = await qemuImgCheck(path);
    assert.equal(check.corruptions, 0, check.raw);
    assert.ok(check.code === 0 || check.code === 3, check.raw);
  },
);
