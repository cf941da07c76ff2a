/**
 * Scenario 4: guest writes through NBD while a full backup runs. Each
 * daemon (livebackup's and qemu-storage-daemon) exports a writable copy of
 * the scenario 1 qcow2; `qemu-img bench` sends 4 KiB writes, 16 in flight,
 * each to a different 64 KiB cluster (step 1 MiB + 64 KiB, wrapping), so
 * every write that reaches an uncopied cluster pays for copy-before-write.
 * The same writes with no backup are the baseline.
 */
import { copyFile, rm } from 'node:fs/promises';
import { benchImage, describeLayout, type BenchImage } from '../lib/bench-images.js';
import { launchLivebackupDaemon, launchQsdExport, type DaemonLauncher, type ExportingDaemon } from '../lib/exporting-daemon.js';
import { KiB, MiB } from '../lib/images.js';
import { runRounds, type Contender, type Measurement } from '../lib/pairs.js';
import { runTool } from '../lib/processes.js';
import { compareContenders, readThroughput, type MetricReader } from '../lib/report.js';
import type { Scenario, ScenarioContext } from '../lib/scenario.js';
import { ratioSummary } from '../lib/stats.js';
import { formatRatio } from '../lib/table.js';

const NAME = 'guest-writes';
const WRITE_SIZE = 4 * KiB;
const DEPTH = 16;
const STEP = MiB + 64 * KiB;

/** Seconds from "Run completed in X seconds." of qemu-img bench. */
export function parseQemuImgBench(output: string): number {
  const match = /Run completed in ([\d.]+) seconds/.exec(output);
  if (!match) throw new Error(`qemu-img bench printed no run time: ${output.trim()}`);
  return Number(match[1]);
}

function writerContender(context: ScenarioContext, label: string, launch: DaemonLauncher, image: BenchImage, withBackup: boolean): Contender {
  const { workspace, scale } = context;
  return {
    label,
    async run(): Promise<Measurement> {
      const target = workspace.path(`guest-target.${image.format}`);
      await rm(target, { force: true });
      const daemon = await launch({ image, writable: true, scratchDir: workspace.dir });
      let outcome: { writeSeconds: number; backupSeconds?: number };
      try {
        outcome = await writeThrough(daemon, scale.guestWrites, withBackup ? target : undefined);
      } catch (error) {
        await daemon.quit().catch(() => undefined);
        throw error;
      } finally {
        await rm(target, { force: true });
      }
      const lifetime = await daemon.quit();
      return { ...lifetime, seconds: outcome.writeSeconds, extra: outcome };
    },
  };
}

/** Run the guest writes against a daemon's export, with a backup into `backupTarget` running meanwhile if given. */
async function writeThrough(daemon: ExportingDaemon, count: number, backupTarget: string | undefined): Promise<{ writeSeconds: number; backupSeconds?: number }> {
  const backup = backupTarget === undefined ? undefined : await daemon.startBackup(backupTarget);
  const output = await runTool([
    'qemu-img', 'bench', '-w', '-f', 'raw',
    '-s', String(WRITE_SIZE), '-d', String(DEPTH), '-S', String(STEP), '-c', String(count),
    daemon.uri,
  ]);
  const writeSeconds = parseQemuImgBench(output);
  if (!backup) return { writeSeconds };
  return { writeSeconds, backupSeconds: await backup.completed };
}

const readBackupSeconds: MetricReader = (measurement) => {
  const seconds = measurement.extra?.backupSeconds;
  if (seconds === undefined) throw new Error('run had no backup');
  return seconds;
};

export const guestWrites: Scenario = {
  name: NAME,
  title: 'guest write throughput over NBD during a full backup',
  async run(context) {
    const full = await benchImage(context, 'full', 'qcow2');
    const path = await context.workspace.image('guest.qcow2', (target) => copyFile(full.path, target));
    const image: BenchImage = { ...full, path };
    const OURS_IDLE = 'livebackup, no backup';
    const PEER_IDLE = 'qsd, no backup';
    const OURS_BUSY = 'livebackup, backup';
    const PEER_BUSY = 'qsd, backup';
    const results = await runRounds(
      [
        writerContender(context, OURS_IDLE, launchLivebackupDaemon, image, false),
        writerContender(context, PEER_IDLE, launchQsdExport, image, false),
        writerContender(context, OURS_BUSY, launchLivebackupDaemon, image, true),
        writerContender(context, PEER_BUSY, launchQsdExport, image, true),
      ],
      { rounds: context.scale.rounds, warmup: context.scale.warmup, log: context.log },
    );
    const writes = `${context.scale.guestWrites} × 4 KiB writes`;
    const throughput = readThroughput(context.scale.guestWrites * WRITE_SIZE);
    const slowdown = (busy: string, idle: string) =>
      formatRatio(ratioSummary(results.get(busy)!.map(throughput), results.get(idle)!.map(throughput)));
    const rows = [
      compareContenders(results, {
        scenario: NAME,
        comparison: `guest write throughput during backup vs qsd (${writes})`,
        metric: 'throughput',
        ours: OURS_BUSY,
        peer: PEER_BUSY,
        read: throughput,
        target: { kind: 'at-least', limit: 1.0 },
      }),
      compareContenders(results, {
        scenario: NAME,
        comparison: 'backup time during guest writes vs qsd',
        metric: 'time',
        ours: OURS_BUSY,
        peer: PEER_BUSY,
        read: readBackupSeconds,
      }),
      compareContenders(results, {
        scenario: NAME,
        comparison: 'guest write throughput without backup vs qsd',
        metric: 'throughput',
        ours: OURS_IDLE,
        peer: PEER_IDLE,
        read: throughput,
      }),
    ];
    return {
      name: NAME,
      title: this.title,
      rows,
      checks: [],
      notes: [
        `write throughput during backup / without backup, per round: livebackup ${slowdown(OURS_BUSY, OURS_IDLE)}, qsd ${slowdown(PEER_BUSY, PEER_IDLE)}`,
        `disk: writable copy of the qcow2 ${describeLayout(image.layout)}; qemu-img bench -w -s 4k -d ${DEPTH} -S ${STEP} -c ${context.scale.guestWrites}; peak RSS and CPU are the daemon's whole lifetime`,
        'livebackup side: the real `livebackup daemon` over QMP (launchLivebackupDaemon in bench/lib/exporting-daemon.ts)',
      ],
    };
  },
};
