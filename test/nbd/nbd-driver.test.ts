import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BlockGraph } from '../../src/block/block-graph.js';
import { registerDriver } from '../../src/block/driver-registry.js';
import { nbdDriverFactory } from '../../src/nbd/nbd-driver-factory.js';
import { SeededRandom } from '../helpers/random.js';
import { runOk, skipUnlessTools } from '../helpers/tools.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually, isError, serveRawImage, startQemuNbd } from './nbd-fixture.js';

registerDriver(nbdDriverFactory);

const MiB = 1024 * 1024;


test('nbd driver node over our server: writes, zeroes, reads and block status reach the image', async (t) => {
  const served = await serveRawImage(t, { size: 4 * MiB });
  const graph = new BlockGraph();
  const node = await graph.open({ driver: 'nbd', 'node-name': 'remote', server: { type: 'unix', path: served.socket }, export: 'disk' });
  assert.equal(node.length, 4 * MiB);
  const random = new SeededRandom(606);
  const reference = new Uint8Array(4 * MiB);
  for (let i = 0; i < 40; i++) {
    const length = random.int(1, 200_000);
    const offset = random.int(0, 4 * MiB - length);
    if (i % 5 === 4) {
      reference.fill(0, offset, offset + length);
      await node.writeZeroes(offset, length);
    } else {
      const data = random.bytes(length);
      reference.set(data, offset);
      await node.write(offset, data, { fua: i % 7 === 0 });
    }
  }
  // Fast zeroing on a plain file is refused by the server and must not fall back.
  await assert.rejects(node.writeZeroes(0, 65536, { noFallback: true }), isError('UNSUPPORTED'));
  await node.flush();
  const whole = new Uint8Array(4 * MiB);
  await node.read(0, whole);
  assert.ok(Buffer.from(whole).equals(Buffer.from(reference)), 'read back through the nbd node differs');
  assert.ok((await readFile(served.image)).equals(Buffer.from(reference)), 'image file differs');
  const status = await node.blockStatus(0, 4 * MiB);
  assert.deepEqual([status.bytes, status.data, status.zero], [4 * MiB, true, false]);
  await assert.rejects(node.read(4 * MiB - 1, new Uint8Array(2)), isError('OUT_OF_BOUNDS'));
  await node.close();
  await eventually(() => served.server.connectionCount === 0);
});

test('nbd driver: bad options and a read-only export opened writable are refused', async (t) => {
  const served = await serveRawImage(t, { size: MiB, writable: false });
  const graph = new BlockGraph();
  await assert.rejects(graph.open({ driver: 'nbd', server: { type: 'unix', path: served.socket }, export: 'disk' }), isError('INVALID_ARGUMENT'));
  await assert.rejects(graph.open({ driver: 'nbd', server: { type: 'pigeon' } }), (e: unknown) => isError('INVALID_ARGUMENT')(e) && /'server'.*unix.*inet/.test(String(e)));
  await assert.rejects(graph.open({ driver: 'nbd', 'read-only': true, server: { type: 'unix', path: served.socket }, export: 'nope' }), isError('NOT_FOUND'));
  const node = await graph.open({ driver: 'nbd', 'read-only': true, server: { type: 'unix', path: served.socket }, export: 'disk' });
  await node.close();
  await assert.rejects(
    graph.open({ driver: 'nbd', server: { type: 'unix', path: join(served.dir, 'missing.sock') } }),
    (e: unknown) => isError('IO_ERROR')(e) && /missing\.sock/.test(String(e)),
  );
});

test('qcow2 over an nbd node served by qemu-nbd reads what qemu-img reads', { skip: skipUnlessTools('qemu-img', 'qemu-io', 'qemu-nbd') }, async (t) => {
  const dir = await tempDir(t, 'livebackup-nbd-driver-');
  const image = join(dir, 'disk.qcow2');
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', image, '3M']);
  await runOk('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x61 0 100k', '-c', 'write -z 1M 128k', '-c', 'write -P 0x62 2M 300k', image]);
  const flat = join(dir, 'flat.raw');
  await runOk('qemu-img', ['convert', '-O', 'raw', image, flat]);
  const socket = await startQemuNbd(t, dir, image, ['-f', 'raw', '-x', 'bytes', '-r']);
  const graph = new BlockGraph();
  const node = await graph.open({ driver: 'qcow2', 'read-only': true, file: { driver: 'nbd', server: { type: 'unix', path: socket }, export: 'bytes' } });
  t.after(() => node.close());
  const whole = new Uint8Array(node.length);
  await node.read(0, whole);
  assert.ok(Buffer.from(whole).equals(await readFile(flat)), 'qcow2 over nbd differs from qemu-img convert');
});
