import assert from 'node:assert/strict';
import { test } from 'node:test';
import { roundOrder, runRounds, type Contender } from '../../bench/lib/pairs.js';

test('roundOrder rotates the starting contender each round', () => {
  assert.deepEqual(roundOrder(['a', 'b', 'c'], 0), ['a', 'b', 'c']);
  assert.deepEqual(roundOrder(['a', 'b', 'c'], 1), ['b', 'c', 'a']);
  assert.deepEqual(roundOrder(['a', 'b', 'c'], 5), ['c', 'a', 'b']);
});

test('runRounds runs warm-up plus measured rounds, alternating, and keeps only measured ones', async () => {
  const calls: string[] = [];
  const counter = (label: string): Contender => {
    let runs = 0;
    return {
      label,
      run: async () => {
        calls.push(label);
        runs++;
        return { seconds: runs };
      },
    };
  };
  const results = await runRounds([counter('a'), counter('b')], { rounds: 3, warmup: 1 });
  assert.deepEqual(calls, ['a', 'b', 'b', 'a', 'a', 'b', 'b', 'a']);
  assert.deepEqual(results.get('a')!.map((m) => m.seconds), [2, 3, 4]);
  assert.deepEqual(results.get('b')!.map((m) => m.seconds), [2, 3, 4]);
});

test('runRounds refuses zero rounds and duplicate labels, and passes a failed run on', async () => {
  const ok: Contender = { label: 'x', run: async () => ({ seconds: 1 }) };
  await assert.rejects(runRounds([ok], { rounds: 0, warmup: 0 }), RangeError);
  await assert.rejects(runRounds([ok, ok], { rounds: 1, warmup: 0 }), /unique/);
  const failing: Contender = { label: 'y', run: async () => Promise.reject(new Error('qsd exited 1')) };
  await assert.rejects(runRounds([ok, failing], { rounds: 1, warmup: 0 }), /qsd exited 1/);
});
