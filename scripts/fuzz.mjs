#!/usr/bin/env node
// Mutation fuzzing of the hostile-input edges, over the compiled targets in dist/test/reliability/fuzz/.
//   npm run fuzz                                   100,000 cases for each of qcow2, nbd, qmp
//   npm run fuzz -- --target nbd --cases 5000 --seed 7
//   npm run fuzz -- --target qcow2 --seed S --from CASE --cases 1   replay one case
// Failing inputs are written to fuzz/findings/TARGET-SEED-CASE.bin; the exit code is 1 when any case failed.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? args[index + 1] : fallback;
};
const build = process.env.FUZZ_BUILD ?? 'dist';
const load = (file) => import(pathToFileURL(join(build, 'test/reliability/fuzz', file)).href);
const { fuzzRange } = await load('fuzz-target.js');
const targets = {
  qcow2: async () => (await load('qcow2-fuzz-target.js')).qcow2FuzzTarget,
  nbd: async () => new (await load('nbd-fuzz-target.js')).NbdFuzzTarget(),
  qmp: async () => new (await load('qmp-fuzz-target.js')).QmpFuzzTarget(),
};
const chosen = option('target', 'all');
const names = chosen === 'all' ? Object.keys(targets) : [chosen];
if (names.some((name) => !targets[name])) {
  console.error(`unknown target '${chosen}'; one of: ${Object.keys(targets).join(', ')}, all`);
  process.exit(2);
}
const cases = Number(option('cases', 100_000));
const seed = Number(option('seed', 1));
const from = Number(option('from', 0));
let failed = 0;
for (const name of names) {
  const target = await targets[name]();
  const started = Date.now();
  const report = await fuzzRange(target, seed, from, cases, (done) => {
    if (done % 10_000 === 0) process.stderr.write(`${name}: ${done} cases, ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  });
  await target.close?.();
  console.log(`${name}: ${report.cases} cases from ${from} with seed ${seed}, ${report.failures.length} failing, ${(report.milliseconds / 1000).toFixed(1)} s`);
  for (const failure of report.failures) {
    failed++;
    await mkdir('fuzz/findings', { recursive: true });
    const file = join('fuzz/findings', `${name}-${failure.seed}-${failure.caseIndex}.bin`);
    await writeFile(file, failure.bytes);
    console.log(`  case ${failure.caseIndex} (${file}): ${failure.failure}`);
    console.log(`  replay: npm run fuzz -- --target ${name} --seed ${failure.seed} --from ${failure.caseIndex} --cases 1`);
  }
}
process.exit(failed > 0 ? 1 : 0);
