#!/usr/bin/env node
// Long-running reliability runs over the compiled scenarios in dist/test/reliability/.
//   npm run torture -- crash  [--runs N] [--seed S]   SIGKILL during backup + NBD writes
//   npm run torture -- faults [--runs N] [--seed S] [--persistent-ignored-faults]
//                             [--sync full|top|none] [--on-source-error P] [--on-target-error P]
//                                                    blkdebug fault storms during backups
// Seeds run from S (default: from the clock) upwards; each failure prints its seed and
// what went wrong; the exit code is 1 when any run failed.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [mode, ...rest] = process.argv.slice(2);
const text = (name) => {
  const index = rest.indexOf(`--${name}`);
  return index >= 0 ? rest[index + 1] : undefined;
};
const option = (name, fallback) => (text(name) === undefined ? fallback : Number(text(name)));
const choice = {
  persistentIgnoredFaults: rest.includes('--persistent-ignored-faults'),
  sync: text('sync'),
  onSourceError: text('on-source-error'),
  onTargetError: text('on-target-error'),
};
const modes = {
  crash: { module: 'crash-scenario.js', run: 'runCrash', runs: 100 },
  faults: { module: 'fault-storm-scenario.js', run: 'runFaultStorm', runs: 1000 },
};
const chosen = modes[mode];
if (!chosen) {
  console.error('usage: npm run torture -- crash|faults [--runs N] [--seed S]');
  process.exit(2);
}
const explicitSeed = rest.includes('--seed');
const runs = option('runs', explicitSeed && !rest.includes('--runs') ? 1 : chosen.runs);
const firstSeed = option('seed', Date.now() % 1_000_000);
const scenario = await import(pathToFileURL(join(process.env.TORTURE_BUILD ?? 'dist', 'test/reliability', chosen.module)).href);
const started = Date.now();
let failed = 0;
for (let run = 0; run < runs; run++) {
  const seed = firstSeed + run;
  const dir = await mkdtemp(join(tmpdir(), `livebackup-${mode}-`));
  const result = await scenario[chosen.run](seed, dir, choice);
  await rm(dir, { recursive: true, force: true });
  if (result.failures.length > 0) {
    failed++;
    const forced = Object.entries({ sync: choice.sync, 'on-source-error': choice.onSourceError, 'on-target-error': choice.onTargetError })
      .filter(([, value]) => value !== undefined)
      .map(([name, value]) => ` --${name} ${value}`)
      .join('');
    console.log(`FAIL ${result.description}\n  ${result.failures.join('\n  ')}\n  replay: npm run torture -- ${mode} --seed ${seed}${forced}`);
  } else if (process.env.TORTURE_VERBOSE) {
    const extra = Object.entries(result).filter(([key, value]) => typeof value === 'number' && key !== 'seed');
    console.log(`ok   ${result.description} ${extra.map(([key, value]) => `${key}=${value}`).join(' ')}`);
  }
  if ((run + 1) % 10 === 0 || run + 1 === runs) {
    process.stderr.write(`${mode}: ${run + 1}/${runs} runs, ${failed} failed, ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  }
}
console.log(`${mode}: ${runs - failed} of ${runs} runs clean (seeds ${firstSeed}..${firstSeed + runs - 1})`);
process.exit(failed > 0 ? 1 : 0);
