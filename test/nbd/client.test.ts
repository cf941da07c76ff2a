import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NbdClient } from '../../src/nbd/client.js';
import { NBD_FLAG_CAN_MULTI_CONN, NBD_FLAG_READ_ONLY, NBD_FLAG_SEND_DF, NBD_STATE_HOLE, NBD_STATE_ZERO } from '../../src/nbd/protocol.js';
import { SeededRandom } from '../helpers/random.js';
import { skipUnlessTools } from '../helpers/tools.js';
import { tempDir } from '../helpers/temp-dir.js';
import { isError, serveRawImage, startQemuNbd } from './nbd-fixture.js';

const MiB = 1024 * 1024;


/**
 * Pipelined random writes, zeroes and reads through `client`, checked
 * against an in-memory reference of the whole disk. Returns the reference.
 */
async function randomWorkload(client: NbdClient, seed: number, initial: Uint8Array, rounds = 30): Promise<Uint8Array> {
  const random = new SeededRandom(seed);
  const reference = Uint8Array.from(initial);
  const size = reference.length;
  for (let round = 0; round < rounds; round++) {
    // Disjoint ranges per round so that the order of completion does not matter.
    const taken: Array<[number, number]> = [];
    const operations: Promise<void>[] = [];
    for (let i = 0; i < 12; i++) {
      const length = random.int(1, 300_000);
      const offset = random.int(0, size - length);
      if (taken.some(([a, b]) => offset < b && a < offset + length)) continue;
      taken.push([offset, offset + length]);
      const kind = random.int(0, 9);
      if (kind < 5) {
        const data = random.bytes(length);
        reference.set(data, offset);
        operations.push(client.write(offset, data, { fua: kind === 0 }));
      } else if (kind < 7) {
        reference.fill(0, offset, offset + length);
        operations.push(client.writeZeroes(offset, length, { noHole: kind === 6 }));
      } else {
        const expected = Buffer.from(reference.subarray(offset, offset + length));
        const buf = new Uint8Array(length);
        operations.push(
          client.read(offset, buf, { df: kind === 9 }).then(() => {
            assert.ok(Buffer.from(buf).equals(expected), `seed ${seed}: read ${offset}+${length} differs`);
          }),
        );
      }
    }
    await Promise.all(operations);
  }
  await client.flush();
  const whole = new Uint8Array(size);
  await client.read(0, whole);
  assert.ok(Buffer.from(whole).equals(Buffer.from(reference)), `seed ${seed}: final content differs from reference`);
  return reference;
}

test('NbdClient against our server: pipelined writes, zeroes and reads match a reference and the image file', async (t) => {
  const served = await serveRawImage(t, { size: 8 * MiB });
  const client = await NbdClient.connectUri(served.uri);
  assert.equal(client.size, 8 * MiB);
  assert.equal(client.session.description, 'test disk');
  assert.ok(client.session.structuredReplies);
  assert.ok(client.session.transmissionFlags & NBD_FLAG_SEND_DF);
  assert.ok(client.session.transmissionFlags & NBD_FLAG_CAN_MULTI_CONN);
  const reference = await randomWorkload(client, 1234, new Uint8Array(8 * MiB));
  await client.disconnect();
  assert.ok((await readFile(served.image)).equals(Buffer.from(reference)), 'image file differs from the reference');
});

test('NbdClient with simple replies only (no structured replies) reads and writes', async (t) => {
  const served = await serveRawImage(t, { size: 2 * MiB });
  const client = await NbdClient.connectUri(served.uri, { structuredReplies: false });
  assert.equal(client.session.structuredReplies, false);
  assert.equal(client.session.transmissionFlags & NBD_FLAG_SEND_DF, 0);
  await randomWorkload(client, 77, new Uint8Array(2 * MiB), 10);
  await assert.rejects(client.blockStatus(0, 4096), isError('INVALID_ARGUMENT', 'EINVAL'));
  await assert.rejects(client.read(2 * MiB - 10, new Uint8Array(20)), isError('INVALID_ARGUMENT', 'EINVAL'));
  // The connection survives errors.
  const buf = new Uint8Array(10);
  await client.read(0, buf);
  await client.disconnect();
});

