/** `livebackup img create`: create an image file, like `qemu-img create`. */
import type { Command } from 'commander';
import { alignUp } from '../block/block-node.js';
import { findDriver } from '../block/driver-registry.js';
import { createImage } from '../block/image-file.js';
import { LivebackupError } from '../errors.js';
import { parseSize } from '../util/size.js';
import type { CommandContext } from './command-context.js';
import { parseFormatOptions } from './format-options.js';
import { resolveBackingPath } from './image-info.js';
import { probeImageFormat, withImages } from './image-session.js';

const SECTOR_SIZE = 512;

interface CreateFlags {
  format: string;
  backing?: string;
  backingFormat?: string;
  options?: string[];
  unsafe: boolean;
}

const HELP_FOOTER = `
SIZE is in bytes, or with a suffix K, M, G, T, P or E (powers of 1024):
512K, 100M, 10G, 1.5T; it is rounded up to a multiple of 512. With -b and
no SIZE the image gets the backing file's size. A relative backing file name
is relative to FILE's folder. The backing file must exist and be readable
in the given format, unless -u is given (then SIZE is required).
An existing FILE is overwritten.

Format options (-o, comma-separated key=value; write a comma in a value as ,,)
are passed to the format, e.g. for qcow2 cluster_size=65536. -b and -F are
shorthands for -o backing_file=...,backing_fmt=...

Exit codes: 0 created, 1 creation failed, 2 bad arguments.

Examples:
  livebackup img create -f qcow2 disk.qcow2 10G
  livebackup img create -f raw disk.raw 512M
  livebackup img create -f qcow2 -b base.qcow2 -F qcow2 overlay.qcow2
  livebackup img create -f qcow2 -u -b later.raw -F raw overlay.qcow2 10G
  livebackup img create -f qcow2 -o cluster_size=4096 small-clusters.qcow2 1G
`;

/** Register `img create` under the `img` command. */
export function registerImgCreate(img: Command, context: CommandContext): void {
  img
    .command('create')
    .description('Create a new image file of the given format and virtual size.')
    .argument('<file>', 'image file to create')
    .argument('[size]', 'virtual size (e.g. 10G); optional with -b')
    .option('-f, --format <format>', 'image format: qcow2 or raw', 'raw')
    .option('-b, --backing <file>', 'backing file of the new image (qcow2)')
    .option('-F, --backing-format <format>', 'format of the backing file (required with -b)')
    .option('-o, --options <key=value,...>', 'format options (repeatable)', collect)
    .option('-u, --unsafe', 'do not open the backing file (it may not exist yet)', false)
    .addHelpText('after', HELP_FOOTER)
    .action(async (file: string, size: string | undefined, flags: CreateFlags) => {
      await createImageCommand(context, file, size, flags);
    });
}

async function createImageCommand(context: CommandContext, file: string, sizeText: string | undefined, flags: CreateFlags): Promise<void> {
  const formatOptions = parseFormatOptions(flags.options ?? []);
  const backing = flags.backing ?? formatOptions.backing_file;
  const backingFormat = flags.backingFormat ?? formatOptions.backing_fmt;
  if (backing === undefined && backingFormat !== undefined) {
    throw new LivebackupError('INVALID_ARGUMENT', 'A backing format (-F) was given without a backing file (-b)');
  }
  let size = sizeText === undefined ? undefined : parseSize(sizeText, 'image size');
  if (backing !== undefined) {
    if (!findDriver(flags.format)?.childRoles.includes('backing')) {
      throw new LivebackupError('INVALID_ARGUMENT', `Format '${flags.format}' does not support backing files`);
    }
    const backingPath = resolveBackingPath(file, backing);
    if (backingFormat === undefined) {
      const detected = await probeImageFormat(backingPath);
      throw new LivebackupError(
        'INVALID_ARGUMENT',
        `Backing file '${backing}' specified without backing format (detected format: ${detected}; add -F ${detected})`,
      );
    }
    if (!flags.unsafe) {
      const backingSize = await withImages([{ filename: backingPath, format: backingFormat, withoutBacking: true }], async ([node]) => node!.length);
      size ??= backingSize;
    }
    formatOptions.backing_file = backing;
    formatOptions.backing_fmt = backingFormat;
  }
  if (size === undefined) {
    throw new LivebackupError('INVALID_ARGUMENT', `${file}: Image creation needs a size parameter`);
  }
  // Like qemu-img, the virtual size is rounded up to whole 512-byte sectors.
  await createImage(file, flags.format, alignUp(size, SECTOR_SIZE), formatOptions);
  context.out(`Formatting '${file}', fmt=${flags.format}${describeOptions(formatOptions, size)}\n`);
}

/** " key=value ..." as qemu-img prints them: format options, then size, then the backing file. */
function describeOptions(options: Record<string, string>, size: number): string {
  const { backing_file: backingFile, backing_fmt: backingFormat, ...rest } = options;
  const parts = Object.entries(rest).map(([key, value]) => `${key}=${value}`);
  parts.push(`size=${size}`);
  if (backingFile !== undefined) parts.push(`backing_file=${backingFile}`);
  if (backingFormat !== undefined) parts.push(`backing_fmt=${backingFormat}`);
  return parts.map((part) => ` ${part}`).join('');
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
