/**
 * `npm run bench [-- [--quick | --spec] [--dir DIR] [SCENARIO ...]]`:
 * measure livebackup against qemu-storage-daemon, qemu-nbd, qemu-img and
 * cp on the same generated images, print a Markdown table and write
 * bench/results/latest.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machineFacts } from './lib/machine.js';
import type { ScenarioReport } from './lib/report.js';
import { SCALES, fittingScale, requiredBytes, type ScaleName } from './lib/scale.js';
import type { Scenario } from './lib/scenario.js';
import { renderReport } from './lib/table.js';
import { Workspace } from './lib/workspace.js';
import { SCENARIOS } from './scenarios/index.js';

const RESULTS_FILE = fileURLToPath(new URL('../../bench/results/latest.json', import.meta.url));
const GiB = 2 ** 30;

const USAGE = `usage: npm run bench -- [--quick | --spec] [--dir DIR] [SCENARIO ...]
  --quick   small images: a smoke run of a minute or two
  --spec    the issue's full sizes (4 GiB images with 2 GiB of data): needs a fast disk
  --dir     where to put the temp folder (default: $TMPDIR or /tmp)
scenarios: ${SCENARIOS.map((scenario) => scenario.name).join(', ')}`;

function chooseScenarios(names: readonly string[]): Scenario[] {
  if (names.length === 0) return [...SCENARIOS];
  return names.map((name) => {
    const scenario = SCENARIOS.find((candidate) => candidate.name === name);
    if (!scenario) throw new Error(`unknown scenario '${name}'\n${USAGE}`);
    return scenario;
  });
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      quick: { type: 'boolean', default: false },
      spec: { type: 'boolean', default: false },
      dir: { type: 'string', default: tmpdir() },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (values.quick && values.spec) throw new Error(`--quick and --spec exclude each other\n${USAGE}`);
  const scenarios = chooseScenarios(positionals);
  const wanted: ScaleName = values.quick ? 'quick' : values.spec ? 'spec' : 'default';
  const free = await Workspace.freeBytes(values.dir);
  const scale = fittingScale(wanted, free);
  if (!scale) {
    throw new Error(`not enough free space in ${values.dir}: ${(free / GiB).toFixed(1)} GiB free, the smallest run needs ${(requiredBytes(SCALES.quick) / GiB).toFixed(1)} GiB`);
  }
  const log = (line: string) => process.stderr.write(`${line}\n`);
  if (scale.name !== wanted) {
    log(`only ${(free / GiB).toFixed(1)} GiB free in ${values.dir} (scale '${wanted}' needs ${(requiredBytes(SCALES[wanted]) / GiB).toFixed(1)} GiB): running at scale '${scale.name}' instead`);
  }
  const facts = [...(await machineFacts()), `scale: ${scale.name}, ${scale.rounds} measured rounds after ${scale.warmup} warm-up`];
  const workspace = await Workspace.create(values.dir);
  const reports: ScenarioReport[] = [];
  const started = performance.now();
  try {
    for (const scenario of scenarios) {
      log(`${scenario.name}: ${scenario.title}`);
      const scenarioStart = performance.now();
      reports.push(await scenario.run({ workspace, scale, earlier: reports, log }));
      log(`  ${scenario.name} took ${((performance.now() - scenarioStart) / 1000).toFixed(0)} s`);
    }
  } finally {
    await workspace.remove();
  }
  const totalSeconds = (performance.now() - started) / 1000;
  facts.push(`bench wall time: ${totalSeconds.toFixed(0)} s`);
  process.stdout.write(renderReport(reports, facts));
  await mkdir(dirname(RESULTS_FILE), { recursive: true });
  await writeFile(RESULTS_FILE, `${JSON.stringify({ date: new Date().toISOString(), facts, scale, reports }, null, 2)}\n`);
  log(`results written to ${RESULTS_FILE}`);
  return 0;
}

try {
  process.exitCode = await main();
} catch (error) {
  process.stderr.write(`bench: ${(error as Error).message}\n`);
  process.exitCode = 1;
}
