import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { BlockGraph } from '../../src/block/block-graph.js';
import { createImage } from '../../src/block/image-file.js';
import { LivebackupError } from '../../src/errors.js';
import { tempDir } from '../helpers/temp-dir.js';
import { qemuImgCheck, skipUnlessTools } from '../helpers/tools.js';

test('blkdebug injects errors by event, iotype, sector and once, with the errno given', async (t) => {
  const graph = new BlockGraph();
  t.after(() => graph.closeAll());
  const node = await graph.open({
    driver: 'blkdebug',
    'inject-error': [
      { event: 'read_aio', sector: 8, once: true },
      { event: 'write_aio', errno: 28, iotype: 'write-zeroes' },
    ],
    image: { driver: 'null-co', size: 1 << 20, 'read-zeroes': true },
  });
  await node.read(0, new Uint8Array(4096));
  const isErrno = (errno: string) => (e: unknown) => e instanceof LivebackupError && e.errno === errno;
  await assert.rejects(node.read(4096, new Uint8Array(512)), isErrno('EIO'));
  await node.read(4096, new Uint8Array(512));
  await node.write(0, new Uint8Array(10));
  await assert.rejects(node.writeZeroes(0, 10), isErrno('ENOSPC'));
  await assert.rejects(
    graph.open({ driver: 'blkdebug', 'inject-error': [{ event: 'read_aio', iotype: 'sideways' }], image: { driver: 'null-co' } }),
    /iotype' does not accept value 'sideways'/,
  );
});

test('qcow2 over blkdebug can grow its file and stays clean', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'disk.qcow2');
  await createImage(path, 'qcow2', 16 << 20);
  const graph = new BlockGraph();
  const node = await graph.open({ driver: 'qcow2', file: { driver: 'blkdebug', image: { driver: 'file', filename: path } } });
  await node.write(5 << 20, Buffer.alloc(3 << 20, 0x42));
  await graph.closeAll();
  const check = await qemuImgCheck(path);
  assert.equal(check.code, 0, check.raw);
});
