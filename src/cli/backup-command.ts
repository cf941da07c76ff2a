/**
 * `livebackup backup SOURCE TARGET`: a point-in-time backup of an image
 * file, as drive-backup does it, from the shell, with a progress bar.
 */
import { access, stat } from 'node:fs/promises';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import type { Command } from 'commander';
import { Option } from 'commander';
import type { SingleBar } from 'cli-progress';
import { BlockGraph, realPathOrSelf } from '../block/block-graph.js';
import type { BlockNode } from '../block/block-node.js';
import { createImage, openImage, probeFormat } from '../block/image-file.js';
import { startBackup } from '../backup/start-backup.js';
import type { BackupJob } from '../backup/backup-job.js';
import type { JobEvent } from '../job/job.js';
import { LivebackupError } from '../errors.js';
import { formatSize, parseSize } from '../util/size.js';
import type { CommandContext } from './command-context.js';
import { EXIT_FAILED, EXIT_OK } from './exit-codes.js';

interface BackupFlags {
  sync: 'full' | 'top' | 'none';
  format?: string;
  mode: 'existing' | 'absolute-paths';
  speed?: string;
  json?: boolean;
  force?: boolean;
  progress?: boolean;
}

const HELP_FOOTER = `
The backup holds exactly what SOURCE contained when the job started, even if
SOURCE is written meanwhile (copy-before-write). TARGET must have the same
virtual size as SOURCE.

Sync modes:
  full  copy the whole disk (default)
  top   copy only what SOURCE's top layer allocates; TARGET is created with
        SOURCE's backing file, so TARGET + backing = the point-in-time disk
  none  is refused here: it only makes sense while a daemon keeps the job
        running and serves TARGET (use 'livebackup daemon' and QMP)

Target modes:
  absolute-paths  create TARGET (default); refuses to overwrite an existing
                  file unless --force is given
  existing        back up into an existing TARGET image of the same size

TARGET's format comes from -f, else from its extension (.qcow2 = qcow2,
anything else = raw); with --mode existing it is probed from the file.

Output: a progress bar on a terminal; --json prints one JSON object per line
(the job's QMP events and progress). Ctrl-C cancels the job cleanly and
leaves TARGET incomplete.

Exit codes: 0 backup complete and flushed, 1 the job failed or was
cancelled, 2 bad arguments.

Examples:
  livebackup backup disk.qcow2 /backups/disk-monday.qcow2
  livebackup backup --sync top -f qcow2 overlay.qcow2 overlay-backup.qcow2
  livebackup backup --speed 100M --json disk.raw /backups/disk.raw
`;

/** Register `backup` on the program. */
export function registerBackupCommand(program: Command, context: CommandContext): void {
  program
    .command('backup')
    .description('Take a point-in-time backup of an image file into a new or existing target image.')
    .argument('<source>', 'image to back up (qcow2 or raw)')
    .argument('<target>', 'backup image to create (or to write into with --mode existing)')
    .addOption(new Option('--sync <mode>', 'what to copy').choices(['full', 'top', 'none']).default('full'))
    .option('-f, --format <format>', 'target format: qcow2 or raw (default: from the extension)')
    .addOption(new Option('--mode <mode>', 'create the target or use an existing one').choices(['existing', 'absolute-paths']).default('absolute-paths'))
    .option('--speed <bytes-per-second>', 'limit the background copy rate, e.g. 100M (default: unlimited)')
    .option('--force', 'with --mode absolute-paths: overwrite an existing TARGET')
    .option('--json', 'print one JSON event per line instead of a progress bar')
    .option('--no-progress', 'no progress bar')
    .addHelpText('after', HELP_FOOTER)
    .action(async (source: string, target: string, flags: BackupFlags) => {
      context.setExitCode(await backupCommand(context, source, target, flags));
    });
}

async function backupCommand(context: CommandContext, sourcePath: string, targetPath: string, flags: BackupFlags): Promise<number> {
  if (flags.sync === 'none') {
    throw new LivebackupError(
      'INVALID_ARGUMENT',
      "--sync none copies nothing by itself: the target is only valid while the job runs and a daemon serves it. Use 'livebackup daemon' with QMP blockdev-backup sync=none (fleecing), or --sync full.",
    );
  }
  const speed = flags.speed === undefined ? 0 : parseSize(flags.speed, 'speed');
  if ((await realPathOrSelf(resolve(sourcePath))) === (await realPathOrSelf(resolve(targetPath)))) {
    throw new LivebackupError('INVALID_ARGUMENT', 'Source and target cannot be the same');
  }
  const graph = new BlockGraph();
  try {
    const source = await openImage(sourcePath, { graph, readOnly: true, nodeName: 'source' });
    const { target, zeroInitialized } = await prepareTarget(graph, source, sourcePath, targetPath, flags);
    const events: JobEvent[] = [];
    const job = startBackup({
      source,
      target,
      sync: flags.sync,
      speed,
      targetZeroInitialized: zeroInitialized,
      jobId: 'backup',
      deferStart: true,
      onEvent: (event) => events.push(event),
    });
    return await watchJob(context, job, events, targetPath, flags);
  } finally {
    await graph.closeAll();
  }
}

