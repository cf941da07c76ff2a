import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimit, RATE_LIMIT_SLICE_MS } from '../../src/job/rate-limit.js';
import { LivebackupError } from '../../src/errors.js';

test('RateLimit: work within a slice\'s quota is not delayed; the excess stretches the slice', () => {
  assert.equal(RATE_LIMIT_SLICE_MS, 100);
  const limit = new RateLimit(1000); // 100 bytes per 100 ms slice
  assert.equal(limit.speed, 1000);
  assert.equal(limit.delayFor(50, 0), 0);
  assert.equal(limit.delayFor(49, 10), 0);
  // 100 bytes dispatched: one full slice, which ends at 100 ms.
  assert.equal(limit.delayFor(1, 20), 80);
  // 300 bytes in total: three slices' worth, so the slice now ends at 300 ms.
  assert.equal(limit.delayFor(200, 30), 270);
  // Asking again (0 bytes) gives the remaining wait without accounting more.
  assert.equal(limit.delayFor(0, 250), 50);
  assert.equal(limit.delayFor(0, 300), 0);
  // After the stretched slice has ended, accounting starts afresh.
  assert.equal(limit.delayFor(99, 301), 0);
  assert.equal(limit.delayFor(1, 302), 99);
});

test('RateLimit: a big first request waits for all the slices it uses', () => {
  const limit = new RateLimit(10 * 1024 * 1024); // 1 MiB per slice
  assert.equal(limit.delayFor(4 * 1024 * 1024, 1000), 400);
  assert.equal(limit.delayFor(0, 1400), 0);
});

test('RateLimit: speed 0 is unlimited, and a speed change applies to the next call', () => {
  const limit = new RateLimit(0);
  assert.equal(limit.delayFor(1e12, 0), 0);
  limit.setSpeed(1000);
  assert.equal(limit.delayFor(100, 5), 100);
  limit.setSpeed(4000); // 400 bytes per slice: the 100 bytes so far are a quarter slice
  assert.equal(limit.delayFor(0, 6), 0);
  assert.equal(limit.delayFor(300, 7), 98);
  limit.setSpeed(0);
  assert.equal(limit.delayFor(1e9, 8), 0);
});

test('RateLimit: tiny speeds still allow at least one byte per slice', () => {
  const limit = new RateLimit(1);
  assert.equal(limit.delayFor(1, 0), 100);
  assert.equal(limit.delayFor(65_536, 0), 65_537 * 100 - 0);
});

test('RateLimit refuses negative or non-integer speeds', () => {
  for (const bad of [-1, 1.5, Number.NaN]) {
    assert.throws(() => new RateLimit(bad), (error: unknown) =>
      error instanceof LivebackupError && error.code === 'INVALID_ARGUMENT' && error.message === "Parameter 'speed' expects a non-negative value");
  }
  const limit = new RateLimit(5);
  assert.throws(() => limit.setSpeed(-10), /expects a non-negative value/);
  assert.equal(limit.speed, 5);
});
