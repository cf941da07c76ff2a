/** `livebackup img info`: describe an image file, like `qemu-img info`. */
import type { Command } from 'commander';
import type { CommandContext } from './command-context.js';
import { collectImageInfo, renderImageInfoHuman, renderImageInfoJson } from './image-info.js';
import { withImages } from './image-session.js';
import { outputFormatOption, type OutputFormat } from './output-format.js';

const HELP_FOOTER = `
Prints the format, virtual size, allocated size on the host, cluster size,
backing file and format-specific facts of FILE. The backing file is not
opened, so this works even when it is missing. --output=json prints the same
keys as 'qemu-img info --output=json' (virtual-size, filename, format,
cluster-size, actual-size, backing-filename, backing-filename-format,
full-backing-filename, dirty-flag, format-specific).

Exit codes: 0 success, 1 the image cannot be read, 2 bad arguments.

Examples:
  livebackup img info disk.qcow2
  livebackup img info --output=json -f raw disk.img
`;

/** Register `img info` under the `img` command. */
export function registerImgInfo(img: Command, context: CommandContext): void {
  img
    .command('info')
    .description('Show the format, sizes and backing file of an image.')
    .argument('<file>', 'image file')
    .option('-f, --format <format>', 'image format (default: probed from the file)')
    .addOption(outputFormatOption())
    .addHelpText('after', HELP_FOOTER)
    .action(async (file: string, flags: { format?: string; output: OutputFormat }) => {
      const info = await withImages([{ filename: file, format: flags.format, withoutBacking: true }], ([node]) =>
        collectImageInfo(node!, file),
      );
      context.out(flags.output === 'json' ? renderImageInfoJson(info) : renderImageInfoHuman(info));
    });
}
