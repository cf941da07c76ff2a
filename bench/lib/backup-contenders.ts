/**
 * The ways a full backup of an image file is taken, as contenders timed
 * from process start to process exit, each leaving a durable copy:
 * `livebackup backup` (flushes the target before the job completes),
 * qemu-storage-daemon blockdev-backup over QMP (flushes on quit),
 * `qemu-img convert -t writeback` (fsyncs at the end) and `cp` + `sync`.
 * Each run removes its target afterwards.
 */
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { BenchImage } from './bench-images.js';
import type { Contender, Measurement } from './pairs.js';
import { runMeasured, runTool } from './processes.js';
import { qsdBackup, qsdImageArgs, startQsd } from './qsd-process.js';
import type { ScenarioContext } from './scenario.js';

/** The compiled livebackup CLI next to this bench (dist/src/cli/main.js). */
export const LIVEBACKUP_CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export const LIVEBACKUP = 'livebackup';
export const QSD = 'qemu-storage-daemon';
export const CONVERT = 'qemu-img convert';
export const CP = 'cp + sync';

/** Run `measure(target)` with a fresh target path, removing the target afterwards. */
async function withTarget(context: ScenarioContext, format: string, measure: (target: string) => Promise<Measurement>): Promise<Measurement> {
  const target = context.workspace.path(`target.${format}`);
  await rm(target, { force: true });
  try {
    return await measure(target);
  } finally {
    await rm(target, { force: true });
  }
}

/** `livebackup backup SOURCE TARGET` creating a new target of the source's format. */
export function livebackupBackupContender(context: ScenarioContext, source: BenchImage, variant?: { label: string; env: NodeJS.ProcessEnv }): Contender {
  return {
    label: variant?.label ?? LIVEBACKUP,
    run: () =>
      withTarget(context, source.format, (target) =>
        runMeasured([process.execPath, LIVEBACKUP_CLI, 'backup', '--no-progress', '-f', source.format, source.path, target], {
          scratchDir: context.workspace.dir,
          env: variant ? { ...process.env, ...variant.env } : undefined,
        }),
      ),
  };
}

/**
 * qemu-img create of the target, then qemu-storage-daemon with both images
 * as nodes: blockdev-backup sync=full, BLOCK_JOB_COMPLETED, quit. Timed
 * from qemu-img create to qsd's exit; peak RSS is qsd's.
 */
export function qsdBackupContender(context: ScenarioContext, source: BenchImage): Contender {
  return {
    label: QSD,
    run: () =>
      withTarget(context, source.format, async (target) => {
        const started = performance.now();
        await runTool(['qemu-img', 'create', '-q', '-f', source.format, target, String(source.layout.virtualBytes)]);
        const qsd = await startQsd(context.workspace.dir, [
          ...qsdImageArgs('src', source.path, source.format, { readOnly: true }),
          ...qsdImageArgs('tgt', target, source.format),
        ]);
        await (await qsdBackup(qsd.qmp, 'src', 'tgt')).completed;
        const measurement = await qsd.quit();
        return { ...measurement, seconds: (performance.now() - started) / 1000 };
      }),
  };
}

/** `qemu-img convert -t writeback` to a new image of the source's format. */
export function convertContender(context: ScenarioContext, source: BenchImage): Contender {
  return {
    label: CONVERT,
    run: () =>
      withTarget(context, source.format, (target) =>
        runMeasured(['qemu-img', 'convert', '-t', 'writeback', '-f', source.format, '-O', source.format, source.path, target], {
          scratchDir: context.workspace.dir,
        }),
      ),
  };
}

/** `cp --sparse=always SOURCE TARGET && sync TARGET`: the floor. */
export function copyContender(context: ScenarioContext, source: BenchImage): Contender {
  return {
    label: CP,
    run: () =>
      withTarget(context, source.format, (target) =>
        runMeasured(['sh', '-c', 'cp --sparse=always "$1" "$2" && sync "$2"', 'sh', source.path, target], {
          scratchDir: context.workspace.dir,
        }),
      ),
  };
}
