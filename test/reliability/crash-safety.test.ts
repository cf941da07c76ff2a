/**
 * Crash safety (see crash-scenario.ts): a process serving a qcow2 over NBD
 * and backing it up is killed with SIGKILL at random moments; the images
 * must check clean (leaks allowed), flushed and FUA writes must survive,
 * and the source must keep working. Replay a seed with
 * `npm run torture -- crash --seed N`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir } from '../helpers/temp-dir.js';
import { skipUnlessTools } from '../helpers/tools.js';
import { runCrash } from './crash-scenario.js';

const RUNS = 10;

test(`${RUNS} SIGKILLs during backup and NBD writes leave consistent images and every flushed write`, { skip: skipUnlessTools('qemu-img') }, async (t) => {
  const failed: string[] = [];
  let durable = 0;
  for (let run = 0; run < RUNS; run++) {
    const seed = 5300 + run;
    const dir = await tempDir(t, 'livebackup-crash-');
    const result = await runCrash(seed, dir);
    durable += result.durableWrites;
    if (result.failures.length > 0) failed.push(`${result.description}\n  ${result.failures.join('\n  ')}`);
  }
  assert.deepEqual(failed, [], `replay with: npm run torture -- crash --seed N\n${failed.join('\n')}`);
  // The runs must have exercised durability at all, or they prove nothing.
  assert.ok(durable > 0, 'no write became durable before the kills');
});
