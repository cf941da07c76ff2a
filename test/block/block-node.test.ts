import { test } from 'node:test';
import assert from 'node:assert/strict';
import { memoryNode } from '../helpers/memory-driver.js';
import { SeededRandom } from '../helpers/random.js';
import { LivebackupError } from '../../src/errors.js';
import { BlockNode } from '../../src/block/block-node.js';

test('unaligned concurrent writes and zeroes match a reference (512-byte alignment, split transfers)', async () => {
  const size = 256 * 1024;
  const { node, driver } = memoryNode(size, 512, 8192);
  const reference = new Uint8Array(size);
  const random = new SeededRandom(42);
  // Non-overlapping batches run concurrently; overlapping RMW must still be exact
  // because each batch's ranges are disjoint but may share alignment blocks.
  for (let round = 0; round < 40; round++) {
    const pending: Promise<void>[] = [];
    const taken: Array<[number, number]> = [];
    for (let i = 0; i < 8; i++) {
      const bytes = random.int(1, 20000);
      const offset = random.int(0, size - bytes);
      if (taken.some(([a, b]) => offset < b && a < offset + bytes)) continue;
      taken.push([offset, offset + bytes]);
      if (random.chance(0.3)) {
        reference.fill(0, offset, offset + bytes);
        pending.push(node.writeZeroes(offset, bytes));
      } else {
        const data = random.bytes(bytes);
        reference.set(data, offset);
        pending.push(node.write(offset, data));
      }
    }
    await Promise.all(pending);
  }
  const readBack = new Uint8Array(size);
  await node.read(0, readBack);
  assert.deepEqual(driver.contractViolations, []);
  assert.ok(Buffer.from(readBack).equals(Buffer.from(reference)), 'content differs from reference');
  const piece = new Uint8Array(777);
  await node.read(1001, piece);
  assert.ok(Buffer.from(piece).equals(Buffer.from(reference.subarray(1001, 1778))));
});

test('out-of-range and invalid requests are errors with stable codes, never short I/O', async () => {
  const { node, driver } = memoryNode(4096);
  await assert.rejects(node.read(4000, new Uint8Array(200)), (e: unknown) => e instanceof LivebackupError && e.code === 'OUT_OF_BOUNDS');
  await assert.rejects(node.write(-1, new Uint8Array(1)), (e: unknown) => e instanceof LivebackupError && e.code === 'INVALID_ARGUMENT');
  await assert.rejects(node.writeZeroes(4096, 1), (e: unknown) => e instanceof LivebackupError && e.code === 'OUT_OF_BOUNDS');
  await assert.rejects(node.read(1.5, new Uint8Array(1)), (e: unknown) => e instanceof LivebackupError && e.code === 'INVALID_ARGUMENT');
  assert.equal(driver.calls, 0);
  await node.read(4096, new Uint8Array(0));
});

test('read-only nodes refuse every write-type request with READ_ONLY', async () => {
  const { driver } = memoryNode(4096);
  const node = new BlockNode({ nodeName: 'ro', driver, readOnly: true, discard: 'unmap', noFlush: false, length: 4096, options: {} });
  for (const attempt of [node.write(0, new Uint8Array(1)), node.writeZeroes(0, 1), node.discard(0, 512)]) {
    await assert.rejects(attempt, (e: unknown) => e instanceof LivebackupError && e.code === 'READ_ONLY' && e.errno === 'EPERM');
  }
});

test('before-write notifiers run before data changes and can veto a write', async () => {
  const { node, driver } = memoryNode(8192);
  const seen: string[] = [];
  const remove = node.addBeforeWriteNotifier(async (intent) => {
    seen.push(`${intent.kind}:${intent.offset}+${intent.bytes}:${driver.data[intent.offset]}`);
    if (intent.offset === 4096) throw new LivebackupError('IO_ERROR', 'vetoed', { errno: 'EIO' });
  });
  await node.write(10, new Uint8Array([7, 7]));
  await node.writeZeroes(10, 1);
  await assert.rejects(node.write(4096, new Uint8Array([1])), /vetoed/);
  assert.equal(driver.data[4096], 0);
  remove();
  await node.write(4096, new Uint8Array([1]));
  assert.deepEqual(seen, ['write:10+2:0', 'write-zeroes:10+1:7', 'write:4096+1:0']);
  assert.equal(driver.data[4096], 1);
});

test('blockers make the node report why it is busy until released', () => {
  const { node } = memoryNode(512);
  assert.equal(node.busyReason, undefined);
  const release = node.addBlocker('block device is in use by block job: backup');
  assert.equal(node.busyReason, 'block device is in use by block job: backup');
  release();
  assert.equal(node.busyReason, undefined);
});

test('a range lock holds back overlapping requests except the holder own, and waits for those in flight', async () => {
  const { node, driver } = memoryNode(8192);
  const order: string[] = [];
  const inFlightRead = node.read(0, new Uint8Array(512)).then(() => order.push('early-read'));
  const lock = await node.lockRange(0, 4096);
  order.push('locked');
  const blockedRead = node.read(100, new Uint8Array(10)).then(() => order.push('blocked-read'));
  const outsideRead = node.read(4096, new Uint8Array(10)).then(() => order.push('outside-read'));
  await node.write(0, new Uint8Array([5]), { lockToken: lock.token });
  order.push('holder-write');
  await outsideRead;
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.deepEqual(order.slice(0, 2), ['early-read', 'locked']);
  assert.ok(order.includes('holder-write') && order.includes('outside-read'));
  assert.ok(!order.includes('blocked-read'), 'a read overlapping the lock ran while it was held');
  lock.release();
  await Promise.all([inFlightRead, blockedRead]);
  assert.deepEqual(order.at(-1), 'blocked-read');
  assert.equal(driver.data[0], 5);
});
