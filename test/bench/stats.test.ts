import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pairRatios, ratioSummary, summarize } from '../../bench/lib/stats.js';

test('median of an odd count is the middle value, regardless of order', () => {
  assert.deepEqual(summarize([5, 1, 3]), { median: 3, min: 1, max: 5, count: 3 });
});

test('median of an even count is the mean of the two middle values', () => {
  assert.deepEqual(summarize([4, 1, 3, 10]), { median: 3.5, min: 1, max: 10, count: 4 });
});

test('summarize refuses no samples and non-finite samples', () => {
  assert.throws(() => summarize([]), RangeError);
  assert.throws(() => summarize([1, Number.NaN]), /non-finite/);
  assert.throws(() => summarize([1, Number.POSITIVE_INFINITY]), /non-finite/);
});

test('ratios are taken pair by pair, not from the medians of each side', () => {
  // Medians are 2 and 2 (ratio of medians 1), but every pair says something else.
  const ours = [1, 2, 6];
  const peer = [2, 4, 2];
  assert.deepEqual(pairRatios(ours, peer), [0.5, 0.5, 3]);
  assert.deepEqual(ratioSummary(ours, peer), { median: 0.5, min: 0.5, max: 3, count: 3 });
});

test('pairRatios refuses unequal sides and a zero peer', () => {
  assert.throws(() => pairRatios([1, 2], [1]), /2 samples against 1/);
  assert.throws(() => pairRatios([1], [0]), /not positive/);
});
