/**
 * `livebackup demo`: a live backup in a few seconds. In a temporary folder
 * it creates a qcow2 disk and writes data through the block layer, shows
 * `img info` and `img map`, keeps a raw copy of the disk as the expected
 * point-in-time content, then backs the disk up while a "guest" keeps
 * writing to it, and checks with `img compare` that the backup holds the
 * point-in-time content while the disk has moved on.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { startBackup } from '../backup/start-backup.js';
import type { BlockNode } from '../block/block-node.js';
import { createImage } from '../block/image-file.js';
import { LivebackupError } from '../errors.js';
import { formatSize, parseSize } from '../util/size.js';
import type { CommandContext } from './command-context.js';
import { EXIT_FAILED } from './exit-codes.js';
import { compareImages, type CompareResult } from './image-compare.js';
import { collectImageInfo, renderImageInfoHuman } from './image-info.js';
import { collectImageMap, renderImageMapHuman } from './image-map.js';
import { withImages } from './image-session.js';

const MIB = 1024 * 1024;
/** Chunk size for writing and copying. */
const CHUNK = 4 * MIB;
/** The backup's rate limit, low enough that the guest writes land while it runs. */
const BACKUP_SPEED = 128 * MIB;
/** Guest writes issued while the backup runs. */
const GUEST_WRITES = 16;

const HELP_FOOTER = `
Steps: create a qcow2 disk, write data to it, show 'img info' and 'img map',
keep a raw copy as the expected point-in-time content, back the disk up
(sync=full, rate-limited) while a guest keeps writing to it, then compare:
the backup must equal the point-in-time copy, and the disk must have moved
on. Everything happens in a new temporary folder that is removed at the end
(use --keep to leave it).

Exit codes: 0 the backup holds the point-in-time content, 1 it does not or a
step failed, 2 bad arguments.

Example:
  livebackup demo
`;

/** Register `demo` on the program. */
export function registerDemoCommand(program: Command, context: CommandContext): void {
  program
    .command('demo')
    .description('Run a short demonstration: a live, point-in-time backup of a disk that is being written.')
    .option('--size <size>', 'virtual size of the demo disk (at least 16M)', '256M')
    .option('--keep', 'keep the temporary folder and print its path', false)
    .addHelpText('after', HELP_FOOTER)
    .action(async (flags: { size: string; keep: boolean }) => {
      const size = parseSize(flags.size, 'demo disk size');
      if (size < 16 * MIB) {
        throw new LivebackupError('INVALID_ARGUMENT', `Invalid demo disk size '${flags.size}': use at least 16M`);
      }
      const folder = await mkdtemp(join(tmpdir(), 'livebackup-demo-'));
      try {
        if (!(await runDemo(context, folder, size))) context.setExitCode(EXIT_FAILED);
      } finally {
        if (flags.keep) context.out(`\nKept the demo files in ${folder}\n`);
        else await rm(folder, { recursive: true, force: true });
      }
    });
}

