/**
 * Scenario 6: peak RSS of `livebackup backup` on the scenario 1 image and
 * on a huge sparse qcow2 holding the same kind of data. The pair compared
 * is our own two runs (huge / small), so the ratio says how flat memory is
 * in disk size; qemu-storage-daemon's peak RSS on the scenario 1 image is
 * in the full-qcow2 rows.
 */
import { benchImage, describeLayout } from '../lib/bench-images.js';
import { livebackupBackupContender } from '../lib/backup-contenders.js';
import { MiB } from '../lib/images.js';
import { runRounds, type Contender } from '../lib/pairs.js';
import { compareContenders, type CheckRow } from '../lib/report.js';
import type { Scenario } from '../lib/scenario.js';

const NAME = 'memory';
/** Peak RSS bound of one backup process. */
const RSS_LIMIT = 128 * MiB;
/** "Flat": the huge disk may cost at most this much more than the small one. */
const FLAT_SLACK = 16 * MiB;

const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

export const memory: Scenario = {
  name: NAME,
  title: 'peak RSS of livebackup backup, flat in disk size',
  async run(context) {
    const small = await benchImage(context, 'full', 'qcow2');
    const huge = await benchImage(context, 'huge', 'qcow2');
    const SMALL = `livebackup, ${describeLayout(small.layout)}`;
    const HUGE = `livebackup, ${describeLayout(huge.layout)}`;
    const labelled = (contender: Contender, label: string): Contender => ({ label, run: () => contender.run() });
    const results = await runRounds(
      [labelled(livebackupBackupContender(context, huge), HUGE), labelled(livebackupBackupContender(context, small), SMALL)],
      { rounds: context.scale.rounds, warmup: context.scale.warmup, log: context.log },
    );
    const row = compareContenders(results, {
      scenario: NAME,
      comparison: 'peak RSS of a full qcow2 backup: huge sparse disk vs scenario 1 disk',
      metric: 'rss',
      ours: HUGE,
      peer: SMALL,
    });
    const checks: CheckRow[] = [
      { name: 'scenario 1 image', side: row.peer },
      { name: 'huge sparse image', side: row.ours },
    ].map(({ name, side }) => ({
      scenario: NAME,
      check: `livebackup peak RSS ≤ ${mib(RSS_LIMIT)} (${name}, worst round)`,
      value: mib(side.value.max),
      met: side.value.max <= RSS_LIMIT,
    }));
    const growth = row.ours.value.median - row.peer.value.median;
    checks.push({
      scenario: NAME,
      check: `flat in disk size: huge minus small, medians, ≤ ${mib(FLAT_SLACK)}`,
      value: mib(growth),
      met: growth <= FLAT_SLACK,
    });
    return {
      name: NAME,
      title: this.title,
      rows: [row],
      checks,
      notes: [`peak RSS measured with ${row.ours.rssMethod ?? 'unknown method'}; qemu-storage-daemon's is in the full-qcow2 rows`],
    };
  },
};
