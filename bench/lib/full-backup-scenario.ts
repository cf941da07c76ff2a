/**
 * Scenarios 1 and 2: a full backup of the mostly-allocated image to a new
 * image of the same format, livebackup against qemu-storage-daemon, with
 * `qemu-img convert -t writeback` as the stretch goal and `cp` + sync as
 * the floor, all in the same rounds.
 */
import { benchImage, describeLayout, type ImageFormat } from './bench-images.js';
import { CONVERT, CP, LIVEBACKUP, QSD, convertContender, copyContender, livebackupBackupContender, qsdBackupContender } from './backup-contenders.js';
import { runRounds } from './pairs.js';
import { compareContenders } from './report.js';
import type { Scenario } from './scenario.js';

export function fullBackupScenario(name: string, format: ImageFormat): Scenario {
  return {
    name,
    title: `full backup of a ${format} image to a new ${format}`,
    async run(context) {
      const source = await benchImage(context, 'full', format);
      const results = await runRounds(
        [
          livebackupBackupContender(context, source),
          qsdBackupContender(context, source),
          convertContender(context, source),
          copyContender(context, source),
        ],
        { rounds: context.scale.rounds, warmup: context.scale.warmup, log: context.log },
      );
      const row = (peer: string, comparison: string, target?: { limit: number; note?: string }) =>
        compareContenders(results, {
          scenario: name,
          comparison,
          metric: 'time',
          ours: LIVEBACKUP,
          peer,
          target: target && { kind: 'at-most', ...target },
        });
      return {
        name,
        title: this.title,
        rows: [
          row(QSD, 'backup time vs qsd blockdev-backup', { limit: 0.8 }),
          row(CONVERT, 'backup time vs qemu-img convert -t writeback', { limit: 1.0, note: 'stretch' }),
          row(CP, 'backup time vs cp + sync (floor)'),
        ],
        checks: [],
        notes: [`image: ${describeLayout(source.layout)}; timed from process start to exit, target durable`],
      };
    },
  };
}