/** The demo's steps; resolves to whether the backup holds the point-in-time content. */
async function runDemo(context: CommandContext, folder: string, size: number): Promise<boolean> {
  const disk = join(folder, 'disk.qcow2');
  const pointInTime = join(folder, 'point-in-time.raw');
  const backup = join(folder, 'backup.qcow2');
  const say = (text: string) => context.out(`${text}\n`);

  say(`Creating a ${formatSize(size)} qcow2 disk: ${disk}`);
  await createImage(disk, 'qcow2', size);
  const written = await withImages([{ filename: disk, format: 'qcow2', writable: true }], ([node]) => writeSampleData(node!));
  say(`Wrote ${formatSize(written)} of random data and a zeroed range through the block layer.\n`);

  say(`$ livebackup img info ${disk}`);
  const info = await withImages([{ filename: disk, withoutBacking: true }], ([node]) => collectImageInfo(node!, disk));
  context.out(renderImageInfoHuman(info));
  say(`\n$ livebackup img map ${disk}`);
  const map = await withImages([{ filename: disk }], ([node]) => collectImageMap(node!));
  context.out(renderImageMapHuman(map));

  say(`\nKeeping the disk's content as it is now in ${pointInTime}`);
  await createImage(pointInTime, 'raw', size);
  await withImages(
    [{ filename: disk }, { filename: pointInTime, format: 'raw', writable: true }],
    ([source, target]) => copyContent(source!, target!),
  );

  say(`\nBacking up ${disk} to ${backup} (sync=full, ${formatSize(BACKUP_SPEED)}/s) while the guest keeps writing...`);
  await createImage(backup, 'qcow2', size);
  await withImages(
    [
      { filename: disk, writable: true },
      { filename: backup, writable: true },
    ],
    async ([source, target]) => {
      const started = performance.now();
      const job = startBackup({ source: source!, target: target!, sync: 'full', speed: BACKUP_SPEED, targetZeroInitialized: true, jobId: 'demo' });
      const guestBytes = await writeAsGuest(source!, () => job.status === 'running');
      const result = await job.done;
      if (result.status !== 'completed') throw new LivebackupError('IO_ERROR', `the backup job ended ${result.status}: ${result.error ?? ''}`);
      const seconds = (performance.now() - started) / 1000;
      say(
        `Backup complete: ${formatSize(job.progressCurrent)} in ${seconds.toFixed(2)} s ` +
          `(${formatSize(job.progressCurrent / seconds)}/s with the rate limit at ${formatSize(BACKUP_SPEED)}/s); ` +
          `the guest wrote ${formatSize(guestBytes)} meanwhile, ${job.cowStats.copies} of its writes waited for copy-before-write.`,
      );
    },
  );

  const backupMatches = await showCompare(context, backup, pointInTime);
  const diskMoved = await showCompare(context, disk, backup);
  say(
    backupMatches.identical && !diskMoved.identical
      ? '\nThe backup holds the disk exactly as it was when the backup started; the disk itself has moved on.'
      : '\nUnexpected: the backup does not hold the point-in-time content.',
  );
  return backupMatches.identical && !diskMoved.identical;
}

/** Print and run `img compare a b`. */
async function showCompare(context: CommandContext, a: string, b: string): Promise<CompareResult> {
  context.out(`\n$ livebackup img compare ${a} ${b}\n`);
  const result = await withImages([{ filename: a }, { filename: b }], ([nodeA, nodeB]) => compareImages(nodeA!, nodeB!));
  context.out(result.identical ? 'Images are identical.\n' : `Content mismatch at offset ${result.mismatchOffset}!\n`);
  return result;
}

/**
 * Write random data to a few ranges spread over the disk (each a few MiB),
 * then zero part of one of them. Resolves to the number of bytes written.
 */
async function writeSampleData(node: BlockNode): Promise<number> {
  const { randomFillSync } = await import('node:crypto');
  const buffer = new Uint8Array(CHUNK);
  const extents = 8;
  const stride = Math.floor(node.length / extents / MIB) * MIB;
  let written = 0;
  for (let index = 0; index < extents; index++) {
    const start = index * stride + (index % 3) * 64 * 1024;
    const bytes = Math.min(((index % 4) + 1) * MIB, stride - (index % 3) * 64 * 1024);
    randomFillSync(buffer, 0, bytes);
    await node.write(start, buffer.subarray(0, bytes));
    written += bytes;
  }
  await node.writeZeroes(stride, MIB);
  await node.flush();
  return written;
}

/**
 * The guest: writes (up to 1 MiB) of fresh random data spread over the disk, from
 * the end backwards (ahead of the backup's copy, which goes forwards), the
 * first ones while `backupRunning()` says the job is still copying.
 * Resolves to the number of bytes written.
 */
async function writeAsGuest(node: BlockNode, backupRunning: () => boolean): Promise<number> {
  const { randomFillSync } = await import('node:crypto');
  const stride = Math.floor(node.length / GUEST_WRITES / MIB) * MIB;
  const buffer = new Uint8Array(Math.min(MIB, stride / 2));
  let written = 0;
  for (let index = GUEST_WRITES - 1; index >= 0 && (backupRunning() || written === 0); index--) {
    randomFillSync(buffer);
    await node.write(index * stride + stride / 2, buffer);
    written += buffer.length;
  }
  return written;
}

/** Copy every range of `source` that does not read as zeroes to the same offset of `target`. */
async function copyContent(source: BlockNode, target: BlockNode): Promise<void> {
  const buffer = new Uint8Array(CHUNK);
  for (let position = 0; position < source.length; ) {
    const status = await source.blockStatus(position, source.length - position);
    const end = position + status.bytes;
    if (!status.zero) {
      for (let offset = position; offset < end; offset += CHUNK) {
        const chunk = buffer.subarray(0, Math.min(CHUNK, end - offset));
        await source.read(offset, chunk);
        await target.write(offset, chunk);
      }
    }
    position = end;
  }
  await target.flush();
}
