import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FileHandle } from 'node:fs/promises';
import { BlockGraph } from '../../src/block/block-graph.js';
import { createImage } from '../../src/block/image-file.js';
import { LivebackupError } from '../../src/errors.js';
import { tempDir } from '../helpers/temp-dir.js';
import { qemuImgCheck, skipUnlessTools } from '../helpers/tools.js';

test('startWriteback through qcow2 down to the file keeps the image consistent and the data readable', { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'disk.qcow2');
  await createImage(path, 'qcow2', 4 << 20);
  const graph = new BlockGraph();
  const node = await graph.open({ driver: 'qcow2', 'node-name': 'disk', file: { driver: 'file', filename: path } });
  const pattern = new Uint8Array(256 * 1024).fill(0x5a);
  for (let offset = 0; offset < 4 << 20; offset += pattern.length) {
    await node.write(offset, pattern);
    node.startWriteback();
  }
  await node.flush();
  await graph.closeAll();
  const check = await qemuImgCheck(path);
  assert.equal(check.code, 0, check.raw);
  assert.equal(check.corruptions + check.leaks, 0, check.raw);
  const graphAgain = new BlockGraph();
  t.after(() => graphAgain.closeAll());
  const reopened = await graphAgain.open({ driver: 'qcow2', file: { driver: 'file', filename: path } });
  const back = new Uint8Array(4 << 20);
  await reopened.read(0, back);
  assert.ok(back.every((byte) => byte === 0x5a));
});

test('a failed background write-out is reported by the next flush, not dropped', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'disk.raw');
  await createImage(path, 'raw', 1 << 20);
  const graph = new BlockGraph();
  const node = await graph.open({ driver: 'file', filename: path });
  await node.write(0, new Uint8Array(4096).fill(1));
  // Make the disk fail under the driver: its descriptor goes away, so the
  // background fdatasync fails (EBADF) the way a dying disk fails it (EIO).
  const handle = (node.driver as unknown as { handle: FileHandle }).handle;
  closeSync(handle.fd);
  node.startWriteback();
  await assert.rejects(node.flush(), (error: unknown) => error instanceof LivebackupError && /flush of .*disk\.raw/.test(error.message));
  // Keep the descriptor number valid for the handle's own close.
  const placeholder = openSync(path, 'r');
  assert.equal(placeholder, handle.fd, 'the freed descriptor number was reused by someone else');
  await graph.closeAll();
  assert.equal((await readFile(path)).length, 1 << 20);
});
