/**
 * Scenario 6: peak RSS of `livebackup backup` on the scenario 1 image and
 * on a huge sparse qcow2 holding the same kind of data, next to
 * qemu-storage-daemon's. Memory must stay under a fixed bound and must not
 * grow with the virtual disk size.
 */
import { benchImage, describeLayout, type ImageRole } from '../lib/bench-images.js';
import { LIVEBACKUP, QSD, livebackupBackupContender, qsdBackupContender } from '../lib/backup-contenders.js';
import { MiB } from '../lib/images.js';
import { runRounds } from '../lib/pairs.js';
import { compareContenders, type CheckRow, type ComparisonRow } from '../lib/report.js';
import type { Scenario, ScenarioContext } from '../lib/scenario.js';

const NAME = 'memory';
/** Peak RSS bound of one backup process. */
const RSS_LIMIT = 128 * MiB;
/** "Flat": the huge disk may cost at most this much more than the small one. */
const FLAT_SLACK = 16 * MiB;

async function rssRow(context: ScenarioContext, role: ImageRole): Promise<ComparisonRow> {
  const source = await benchImage(context, role, 'qcow2');
  context.log(`  ${describeLayout(source.layout)}`);
  const results = await runRounds([livebackupBackupContender(context, source), qsdBackupContender(context, source)], {
    rounds: context.scale.rounds,
    warmup: context.scale.warmup,
    log: context.log,
  });
  return compareContenders(results, {
    scenario: NAME,
    comparison: `peak RSS of a full backup, qcow2 ${describeLayout(source.layout)}`,
    metric: 'rss',
    ours: LIVEBACKUP,
    peer: QSD,
  });
}

const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

export const memory: Scenario = {
  name: NAME,
  title: 'peak RSS of livebackup backup, flat in disk size',
  async run(context) {
    const small = await rssRow(context, 'full');
    const huge = await rssRow(context, 'huge');
    const worst = (row: ComparisonRow) => row.ours.value.max;
    const checks: CheckRow[] = [small, huge].map((row) => ({
      scenario: NAME,
      check: `livebackup peak RSS ≤ ${mib(RSS_LIMIT)} (${row === small ? 'scenario 1 image' : 'huge sparse image'}, worst round)`,
      value: mib(worst(row)),
      met: worst(row) <= RSS_LIMIT,
    }));
    const growth = huge.ours.value.median - small.ours.value.median;
    checks.push({
      scenario: NAME,
      check: `flat in disk size: huge minus small median ≤ ${mib(FLAT_SLACK)}`,
      value: mib(growth),
      met: growth <= FLAT_SLACK,
    });
    return { name: NAME, title: this.title, rows: [small, huge], checks, notes: [`peak RSS measured with ${small.ours.rssMethod ?? 'unknown method'}`] };
  },
};
