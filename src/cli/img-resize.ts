/** `livebackup img resize`: change the virtual size of an image, like `qemu-img resize`. */
import type { Command } from 'commander';
import { LivebackupError } from '../errors.js';
import { parseSize } from '../util/size.js';
import type { CommandContext } from './command-context.js';
import { imageFormatOption } from './common-options.js';
import { withImages } from './image-session.js';

interface ResizeFlags {
  format?: string;
  shrink: boolean;
}

const HELP_FOOTER = `
SIZE is the new virtual size, or with a leading + or - a change of it, in
bytes or with a suffix K, M, G, T, P or E (powers of 1024). Put -- before a
negative change so that it is not taken for an option. Growing adds bytes
that read as zeroes. Shrinking drops everything past the new end and needs
--shrink; qcow2 images can only grow.

Exit codes: 0 resized, 1 the resize failed (e.g. shrinking qcow2), 2 bad
arguments (including a shrink without --shrink).

Examples:
  livebackup img resize disk.qcow2 20G
  livebackup img resize disk.qcow2 +10G
  livebackup img resize --shrink disk.raw -- -1G
`;

/** Register `img resize` under the `img` command. */
export function registerImgResize(img: Command, context: CommandContext): void {
  img
    .command('resize')
    .description('Grow (or, with --shrink, shrink) the virtual size of an image.')
    .argument('<file>', 'image file')
    .argument('<size>', 'new size (e.g. 20G), or a change of it (+10G, -1G)')
    .addOption(imageFormatOption())
    .option('--shrink', 'allow making the image smaller (data past the new end is lost)', false)
    .addHelpText('after', HELP_FOOTER)
    .action(async (file: string, sizeText: string, flags: ResizeFlags) => {
      await withImages([{ filename: file, format: flags.format, writable: true }], async ([node]) => {
        const newSize = targetSize(node!.length, sizeText);
        if (newSize < node!.length && !flags.shrink) {
          throw new LivebackupError(
            'INVALID_ARGUMENT',
            `Use the --shrink option to make '${file}' smaller (${node!.length} -> ${newSize} bytes); data past the new end is lost`,
          );
        }
        await node!.truncate(newSize);
        await node!.flush();
      });
      context.out('Image resized.\n');
    });
}

/** The size `text` asks for: absolute, or relative to `current` with a leading + or -. */
function targetSize(current: number, text: string): number {
  const sign = text.startsWith('+') ? 1 : text.startsWith('-') ? -1 : 0;
  const amount = parseSize(sign === 0 ? text : text.slice(1), 'image size');
  const size = current + sign * amount;
  if (sign === 0) return amount;
  if (size < 0) throw new LivebackupError('INVALID_ARGUMENT', `Invalid image size change '${text}': the image has only ${current} bytes`);
  if (!Number.isSafeInteger(size)) throw new LivebackupError('INVALID_ARGUMENT', `Invalid image size change '${text}': too large`);
  return size;
}
