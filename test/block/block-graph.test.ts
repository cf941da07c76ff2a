import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BlockGraph } from '../../src/block/block-graph.js';
import { LivebackupError } from '../../src/errors.js';
import { openNode, createImage, openImage } from '../../src/index.js';
import { tempDir } from '../helpers/temp-dir.js';

const isCode = (code: string) => (e: unknown) => e instanceof LivebackupError && e.code === code;

test('raw over file: read, write, offset/size window, flush, close', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'disk.raw');
  await writeFile(path, Buffer.alloc(8192, 0xaa));
  const graph = new BlockGraph();
  const node = await graph.open({ driver: 'raw', 'node-name': 'win', offset: 1024, size: 4096, file: { driver: 'file', filename: path } });
  assert.equal(node.length, 4096);
  await node.write(0, Buffer.from('hello'));
  await node.writeZeroes(100, 50);
  await assert.rejects(node.write(4095, Buffer.from('xy')), isCode('OUT_OF_BOUNDS'));
  await node.flush();
  const status = await node.blockStatus(0, 4096);
  assert.equal(status.data, true);
  assert.equal(status.hostOffset, 1024);
  await graph.remove('win');
  assert.equal(graph.list().length, 0);
  const content = await readFile(path);
  assert.equal(content.subarray(1024, 1029).toString(), 'hello');
  assert.equal(content[1023], 0xaa);
  assert.ok(content.subarray(1124, 1174).every((b) => b === 0));
  assert.equal(content[1174], 0xaa);
});

test('unknown, missing and mistyped options are errors that name the option', async () => {
  const graph = new BlockGraph();
  await assert.rejects(graph.open({ driver: 'raw', file: { driver: 'file', filename: '/x' }, bogus: 1 }), /Parameter 'bogus' is unexpected/);
  await assert.rejects(graph.open({ driver: 'file' }), /Parameter 'filename' is missing/);
  await assert.rejects(graph.open({ driver: 'nope' }), /Parameter 'driver' does not accept value 'nope'/);
  await assert.rejects(graph.open({ driver: 'null-co', size: 'big' }), /Invalid parameter type for 'size', expected: integer/);
  await assert.rejects(graph.open({ driver: 'null-co', discard: 'sometimes' }), /Parameter 'discard' does not accept value 'sometimes'/);
  await assert.rejects(graph.open({ driver: 'file', filename: '/nonexistent/disk.img' }), isCode('NOT_FOUND'));
  assert.equal(graph.list().length, 0, 'nothing stays open after a failed open');
});

test('children by node-name are shared, not owned, and block removal of the child', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'disk.raw');
  await writeFile(path, Buffer.alloc(4096));
  const graph = new BlockGraph();
  const file = await graph.open({ driver: 'file', 'node-name': 'f0', filename: path });
  const raw = await graph.open({ driver: 'raw', 'node-name': 'r0', file: 'f0' });
  assert.equal(raw.file, file);
  await assert.rejects(graph.remove('f0'), isCode('BUSY'));
  await assert.rejects(graph.open({ driver: 'null-co', 'node-name': 'r0' }), isCode('ALREADY_EXISTS'));
  await graph.remove('r0');
  assert.equal(file.isClosed, false);
  await graph.remove('f0');
  assert.equal(file.isClosed, true);
});

test('null-co reads zeroes and reports its size; library openNode and createImage work', async (t) => {
  const graph = new BlockGraph();
  const node = await openNode({ driver: 'null-co', size: 1 << 20, 'read-zeroes': true }, graph);
  const buf = new Uint8Array(4096).fill(9);
  await node.read(4096, buf);
  assert.ok(buf.every((b) => b === 0));
  assert.equal((await node.blockStatus(0, 1 << 20)).zero, true);
  await graph.closeAll();

  const dir = await tempDir(t);
  const path = join(dir, 'new.raw');
  await createImage(path, 'raw', 65536);
  const image = await openImage(path, { graph });
  assert.equal(image.driver.driverName, 'raw');
  assert.equal(image.length, 65536);
  await graph.closeAll();
});
