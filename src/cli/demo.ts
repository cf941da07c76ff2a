/**
 * `livebackup demo`: a short tour that runs in a few seconds. It creates a
 * qcow2 image in a temporary folder, writes data through the block layer, shows
 * `img info` and `img map`, copies the guest content into a raw image,
 * checks the copy with `img compare`, and removes the folder.
 */
import { randomFillSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { BlockNode } from '../block/block-node.js';
import { createImage } from '../block/image-file.js';
import { formatSize, parseSize } from '../util/size.js';
import type { CommandContext } from './command-context.js';
import { EXIT_FAILED } from './exit-codes.js';
import { compareImages } from './image-compare.js';
import { collectImageInfo, renderImageInfoHuman } from './image-info.js';
import { collectImageMap, renderImageMapHuman } from './image-map.js';
import { withImages } from './image-session.js';

const MIB = 1024 * 1024;
/** Chunk size for writing and copying. */
const CHUNK = 4 * MIB;

const HELP_FOOTER = `
Everything happens in a new temporary folder that is removed at the end
(use --keep to leave it).

Exit codes: 0 the copy matched, 1 something failed.

Example:
  livebackup demo
`;

/** Register `demo` on the program. */
export function registerDemoCommand(program: Command, context: CommandContext): void {
  program
    .command('demo')
    .description('Run a short demonstration: create an image, write to it, inspect it, copy and compare it.')
    .option('--size <size>', 'virtual size of the demo disk', '256M')
    .option('--keep', 'keep the temporary folder and print its path', false)
    .addHelpText('after', HELP_FOOTER)
    .action(async (flags: { size: string; keep: boolean }) => {
      const size = parseSize(flags.size, 'demo disk size');
      const folder = await mkdtemp(join(tmpdir(), 'livebackup-demo-'));
      try {
        const identical = await runDemo(context, folder, size);
        if (!identical) context.setExitCode(EXIT_FAILED);
      } finally {
        if (flags.keep) context.out(`\nKept the demo files in ${folder}\n`);
        else await rm(folder, { recursive: true, force: true });
      }
    });
}

/** The demo's steps; resolves to whether the copy compared identical. */
async function runDemo(context: CommandContext, folder: string, size: number): Promise<boolean> {
  const format = 'qcow2';
  const disk = join(folder, `disk.${format}`);
  const copy = join(folder, 'copy.raw');
  const say = (text: string) => context.out(`${text}\n`);

  say(`Creating a ${formatSize(size)} ${format} image: ${disk}`);
  await createImage(disk, format, size);
  const written = await withImages([{ filename: disk, format, writable: true }], ([node]) => writeSampleData(node!));
  say(`Wrote ${formatSize(written)} of random data and a zeroed range through the block layer.\n`);

  say(`$ livebackup img info ${disk}`);
  const info = await withImages([{ filename: disk, format, withoutBacking: true }], ([node]) => collectImageInfo(node!, disk));
  context.out(renderImageInfoHuman(info));

  say(`\n$ livebackup img map ${disk}`);
  const map = await withImages([{ filename: disk, format }], ([node]) => collectImageMap(node!));
  context.out(renderImageMapHuman(map));

  say(`\nCopying the guest-visible content into ${copy}`);
  await createImage(copy, 'raw', size);
  await withImages(
    [
      { filename: disk, format },
      { filename: copy, format: 'raw', writable: true },
    ],
    ([source, target]) => copyContent(source!, target!),
  );

  say(`\n$ livebackup img compare ${disk} ${copy}`);
  const result = await withImages(
    [
      { filename: disk, format },
      { filename: copy, format: 'raw' },
    ],
    ([a, b]) => compareImages(a!, b!),
  );
  say(result.identical ? 'Images are identical.' : `Content mismatch at offset ${result.mismatchOffset}!`);
  return result.identical;
}

/**
 * Write random data to a few ranges spread over the disk (each a few MiB),
 * then zero part of one of them. Resolves to the number of bytes written.
 */
async function writeSampleData(node: BlockNode): Promise<number> {
  const buffer = new Uint8Array(CHUNK);
  const extents = 8;
  const stride = Math.floor(node.length / extents / MIB) * MIB;
  let written = 0;
  for (let index = 0; index < extents && stride > 0; index++) {
    const start = index * stride + (index % 3) * 64 * 1024;
    const bytes = Math.min(CHUNK, ((index % 4) + 1) * MIB, node.length - start);
    randomFillSync(buffer, 0, bytes);
    await node.write(start, buffer.subarray(0, bytes));
    written += bytes;
  }
  if (stride > 0) await node.writeZeroes(stride, Math.min(MIB, node.length - stride));
  await node.flush();
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
