import { test } from 'node:test';
import assert from 'node:assert/strict';
import { INLINE_WRITE_MAX_BYTES, InlineWritePolicy } from '../../src/block/drivers/inline-writes.js';

test('small writes go inline, large ones to the thread pool', () => {
  const policy = new InlineWritePolicy();
  assert.equal(policy.shouldInline(4096), true);
  assert.equal(policy.shouldInline(INLINE_WRITE_MAX_BYTES), true);
  assert.equal(policy.shouldInline(INLINE_WRITE_MAX_BYTES + 1), false);
});

test('after an inline write the kernel held up, writes use the thread pool for a while, then go inline again', () => {
  const policy = new InlineWritePolicy();
  policy.finished(performance.now());
  assert.equal(policy.shouldInline(4096), true, 'a quick write keeps inline writes on');
  // A write that started 50 ms ago and only now returned: the disk cannot keep up.
  policy.finished(performance.now() - 50);
  assert.equal(policy.shouldInline(4096), false, 'a slow write switches to the thread pool');
  // The next inline write that is quick again clears the back-off (tested through finished()).
  policy.finished(performance.now());
  assert.equal(policy.shouldInline(4096), true);
});
