/**
 * Hostile input, a few thousand mutated cases per target (`npm run fuzz`
 * runs 100,000): qcow2 images, NBD client conversations and QMP streams.
 * Cases are deterministic per (seed, index); a failure prints both so
 * `npm run fuzz -- --target T --seed S --from I --cases 1` replays it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzz, type FuzzTarget } from './fuzz/fuzz-target.js';
import { qcow2FuzzTarget } from './fuzz/qcow2-fuzz-target.js';
import { NbdFuzzTarget } from './fuzz/nbd-fuzz-target.js';
import { QmpFuzzTarget } from './fuzz/qmp-fuzz-target.js';

const CASES = 2500;

for (const make of [() => qcow2FuzzTarget, () => new NbdFuzzTarget(), () => new QmpFuzzTarget()]) {
  const target: FuzzTarget = make();
  test(`${CASES} mutated ${target.name} inputs: clear errors only, no crash, hang or out-of-range access`, async () => {
    try {
      const report = await fuzz(target, 20261127, CASES);
      const described = report.failures.map((failure) => `seed ${failure.seed} case ${failure.caseIndex}: ${failure.failure}`);
      assert.deepEqual(described, [], `replay with: npm run fuzz -- --target ${target.name} --seed S --from CASE --cases 1`);
    } finally {
      await target.close?.();
    }
  });
}
