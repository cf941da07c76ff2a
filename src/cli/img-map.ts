/** `livebackup img map`: the allocation map of an image, like `qemu-img map`. */
import type { Command } from 'commander';
import type { CommandContext } from './command-context.js';
import { collectImageMap, renderImageMapHuman, renderImageMapJson } from './image-map.js';
import { withImages } from './image-session.js';
import { parseSize } from '../util/size.js';
import { imageFormatOption, outputFormatOption, type OutputFormat } from './common-options.js';

interface MapFlags {
  format?: string;
  output: OutputFormat;
  startOffset?: string;
  maxLength?: string;
}

const HELP_FOOTER = `
Walks the whole image, through its backing chain, and prints runs of bytes
with the same status. With --output=json (the same layout as 'qemu-img map
--output=json') each entry has:
  start, length  the guest byte range
  depth          0 = FILE itself, 1 = its backing file, ...
  present        allocated in some layer of the chain
  zero           reads as zeroes
  data           holds data (not just known zeroes)
  offset         where the run lies in the host file (when known)
The human output lists only runs holding data: guest offset, length, host
offset and host file. --start-offset and --max-length (sizes, e.g. 1M)
restrict the map to part of the image.

Exit codes: 0 success, 1 the image cannot be read, 2 bad arguments.

Examples:
  livebackup img map disk.qcow2
  livebackup img map --output=json overlay.qcow2
  livebackup img map --output=json --start-offset=1G --max-length=64M disk.qcow2
`;

/** Register `img map` under the `img` command. */
export function registerImgMap(img: Command, context: CommandContext): void {
  img
    .command('map')
    .description('Show which ranges of an image hold data, zeroes, or come from its backing chain.')
    .argument('<file>', 'image file')
    .addOption(imageFormatOption())
    .option('-s, --start-offset <offset>', 'first guest byte to map (default: 0)')
    .option('-l, --max-length <length>', 'map at most this many bytes (default: to the end)')
    .addOption(outputFormatOption())
    .addHelpText('after', HELP_FOOTER)
    .action(async (file: string, flags: MapFlags) => {
      const start = flags.startOffset === undefined ? 0 : parseSize(flags.startOffset, 'start offset');
      const maxLength = flags.maxLength === undefined ? Infinity : parseSize(flags.maxLength, 'maximum length');
      const entries = await withImages([{ filename: file, format: flags.format }], ([node]) =>
        collectImageMap(node!, start, start + maxLength),
      );
      context.out(flags.output === 'json' ? renderImageMapJson(entries) : renderImageMapHuman(entries));
    });
}
