/**
 * Scenario 3: full backup of a big, mostly empty disk. The qcow2 source is
 * judged against scenario 1 scaled to the same amount of data (empty space
 * should cost next to nothing). The raw source runs twice: with the native
 * SEEK_DATA helper (holes are skipped) and without it
 * (LIVEBACKUP_NO_SEEK_DATA=1: every hole is read), to show what the helper saves.
 */
import { benchImage, describeLayout, type BenchImage } from '../lib/bench-images.js';
import { LIVEBACKUP, QSD, livebackupBackupContender, qsdBackupContender } from '../lib/backup-contenders.js';
import { dataBytes, GiB } from '../lib/images.js';
import { runRounds } from '../lib/pairs.js';
import { compareContenders, type CheckRow, type ComparisonRow } from '../lib/report.js';
import type { Scenario, ScenarioContext } from '../lib/scenario.js';

const NAME = 'sparse';
const SCALED_TARGET = 1.2;

const WITHOUT_SEEK_DATA = 'livebackup without SEEK_DATA';

async function backupRows(context: ScenarioContext, format: 'qcow2' | 'raw', role: 'sparse' | 'sparseRaw'): Promise<ComparisonRow[]> {
  const source = await benchImage(context, role, format);
  context.log(`  ${format} source: ${describeLayout(source.layout)}`);
  const contenders = [livebackupBackupContender(context, source), qsdBackupContender(context, source)];
  if (format === 'raw') contenders.push(withoutSeekData(context, source));
  const results = await runRounds(contenders, { rounds: context.scale.rounds, warmup: context.scale.warmup, log: context.log });
  const comparison = `${format} source, ${describeLayout(source.layout)}: backup time vs qsd`;
  const rows = [compareContenders(results, { scenario: NAME, comparison, metric: 'time', ours: LIVEBACKUP, peer: QSD })];
  if (format === 'raw') {
    rows.push(compareContenders(results, { scenario: NAME, comparison: `${comparison}, without the SEEK_DATA helper`, metric: 'time', ours: WITHOUT_SEEK_DATA, peer: QSD }));
  }
  return rows;
}

/** Our backup with the native SEEK_DATA helper turned off: every hole of a raw source is read. */
function withoutSeekData(context: ScenarioContext, source: BenchImage) {
  return livebackupBackupContender(context, source, { label: WITHOUT_SEEK_DATA, env: { LIVEBACKUP_NO_SEEK_DATA: '1' } });
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
  title: 'full backup of a big sparse disk (qcow2; raw with and without the SEEK_DATA helper)',
  async run(context) {
    const [qcow2Row] = await backupRows(context, 'qcow2', 'sparse');
    const [rawRow, rawWithoutSeekRow] = await backupRows(context, 'raw', 'sparseRaw');
    const check = scaledCheck(context, qcow2Row!);
    const rawLayout = context.scale.sparseRaw;
    const holesPerSecond = (rawLayout.virtualBytes - dataBytes(rawLayout)) / rawWithoutSeekRow!.ours.value.median;
    const notes = [
      `raw source: with the SEEK_DATA helper the holes are skipped (${rawRow!.ours.value.median.toFixed(2)} s for ${(rawLayout.virtualBytes / GiB).toFixed(1)} GiB virtual); ` +
        `without it (LIVEBACKUP_NO_SEEK_DATA=1) they are read at about ${(holesPerSecond / 2 ** 20).toFixed(0)} MiB/s, so a 64 GiB sparse raw file would take about ${((64 * GiB) / holesPerSecond).toFixed(0)} s`,
    ];
    if (typeof check === 'string') notes.push(check);
    return {
      name: NAME,
      title: this.title,
      rows: [qcow2Row!, rawRow!, rawWithoutSeekRow!],
      checks: typeof check === 'string' ? [] : [check],
      notes,
    };
  },
};
