#!/usr/bin/env node
// Randomized point-in-time backup runs, more than `npm test` does.
//   npm run stress -- --runs 2000        run 2000 random scenarios (2 at a time)
//   npm run stress -- --seed 1234        replay one scenario and print what it did
//   options: --sync full|top|none  --source raw|qcow2|qcow2-backing  --parallel N
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '200' },
    seed: { type: 'string' },
    sync: { type: 'string' },
    source: { type: 'string' },
    parallel: { type: 'string', default: '2' },
  },
});
const { runPointInTimeScenario } = await import('../dist/test/backup/point-in-time-scenario.js');
const choice = { sync: values.sync, source: values.source };

async function one(seed) {
  const dir = await mkdtemp(join(tmpdir(), `livebackup-stress-${seed}-`));
  try {
    return await runPointInTimeScenario(seed, dir, choice);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (values.seed !== undefined) {
  const result = await one(Number(values.seed));
  console.log(result.description);
  console.log(`guest requests ${result.guestOps}, copy-before-write copies ${result.cowCopies}`);
  console.log(result.failures.length ? `FAILED:\n  ${result.failures.join('\n  ')}` : 'ok');
  process.exit(result.failures.length ? 1 : 0);
}

const runs = Number(values.runs);
const base = Math.floor(Math.random() * 1e9);
let next = 0;
let failed = 0;
let passed = 0;
async function worker() {
  while (next < runs) {
    const seed = base + next++;
    const result = await one(seed);
    if (result.failures.length) {
      failed++;
      console.log(`FAIL ${result.description}\n  ${result.failures.join('\n  ')}`);
    } else passed++;
    if ((passed + failed) % 100 === 0) console.log(`... ${passed + failed}/${runs}`);
  }
}
await Promise.all(Array.from({ length: Number(values.parallel) }, worker));
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
