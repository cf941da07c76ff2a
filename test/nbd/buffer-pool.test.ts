import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferPool } from '../../src/nbd/buffer-pool.js';

test('BufferPool reuses released blocks of the same size class and caps idle bytes', () => {
  const pool = new BufferPool(1024 * 1024);
  const a = pool.acquire(100_000);
  assert.equal(a.length, 100_000);
  a.fill(7);
  pool.release(a);
  assert.equal(pool.idleBytes, 128 * 1024);
  const b = pool.acquire(120_000);
  assert.equal(b.length, 120_000);
  assert.equal(b.buffer, a.buffer, 'same size class reuses the released block');
  assert.equal(pool.idleBytes, 0);
  // A different class does not reuse it; small buffers are never pooled.
  pool.release(b);
  assert.notEqual(pool.acquire(300_000).buffer, a.buffer);
  pool.release(Buffer.alloc(100));
  // Idle bytes never exceed the cap.
  const big = [pool.acquire(600_000), pool.acquire(600_000)];
  big.forEach((buffer) => pool.release(buffer));
  assert.ok(pool.idleBytes <= 1024 * 1024, String(pool.idleBytes));
});