/** Open or create the target as --mode says. */
async function prepareTarget(
  graph: BlockGraph,
  source: BlockNode,
  sourcePath: string,
  targetPath: string,
  flags: BackupFlags,
): Promise<{ target: BlockNode; zeroInitialized: boolean }> {
  const exists = await access(targetPath).then(() => true, () => false);
  if (flags.mode === 'existing') {
    if (!exists) throw new LivebackupError('NOT_FOUND', `Target '${targetPath}' does not exist (--mode existing needs an existing image)`);
    const format = flags.format ?? (await probeFormat(targetPath));
    return { target: await openImage(targetPath, { graph, format, nodeName: 'target' }), zeroInitialized: false };
  }
  if (exists && !flags.force) {
    const info = await stat(targetPath);
    if (info.size > 0) {
      throw new LivebackupError(
        'INVALID_ARGUMENT',
        `Target '${targetPath}' already exists; use --force to overwrite it or --mode existing to back up into it`,
      );
    }
  }
  const format = flags.format ?? (extname(targetPath).toLowerCase() === '.qcow2' ? 'qcow2' : 'raw');
  const options: Record<string, string> = {};
  const backing = flags.sync === 'top' ? await sourceBacking(source, sourcePath) : undefined;
  if (backing) {
    if (format !== 'qcow2') throw new LivebackupError('INVALID_ARGUMENT', '--sync top needs a qcow2 target (it shares the source\'s backing file)');
    options.backing_file = backing.filename;
    options.backing_fmt = backing.format;
  }
  await createImage(targetPath, format, source.length, options);
  const target = await openImage(targetPath, { graph, format, nodeName: 'target' });
  return { target, zeroInitialized: !backing };
}

/** The absolute backing file name and format of the source image, if it has one. */
async function sourceBacking(source: BlockNode, sourcePath: string): Promise<{ filename: string; format: string } | undefined> {
  if (!source.backing) return undefined;
  const description = await source.driver.describe?.();
  const name = description?.backingFilename;
  if (!name) return undefined;
  const filename = isAbsolute(name) ? name : resolve(dirname(sourcePath), name);
  return { filename, format: description?.backingFormat ?? source.backing.driver.driverName };
}

/** Follow the job to its end, showing progress; Ctrl-C cancels. Returns the exit code. */
async function watchJob(context: CommandContext, job: BackupJob, earlyEvents: JobEvent[], targetPath: string, flags: BackupFlags): Promise<number> {
  const started = Date.now();
  const bar = !flags.json && flags.progress !== false && process.stderr.isTTY ? await newProgressBar() : undefined;
  const emit = (object: unknown) => context.out(`${JSON.stringify(object)}\n`);
  if (flags.json) for (const event of earlyEvents.splice(0)) emit({ ...event, timestamp: timestamp() });
  const unsubscribe = job.onEvent((event: JobEvent) => {
    if (flags.json) emit({ ...event, timestamp: timestamp() });
  });
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
    try {
      job.cancel();
    } catch {
      // Already finishing: nothing to cancel.
    }
  };
  // Before the job starts: a caller may send SIGINT as soon as it sees the job running.
  process.on('SIGINT', onSigint);
  job.start();
  bar?.start(Math.max(1, job.progressTotal), 0, { rate: '-', copied: '0 B' });
  const ticker = setInterval(() => {
    const elapsed = (Date.now() - started) / 1000;
    if (bar) {
      bar.setTotal(Math.max(1, job.progressTotal));
      bar.update(job.progressCurrent, { rate: `${formatSize(job.progressCurrent / Math.max(elapsed, 0.001))}/s`, copied: formatSize(job.progressCurrent) });
    } else if (flags.json) {
      emit({ progress: { offset: job.progressCurrent, len: job.progressTotal, status: job.status } });
    }
  }, flags.json ? 1000 : 200);
  try {
    const result = await job.done;
    const seconds = (Date.now() - started) / 1000;
    bar?.update(job.progressCurrent, { rate: `${formatSize(job.progressCurrent / Math.max(seconds, 0.001))}/s`, copied: formatSize(job.progressCurrent) });
    bar?.stop();
    const summary = {
      status: result.status,
      bytes: job.progressCurrent,
      seconds,
      copyBeforeWrite: job.cowStats.copies,
      error: result.error,
    };
    if (flags.json) emit({ result: summary });
    if (result.status === 'completed') {
      if (!flags.json) {
        context.out(`Backup complete: ${formatSize(job.progressCurrent)} in ${seconds.toFixed(2)} s (${formatSize(job.progressCurrent / Math.max(seconds, 0.001))}/s) to ${targetPath}\n`);
      }
      return EXIT_OK;
    }
    if (result.status === 'cancelled') {
      context.err(`livebackup: backup ${interrupted ? 'interrupted' : 'cancelled'}; ${targetPath} is incomplete and must not be used as a backup\n`);
    } else {
      context.err(`livebackup: backup failed: ${result.error ?? 'unknown error'}; ${targetPath} is incomplete\n`);
    }
    return EXIT_FAILED;
  } finally {
    clearInterval(ticker);
    process.off('SIGINT', onSigint);
    unsubscribe();
  }
}

/** A progress bar on stderr; the bar library is loaded only when a bar is shown (it costs startup time). */
async function newProgressBar(): Promise<SingleBar> {
  const { default: cliProgress } = await import('cli-progress');
  return new cliProgress.SingleBar(
    {
      format: 'backup [{bar}] {percentage}% | {copied} | {rate} | ETA {eta_formatted}',
      stream: process.stderr,
      hideCursor: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
}

function timestamp(): { seconds: number; microseconds: number } {
  const now = Date.now();
  return { seconds: Math.floor(now / 1000), microseconds: (now % 1000) * 1000 };
}