test('NbdClient block status on our server: raw is all data; both contexts; REQ_ONE', async (t) => {
  const served = await serveRawImage(t, { size: 3 * MiB });
  const client = await NbdClient.connectUri(served.uri, { metaContexts: ['base:allocation', 'qemu:allocation-depth', 'x-unknown:thing'] });
  assert.deepEqual([...client.session.metaContexts.keys()].sort(), ['base:allocation', 'qemu:allocation-depth']);
  const status = await client.blockStatus(4096, 2 * MiB);
  assert.deepEqual(status.get('base:allocation'), [{ length: 2 * MiB, flags: 0 }]);
  assert.deepEqual(status.get('qemu:allocation-depth'), [{ length: 2 * MiB, flags: 1 }]);
  const one = await client.blockStatus(0, 512, { reqOne: true });
  assert.deepEqual(one.get('base:allocation'), [{ length: 512, flags: 0 }]);
  await assert.rejects(client.blockStatus(3 * MiB - 1, 2), isError('INVALID_ARGUMENT', 'EINVAL'));
  await client.disconnect();
});

test('NbdClient: read-only export refuses writes with EPERM; unknown export is NOT_FOUND; list and meta context queries', async (t) => {
  const served = await serveRawImage(t, { size: MiB, writable: false, name: 'ro' });
  const address = { type: 'unix' as const, path: served.socket };
  const client = await NbdClient.connect(address, { exportName: 'ro' });
  assert.ok(client.readOnly);
  assert.ok(client.session.transmissionFlags & NBD_FLAG_READ_ONLY);
  await assert.rejects(client.write(0, new Uint8Array(512)), isError('READ_ONLY', 'EPERM'));
  await assert.rejects(client.writeZeroes(0, 512), isError('READ_ONLY', 'EPERM'));
  await assert.rejects(client.trim(0, 512), isError('READ_ONLY', 'EPERM'));
  await client.flush();
  await client.disconnect();
  await assert.rejects(NbdClient.connect(address, { exportName: 'nope' }), isError('NOT_FOUND'));
  assert.deepEqual(await NbdClient.listExports(address), [{ name: 'ro', description: 'test disk' }]);
  assert.deepEqual(await NbdClient.listMetaContexts(address, 'ro'), ['base:allocation', 'qemu:allocation-depth']);
  assert.deepEqual(await NbdClient.listMetaContexts(address, 'ro', ['qemu:']), ['qemu:allocation-depth']);
  assert.deepEqual(await NbdClient.listMetaContexts(address, 'ro', ['base:']), ['base:allocation']);
  assert.deepEqual(await NbdClient.listMetaContexts(address, 'ro', ['qemu:dirty-bitmap:', 'other:x']), []);
});

test('NbdClient against qemu-nbd: writes, zeroes, reads, holes as OFFSET_HOLE, block status and allocation depth', { skip: skipUnlessTools('qemu-nbd') }, async (t) => {
  const dir = await tempDir(t, 'livebackup-nbd-');
  const image = join(dir, 'peer.raw');
  const size = 8 * MiB;
  const initial = new SeededRandom(5).bytes(size);
  initial.fill(0, 2 * MiB, 6 * MiB);
  await writeFile(image, initial.subarray(0, 2 * MiB));
  await truncate(image, size); // 2..8 MiB is a sparse hole in the host file
  const handle = await open(image, 'r+');
  await handle.write(initial, 6 * MiB, 2 * MiB, 6 * MiB);
  await handle.close();
  const socket = await startQemuNbd(t, dir, image, ['-f', 'raw', '-x', 'peer', '-A', '--discard=unmap']);
  const client = await NbdClient.connect({ type: 'unix', path: socket }, { exportName: 'peer', metaContexts: ['base:allocation', 'qemu:allocation-depth'] });
  assert.equal(client.size, size);
  // qemu-nbd answers the hole with OFFSET_HOLE chunks: the buffer must still read back exact.
  const whole = new Uint8Array(size).fill(0xee);
  await client.read(0, whole);
  assert.ok(Buffer.from(whole).equals(Buffer.from(initial)), 'read through qemu-nbd differs');
  const status = await client.blockStatus(0, size);
  const allocation = status.get('base:allocation')!;
  assert.ok(allocation.some((extent) => (extent.flags & (NBD_STATE_HOLE | NBD_STATE_ZERO)) === (NBD_STATE_HOLE | NBD_STATE_ZERO)), JSON.stringify(allocation));
  assert.equal(allocation.reduce((sum, extent) => sum + extent.length, 0), size);
  assert.ok(status.get('qemu:allocation-depth')!.length >= 1);
  const reference = await randomWorkload(client, 99, initial, 15);
  await client.disconnect();
  assert.ok((await readFile(image)).equals(Buffer.from(reference)), 'image file written through qemu-nbd differs');
  assert.deepEqual(await NbdClient.listExports({ type: 'unix', path: socket }), [{ name: 'peer', description: '' }]);
});
