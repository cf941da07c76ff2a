/**
 * Scenario 3: full backup of a big, mostly empty disk. The qcow2 source is
 * judged against scenario 1 scaled to the same amount of data (empty space
 * should cost next to nothing); the raw source shows what reading holes
 * costs our file driver, which cannot ask for SEEK_DATA from Node.
 */
import { benchImage, describeLayout } from '../lib/bench-images.js';
import { LIVEBACKUP, QSD, livebackupBackupContender, qsdBackupContender } from '../lib/backup-contenders.js';
import { dataBytes, GiB } from '../lib/images.js';
import { runRounds } from '../lib/pairs.js';
import { compareContenders, type CheckRow, type ComparisonRow } from '../lib/report.js';
import type { Scenario, ScenarioContext } from '../lib/scenario.js';

const NAME = 'sparse';
const SCALED_TARGET = 1.2;

async function backupRow(context: ScenarioContext, format: 'qcow2' | 'raw', role: 'sparse' | 'sparseRaw'): Promise<ComparisonRow> {
  const source = await benchImage(context, role, format);
  context.log(`  ${format} source: ${describeLayout(source.layout)}`);
  const results = await runRounds([livebackupBackupContender(context, source), qsdBackupContender(context, source)], {
    rounds: context.scale.rounds,
    warmup: context.scale.warmup,
    log: context.log,
  });
  return compareContenders(results, {
    scenario: NAME,
    comparison: `${format} source, ${describeLayout(source.layout)}: backup time vs qsd`,
    metric: 'time',
    ours: LIVEBACKUP,
    peer: QSD,
  });
}

/** Our sparse time against 1.2 × our full-qcow2 time scaled to the same data, if full-qcow2 ran. */
function scaledCheck(context: ScenarioContext, sparseRow: ComparisonRow): CheckRow | string {
  const full = context.earlier.find((report) => report.name === 'full-qcow2')?.rows.find((row) => row.peer.label === QSD);
  if (!full) return `the ${SCALED_TARGET}× target needs full-qcow2 in the same run (npm run bench -- full-qcow2 sparse)`;
  const scaledFull = full.ours.value.median * (dataBytes(context.scale.sparse) / dataBytes(context.scale.full));
  const limit = SCALED_TARGET * scaledFull;
  const ours = sparseRow.ours.value.median;
  return {
    scenario: NAME,
    check: `qcow2 sparse backup time ≤ ${SCALED_TARGET} × full-qcow2 time scaled to ${dataBytes(context.scale.sparse) / GiB} GiB of data`,
    value: `${ours.toFixed(2)} s vs limit ${limit.toFixed(2)} s (ratio ${(ours / scaledFull).toFixed(2)})`,
    met: ours <= limit,
  };
}

export const sparse: Scenario = {
  name: NAME,
  title: 'full backup of a big sparse disk (qcow2, and raw without SEEK_DATA)',
  async run(context) {
    const qcow2Row = await backupRow(context, 'qcow2', 'sparse');
    const rawRow = await backupRow(context, 'raw', 'sparseRaw');
    const check = scaledCheck(context, qcow2Row);
    const rawLayout = context.scale.sparseRaw;
    const holesPerSecond = (rawLayout.virtualBytes - dataBytes(rawLayout)) / rawRow.ours.value.median;
    const notes = [
      `raw source: our file driver reports everything as data and reads the holes (${(rawLayout.virtualBytes / GiB).toFixed(1)} GiB virtual); ` +
        `about ${(holesPerSecond / 2 ** 20).toFixed(0)} MiB/s of holes, so a 64 GiB sparse raw file would take about ${((64 * GiB) / holesPerSecond).toFixed(0)} s`,
    ];
    if (typeof check === 'string') notes.push(check);
    return {
      name: NAME,
      title: this.title,
      rows: [qcow2Row, rawRow],
      checks: typeof check === 'string' ? [] : [check],
      notes,
    };
  },
};
